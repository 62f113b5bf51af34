package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/testenv"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// stuckCall is one OnStuck call.
type stuckCall struct {
	subject   string
	delivered uint64
	err       error
}

// coordinatorRouter runs a Router on the coordinator's durable with the
// default topology's coordinator policy, backoffs shrunk to milliseconds, and
// records its OnStuck calls. Every step.failed it sees is acked, so that a
// failure it reports cannot loop back into it.
func coordinatorRouter(t *testing.T, tb *testBundle, route func(*bus.Router)) (jetstream.Consumer, func() []stuckCall) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := bus.Consumer(ctx, tb.js, bus.StreamEvents, bus.ConsumerCoordinator)
	require.NoError(t, err)
	pol := testenv.Topology().Policy(bus.ConsumerCoordinator)
	pol.Backoff = []time.Duration{2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond}
	pol.AlertAfter = 2
	var mu sync.Mutex
	var calls []stuckCall
	r := &bus.Router{Step: "coordinator", Pub: tb.pub, Log: zaptest.NewLogger(t), Policy: pol,
		OnStuck: func(ctx context.Context, subject string, delivered uint64, err error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, stuckCall{subject, delivered, err})
		}}
	bus.Route(r, bus.KindStepFailed, func() *backbeatv1.StepFailed { return &backbeatv1.StepFailed{} },
		func(context.Context, *backbeatv1.StepFailed) error { return nil })
	route(r)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx, cons, 2) }()
	t.Cleanup(func() { cancel(); <-done })
	return cons, func() []stuckCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]stuckCall(nil), calls...)
	}
}

// settled says the consumer has nothing pending and nothing unacked.
func settled(t *testing.T, cons jetstream.Consumer) bool {
	t.Helper()
	ci, err := cons.Info(context.Background())
	require.NoError(t, err)
	return ci.NumPending == 0 && ci.NumAckPending == 0 && ci.NumRedelivered == 0
}

var errFailover = errors.New("connection refused: postgres failover in progress")

func TestTransientErrorsRetryForever(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	fails := failures(t, tb)
	// More failures than the coordinator's old MaxDeliver of 10.
	const failFor = 12
	var calls atomic.Int32
	done := make(chan struct{})
	cons, stuck := coordinatorRouter(t, tb, func(r *bus.Router) {
		bus.Route(r, bus.KindAudioDone, func() *backbeatv1.AudioDone { return &backbeatv1.AudioDone{} },
			func(ctx context.Context, m *backbeatv1.AudioDone) error {
				if calls.Add(1) <= failFor {
					return fmt.Errorf("apply audio.done: %w", errFailover)
				}
				close(done)
				return nil
			})
	})
	require.EqualValues(t, -1, cons.CachedInfo().Config.MaxDeliver, "the coordinator's durable is unlimited")

	subject := tb.subj.Event("v11", bus.KindAudioDone)
	require.NoError(t, tb.pub.Publish(context.Background(), subject, &backbeatv1.AudioDone{VideoId: "v11", RunId: "r11"}, "ad11"))
	select {
	case <-done:
	case sf := <-fails:
		t.Fatalf("a transient error became step.failed after %d deliveries: %v", calls.Load(), sf)
	case <-time.After(15 * time.Second):
		t.Fatalf("the handler never succeeded (%d calls)", calls.Load())
	}
	require.Eventually(t, func() bool { return settled(t, cons) }, 5*time.Second, 20*time.Millisecond, "the event is acked")
	require.EqualValues(t, failFor+1, calls.Load())
	select {
	case sf := <-fails:
		t.Fatalf("a transient error was reported as step.failed: %v", sf)
	case <-time.After(200 * time.Millisecond):
	}

	// AlertAfter 2: stuck from the 2nd delivery, alerted on the 2nd and the
	// 12th (AlertEvery 10), not on the nine failures in between.
	got := stuck()
	require.Len(t, got, 2, "%+v", got)
	for i, want := range []uint64{2, 2 + bus.AlertEvery} {
		require.Equal(t, subject, got[i].subject)
		require.Equal(t, want, got[i].delivered)
		require.ErrorIs(t, got[i].err, errFailover)
	}
}

