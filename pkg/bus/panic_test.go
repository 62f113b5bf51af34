package bus_test

import (
	"bytes"
	"context"
	"errors"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// observed returns a logger that writes to the test log and keeps entries at
// Error level for assertions.
func observed(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.ErrorLevel)
	return zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core)), logs
}

// counter reads backbeat_jobs_handled_total{step,outcome} from reg.
func counter(t *testing.T, reg *prometheus.Registry, step, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "backbeat_jobs_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["step"] == step && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// heartbeats counts the goroutines running a processor heartbeat.
func heartbeats(t *testing.T) int {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, pprof.Lookup("goroutine").WriteTo(&buf, 2))
	n := 0
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "bus.(*processor).heartbeat") {
			n++
		}
	}
	return n
}

// TestPanicBecomesStepFailed is not parallel: it checks that no heartbeat
// goroutine outlives the panicking handler, which needs no other test's
// handler in flight.
func TestPanicBecomesStepFailed(t *testing.T) {
	tb := setup(t)
	fails := failures(t, tb)
	reg := prometheus.NewRegistry()
	met := bus.NewMetrics(reg)
	log, logs := observed(t)
	var boomCalls atomic.Int32
	calmStarted, release, calmDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	runWorker(t, tb, func(ctx context.Context, j *backbeatv1.CdnJob) error {
		if j.VideoId == "calm" {
			// Busy in the same process while the other handler panics.
			close(calmStarted)
			<-release
			close(calmDone)
			return nil
		}
		select {
		case <-calmStarted:
		case <-ctx.Done():
			return ctx.Err()
		}
		boomCalls.Add(1)
		var earlier map[string]*backbeatv1.CdnJob
		return errors.New(earlier[j.VideoId].Paths[0]) // nil pointer dereference
	}, func(w *bus.Worker[*backbeatv1.CdnJob]) {
		w.Metrics = met
		w.Log = log
		// Heartbeats tick every 100 ms while a handler runs.
		w.Policy.AckWait = 300 * time.Millisecond
	})
	ctx := context.Background()
	require.NoError(t, tb.pub.Publish(ctx, tb.subj.CDNJob("calm"), &backbeatv1.CdnJob{VideoId: "calm", RunId: "r1"}, "calm1"))
	require.NoError(t, tb.pub.Publish(ctx, tb.subj.CDNJob("boom"), &backbeatv1.CdnJob{VideoId: "boom", RunId: "r2"}, "boom1"))

	select {
	case sf := <-fails:
		require.Equal(t, "boom", sf.VideoId)
		require.Equal(t, "r2", sf.RunId)
		require.Equal(t, bus.StepCDN, sf.Step)
		require.True(t, sf.Permanent, "a panic would only panic again")
		require.Equal(t, "panic: runtime error: invalid memory address or nil pointer dereference", sf.Reason, "the value, not the stack")
	case <-time.After(10 * time.Second):
		t.Fatal("no step.failed for the panic")
	}

	// The handler running beside the panic finishes and is acked.
	close(release)
	select {
	case <-calmDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the other handler did not finish")
	}
	require.Eventually(t, func() bool { return pendingJobs(t, tb) == 0 }, 5*time.Second, 20*time.Millisecond,
		"the panicked job is terminated and the other acked")
	require.Eventually(t, func() bool { return counter(t, reg, bus.StepCDN, bus.OutcomeAck) == 1 }, 5*time.Second, 20*time.Millisecond)
	require.EqualValues(t, 1, counter(t, reg, bus.StepCDN, bus.OutcomePanic))
	require.Zero(t, counter(t, reg, bus.StepCDN, bus.OutcomeTerm), "a panic is counted as a panic only")

	time.Sleep(300 * time.Millisecond) // the policy's backoff is 50 ms
	require.EqualValues(t, 1, boomCalls.Load(), "a panicked job is not redelivered")
	require.Zero(t, heartbeats(t), "the heartbeat of the panicked handler was stopped")

	var stack string
	for _, e := range logs.All() {
		if s, ok := e.ContextMap()["stack"].(string); ok {
			stack = s
		}
	}
	require.NotEmpty(t, stack, "the stack is logged at Error level")
	first := strings.SplitN(stack, "\n", 3)
	require.Contains(t, first[0], "TestPanicBecomesStepFailed", "the stack starts at the panic site: %s", stack)
	require.Contains(t, first[1], "panic_test.go")
}

func TestPanicInDecodeBecomesStepFailed(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	fails := failures(t, tb)
	var handled atomic.Int32
	runWorker(t, tb, func(context.Context, *backbeatv1.CdnJob) error { handled.Add(1); return nil },
		func(w *bus.Worker[*backbeatv1.CdnJob]) {
			w.New = func() *backbeatv1.CdnJob { panic("no message type registered") }
		})
	require.NoError(t, tb.pub.Publish(context.Background(), tb.subj.CDNJob("v9"), &backbeatv1.CdnJob{VideoId: "v9", RunId: "r9"}, "id9"))
	select {
	case sf := <-fails:
		require.Equal(t, "v9", sf.VideoId, "taken from the subject")
		require.True(t, sf.Permanent)
		require.Equal(t, "panic: no message type registered", sf.Reason)
	case <-time.After(10 * time.Second):
		t.Fatal("no step.failed for a panicking decoder")
	}
	require.Eventually(t, func() bool { return pendingJobs(t, tb) == 0 }, 5*time.Second, 20*time.Millisecond)
	require.Zero(t, handled.Load())
}

// explodingError panics when asked for its text: a bug in the runner's own
// reporting, outside the handler.
type explodingError struct{}

func (explodingError) Error() string { panic("Error method exploded") }

func TestPanicInRunnerTerminatesMessage(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var calls atomic.Int32
	runWorker(t, tb, func(context.Context, *backbeatv1.CdnJob) error {
		calls.Add(1)
		return bus.Permanent(explodingError{})
	})
	require.NoError(t, tb.pub.Publish(context.Background(), tb.subj.CDNJob("v10"), &backbeatv1.CdnJob{VideoId: "v10", RunId: "r10"}, "id10"))
	require.Eventually(t, func() bool { return pendingJobs(t, tb) == 0 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	require.EqualValues(t, 1, calls.Load(), "terminated, not redelivered")
}
