package bus

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// TracerName is the instrumentation scope of Backbeat's spans.
const TracerName = "github.com/backbeat/backbeat"

// Propagator carries the trace between services in message headers: the W3C
// trace context (HeaderTraceparent, and tracestate when a vendor set one).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// HeaderCarrier adapts NATS headers to the propagator. NATS header keys are
// case-sensitive (unlike HTTP's): the propagator's lower-case keys are used
// exactly as they are, so the header is `traceparent`.
type HeaderCarrier nats.Header

// Get returns the first value of key.
func (h HeaderCarrier) Get(key string) string { return nats.Header(h).Get(key) }

// Set replaces the values of key.
func (h HeaderCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }

// Keys lists the keys present.
func (h HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace of ctx into h (nothing when ctx has none).
func Inject(ctx context.Context, h nats.Header) { Propagator.Inject(ctx, HeaderCarrier(h)) }

// Extract returns ctx carrying the remote span of h as the parent of the
// next span started from it; ctx unchanged when h has no valid traceparent.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return Propagator.Extract(ctx, HeaderCarrier(h))
}

// Tracer is the tracer of a service's spans: its publisher's provider
// (WithTracerProvider), or the global one (otel.GetTracerProvider, which does
// nothing until a process sets one) when p is nil or has none.
func Tracer(p *Publisher) trace.Tracer {
	if p != nil && p.tp != nil {
		return p.tp.Tracer(TracerName)
	}
	return otel.GetTracerProvider().Tracer(TracerName)
}

// Span attribute keys of Backbeat's spans; the messaging ones are
// OpenTelemetry's semantic conventions.
const (
	AttrVideoID     = attribute.Key("backbeat.video_id")
	AttrRunID       = attribute.Key("backbeat.run_id")
	AttrAttempt     = attribute.Key("backbeat.attempt")
	AttrPool        = attribute.Key("backbeat.pool")
	AttrStep        = attribute.Key("backbeat.step")
	AttrWorker      = attribute.Key("backbeat.worker")
	AttrOutcome     = attribute.Key("backbeat.outcome")
	AttrDelivery    = attribute.Key("backbeat.delivery")
	AttrMsgType     = attribute.Key("backbeat.message_type")
	AttrSystem      = attribute.Key("messaging.system")
	AttrDestination = attribute.Key("messaging.destination.name")
	AttrConsumer    = attribute.Key("messaging.consumer.group.name")
	AttrMessageID   = attribute.Key("messaging.message.id")
	AttrOperation   = attribute.Key("messaging.operation.type")
)

// MessageAttributes are the video, run, attempt and pool m names (those it
// has and are set).
func MessageAttributes(m proto.Message) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if v, ok := m.(interface{ GetVideoId() string }); ok && v.GetVideoId() != "" {
		attrs = append(attrs, AttrVideoID.String(v.GetVideoId()))
	}
	if r, ok := m.(interface{ GetRunId() string }); ok && r.GetRunId() != "" {
		attrs = append(attrs, AttrRunID.String(r.GetRunId()))
	}
	if a := attemptOf(m); a != 0 {
		attrs = append(attrs, AttrAttempt.Int(int(a)))
	}
	if p, ok := m.(pooled); ok && p.GetPool() != "" {
		attrs = append(attrs, AttrPool.String(p.GetPool()))
	}
	return attrs
}

// Fail marks span as failed with err (nothing when err is nil).
func Fail(span trace.Span, err error) {
	if err == nil {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// kindName is the event kind or job at the end of a subject, for span names
// that do not carry the video id: "audio.done" of <p>.events.<vid>.audio.done,
// "jobs.render" of <p>.jobs.render.<pool>.<prio>.<vid>.
func kindName(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) >= 4 && parts[1] == "events" {
		return strings.Join(parts[3:], ".")
	}
	if len(parts) >= 3 {
		return parts[1] + "." + parts[2]
	}
	return subject
}