func TestRetryForeverStillFailsPermanentErrors(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	fails := failures(t, tb)
	var calls atomic.Int32
	cons, stuck := coordinatorRouter(t, tb, func(r *bus.Router) {
		bus.Route(r, bus.KindAudioDone, func() *backbeatv1.AudioDone { return &backbeatv1.AudioDone{} },
			func(ctx context.Context, m *backbeatv1.AudioDone) error {
				calls.Add(1)
				return bus.Permanentf("audio.done for unknown run %q", m.RunId)
			})
	})
	require.NoError(t, tb.pub.Publish(context.Background(), tb.subj.Event("v12", bus.KindAudioDone), &backbeatv1.AudioDone{VideoId: "v12", RunId: "r12"}, "ad12"))
	select {
	case sf := <-fails:
		require.Equal(t, "v12", sf.VideoId)
		require.Equal(t, "coordinator", sf.Step)
		require.True(t, sf.Permanent)
		require.Contains(t, sf.Reason, "unknown run")
	case <-time.After(10 * time.Second):
		t.Fatal("no step.failed for a permanent error")
	}
	require.Eventually(t, func() bool { return settled(t, cons) }, 5*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.EqualValues(t, 1, calls.Load(), "terminated, not retried")
	require.Empty(t, stuck())
}

func TestCoordinatorPolicyRetriesForever(t *testing.T) {
	t.Parallel()
	top := bus.DefaultTopology(bus.DefaultPrefix, nil)
	require.True(t, top.Policy(bus.ConsumerCoordinator).RetryForever)
	require.True(t, bus.Topology{}.Policy(bus.ConsumerCoordinator).RetryForever, "without an entry the coordinator still retries forever")
	require.False(t, top.Policy(bus.StepAudio).RetryForever)

	// A deployment whose durable still has the old MaxDeliver 10 is moved to
	// unlimited by the next Ensure.
	tb := setup(t)
	ctx := context.Background()
	cons, err := bus.Consumer(ctx, tb.js, bus.StreamEvents, bus.ConsumerCoordinator)
	require.NoError(t, err)
	old := cons.CachedInfo().Config
	old.MaxDeliver = 10
	_, err = tb.js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, old)
	require.NoError(t, err)
	require.NoError(t, testenv.Topology().Ensure(ctx, tb.js))
	cons, err = bus.Consumer(ctx, tb.js, bus.StreamEvents, bus.ConsumerCoordinator)
	require.NoError(t, err)
	require.Equal(t, -1, cons.CachedInfo().Config.MaxDeliver)
}

// A failure to handle the router's own step.failed is not reported again: the
// new report would reach the same handler and fail the same way, for ever.
func TestFailureOfOwnFailureReportIsNotReportedAgain(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	fails := failures(t, tb)
	var calls atomic.Int32
	cons, _ := coordinatorRouter(t, tb, func(r *bus.Router) {
		bus.Route(r, bus.KindStepFailed, func() *backbeatv1.StepFailed { return &backbeatv1.StepFailed{} },
			func(ctx context.Context, m *backbeatv1.StepFailed) error {
				calls.Add(1)
				var runs map[string]*backbeatv1.StepFailed
				return errors.New(runs[m.RunId].Reason) // nil pointer dereference
			})
	})
	own := &backbeatv1.StepFailed{VideoId: "v13", RunId: "r13", Step: "coordinator", Reason: "boom", Permanent: true}
	require.NoError(t, tb.pub.Publish(context.Background(), tb.subj.Event("v13", bus.KindStepFailed), own, "sf13"))
	require.Eventually(t, func() bool { return settled(t, cons) }, 5*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	require.Len(t, fails, 1, "only the original step.failed was published")
	require.EqualValues(t, 1, calls.Load())
}
