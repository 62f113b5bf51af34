package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/testenv"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// TestTraceFollowsTheMessage: a job published under a span is handled in a
// consumer span whose parent is the publish (found through the
// `traceparent` header), the handler's own publish continues the same
// trace, the handler's log lines carry its trace_id and span_id, and a
// failed delivery marks its span as an error.
func TestTraceFollowsTheMessage(t *testing.T) {
	t.Parallel()
	js, nc := testenv.NATS(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	subj := bus.Subjects{Prefix: bus.DefaultPrefix}
	pub := bus.NewPublisher(js, subj, bus.WithTracerProvider(tp))
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)

	headers := make(chan nats.Header, 1)
	sub, err := nc.Subscribe(subj.Event("v1", bus.KindCDNDone), func(m *nats.Msg) { headers <- m.Header })
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	var calls int
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := bus.Consumer(ctx, js, bus.StreamJobs, bus.StepCDN)
	require.NoError(t, err)
	w := &bus.Worker[*backbeatv1.CdnJob]{
		Step: bus.StepCDN, New: func() *backbeatv1.CdnJob { return &backbeatv1.CdnJob{} }, Pub: pub, Log: log, Name: "w1",
		Policy: bus.Policy{AckWait: 3 * time.Second, MaxDeliver: 3, Backoff: []time.Duration{20 * time.Millisecond}},
		Handle: func(ctx context.Context, j *backbeatv1.CdnJob) error {
			if calls++; calls == 1 {
				return errors.New("first try fails")
			}
			bus.Logger(ctx, nil).Info("working")
			return pub.Publish(ctx, subj.Event(j.VideoId, bus.KindCDNDone), &backbeatv1.CdnDone{VideoId: j.VideoId, RunId: j.RunId}, "done")
		},
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx, 1, cons) }()
	t.Cleanup(func() { cancel(); <-done })

	root, span := tp.Tracer("test").Start(context.Background(), "request")
	require.NoError(t, pub.Publish(root, subj.CDNJob("v1"), &backbeatv1.CdnJob{VideoId: "v1", RunId: "r1"}, "job"))
	span.End()
	var h nats.Header
	select {
	case h = <-headers:
	case <-time.After(10 * time.Second):
		t.Fatal("no cdn.done")
	}
	traceID := span.SpanContext().TraceID()
	require.Contains(t, h.Get("traceparent"), traceID.String(), "the header is the lower-case traceparent of the same trace")
	require.Eventually(t, func() bool { return len(rec.Ended()) >= 5 }, 5*time.Second, 10*time.Millisecond)

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		require.Equal(t, traceID, s.SpanContext().TraceID(), "span %s is in another trace", s.Name())
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	pubJob := byName["publish jobs.cdn"]
	require.Len(t, pubJob, 1)
	require.Equal(t, span.SpanContext().SpanID(), pubJob[0].Parent().SpanID())
	procs := byName["process cdn"]
	require.Len(t, procs, 2, "one consumer span per delivery")
	var ok sdktrace.ReadOnlySpan
	for _, p := range procs {
		require.Equal(t, pubJob[0].SpanContext().SpanID(), p.Parent().SpanID(), "consumer span's parent is the publish")
		require.True(t, p.Parent().IsRemote())
		attrs := map[string]string{}
		for _, a := range p.Attributes() {
			attrs[string(a.Key)] = a.Value.String()
		}
		require.Equal(t, "v1", attrs["backbeat.video_id"])
		require.Equal(t, "r1", attrs["backbeat.run_id"])
		require.Equal(t, "w1", attrs["backbeat.worker"])
		require.Equal(t, bus.StepCDN, attrs["messaging.consumer.group.name"])
		if attrs["backbeat.outcome"] == bus.OutcomeRetry {
			require.Equal(t, codes.Error, p.Status().Code)
		} else {
			require.Equal(t, bus.OutcomeAck, attrs["backbeat.outcome"])
			ok = p
		}
	}
	require.NotNil(t, ok)
	pubDone := byName["publish cdn.done"]
	require.Len(t, pubDone, 1)
	require.Equal(t, ok.SpanContext().SpanID(), pubDone[0].Parent().SpanID())

	var working int
	for _, e := range logs.All() {
		l := e.ContextMap()
		if e.Message == "working" {
			working++
			require.Equal(t, traceID.String(), l[logging.KeyTraceID])
			require.Equal(t, ok.SpanContext().SpanID().String(), l[logging.KeySpanID])
		}
		if l["video_id"] != nil {
			require.Equal(t, traceID.String(), l[logging.KeyTraceID], "every line of the message has its trace: %v", l)
		}
	}
	require.Equal(t, 1, working)
}

// TestHeaderCarrierIsCaseSensitive: the carrier reads and writes the key the
// propagator names, exactly.
func TestHeaderCarrierIsCaseSensitive(t *testing.T) {
	h := nats.Header{}
	c := bus.HeaderCarrier(h)
	c.Set("traceparent", "x")
	require.Equal(t, []string{"x"}, h["traceparent"])
	require.Empty(t, h["Traceparent"])
	require.Equal(t, "x", c.Get("traceparent"))
	require.Equal(t, "", c.Get("Traceparent"))
	require.Equal(t, []string{"traceparent"}, c.Keys())
	// No span, no header.
	h2 := nats.Header{}
	bus.Inject(context.Background(), h2)
	require.Empty(t, h2)
	require.False(t, trace.SpanContextFromContext(bus.Extract(context.Background(), h2)).IsValid())
}
