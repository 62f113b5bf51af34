package bus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/testenv"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

type testBundle struct {
	js   jetstream.JetStream
	nc   *nats.Conn
	pub  *bus.Publisher
	subj bus.Subjects
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	js, nc := testenv.NATS(t)
	s := bus.Subjects{Prefix: bus.DefaultPrefix}
	return &testBundle{js: js, nc: nc, pub: bus.NewPublisher(js, s), subj: s}
}

// runWorker runs a cdn worker with a fast policy until the test ends; opts
// adjust the worker before it starts.
func runWorker(t *testing.T, tb *testBundle, h bus.Handler[*backbeatv1.CdnJob], opts ...func(*bus.Worker[*backbeatv1.CdnJob])) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := bus.Consumer(ctx, tb.js, bus.StreamJobs, bus.StepCDN)
	require.NoError(t, err)
	w := &bus.Worker[*backbeatv1.CdnJob]{
		Step: bus.StepCDN, New: func() *backbeatv1.CdnJob { return &backbeatv1.CdnJob{} },
		Handle: h, Pub: tb.pub, Log: zaptest.NewLogger(t),
		Policy: bus.Policy{AckWait: 3 * time.Second, MaxDeliver: 3, Backoff: []time.Duration{50 * time.Millisecond}},
	}
	for _, o := range opts {
		o(w)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx, 2, cons) }()
	t.Cleanup(func() { cancel(); <-done })
}

// failures subscribes to step.failed events.
func failures(t *testing.T, tb *testBundle) chan *backbeatv1.StepFailed {
	t.Helper()
	ch := make(chan *backbeatv1.StepFailed, 10)
	sub, err := tb.nc.Subscribe(tb.subj.EventsOfKind(bus.KindStepFailed), func(m *nats.Msg) {
		var sf backbeatv1.StepFailed
		if proto.Unmarshal(m.Data, &sf) == nil {
			ch <- &sf
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

func pendingJobs(t *testing.T, tb *testBundle) uint64 {
	t.Helper()
	s, err := tb.js.Stream(context.Background(), bus.StreamJobs)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

func TestWorkerRetriesThenAcks(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var calls atomic.Int32
	done := make(chan struct{})
	runWorker(t, tb, func(ctx context.Context, j *backbeatv1.CdnJob) error {
		if calls.Add(1) < 3 {
			return errors.New("edge briefly unreachable")
		}
		close(done)
		return nil
	})
	ctx := context.Background()
	require.NoError(t, tb.pub.Publish(ctx, tb.subj.CDNJob("v1"), &backbeatv1.CdnJob{VideoId: "v1", RunId: "r1"}, "id1"))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not succeed on the third delivery")
	}
	require.Eventually(t, func() bool { return pendingJobs(t, tb) == 0 }, 5*time.Second, 50*time.Millisecond, "acked job leaves the work queue")
	require.EqualValues(t, 3, calls.Load())
}

func TestWorkerPermanentErrorTerminatesAndReports(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	fails := failures(t, tb)
	var calls atomic.Int32
	runWorker(t, tb, func(ctx context.Context, j *backbeatv1.CdnJob) error {
		calls.Add(1)
		return bus.Permanentf("path %q is not ours", "x")
	})
	require.NoError(t, tb.pub.Publish(context.Background(), tb.subj.CDNJob("v2"), &backbeatv1.CdnJob{VideoId: "v2", RunId: "r2"}, "id2"))
	select {
	case sf := <-fails:
		require.Equal(t, "v2", sf.VideoId)
		require.Equal(t, "r2", sf.RunId)
		require.Equal(t, bus.StepCDN, sf.Step)
		require.True(t, sf.Permanent)
		require.Contains(t, sf.Reason, "is not ours")
	case <-time.After(10 * time.Second):
		t.Fatal("no step.failed")
	}
	require.Eventually(t, func() bool { return pendingJobs(t, tb) == 0 }, 5*time.Second, 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	require.EqualValues(t, 1, calls.Load(), "a permanent error is not retried")
}

func TestWorkerExhaustedRetriesReportNotPermanent(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	fails := failures(t, tb)
	var calls atomic.Int32
	runWorker(t, tb, func(ctx context.Context, j *backbeatv1.CdnJob) error {
		calls.Add(1)
		return errors.New("still down")
	})
	require.NoError(t, tb.pub.Publish(context.Background(), tb.subj.CDNJob("v3"), &backbeatv1.CdnJob{VideoId: "v3", RunId: "r3"}, "id3"))
	select {
	case sf := <-fails:
		require.False(t, sf.Permanent)
		require.Contains(t, sf.Reason, "still down")
	case <-time.After(10 * time.Second):
		t.Fatal("no step.failed after MaxDeliver")
	}
	require.EqualValues(t, 3, calls.Load())
}

func TestWorkerUndecodableMessageIsTerminated(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	fails := failures(t, tb)
	var calls atomic.Int32
	runWorker(t, tb, func(ctx context.Context, j *backbeatv1.CdnJob) error { calls.Add(1); return nil })
	_, err := tb.js.Publish(context.Background(), tb.subj.CDNJob("v4"), []byte{0xff, 0xff, 0xff})
	require.NoError(t, err)
	select {
	case sf := <-fails:
		require.Equal(t, "v4", sf.VideoId)
		require.Contains(t, sf.Reason, "undecodable")
	case <-time.After(10 * time.Second):
		t.Fatal("no step.failed for garbage")
	}
	require.Eventually(t, func() bool { return pendingJobs(t, tb) == 0 }, 5*time.Second, 50*time.Millisecond, "garbage must not stay in the queue")
	require.Zero(t, calls.Load())
}

func TestDecodeAcceptsProtoJSON(t *testing.T) {
	t.Parallel()
	var j backbeatv1.CdnJob
	require.NoError(t, bus.Decode([]byte(`{"videoId":"v5","paths":["videos/v5.mp4"]}`), bus.ContentTypeJSON, &j))
	require.Equal(t, "v5", j.VideoId)
	require.Error(t, bus.Decode([]byte(`{"videoIdd":"v5"}`), bus.ContentTypeJSON, &j), "unknown fields are refused")
}

func TestPublishDeduplicatesByMsgID(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	id := bus.MsgID("r1", bus.StepCDN, 1, "job")
	for i := 0; i < 3; i++ {
		require.NoError(t, tb.pub.Publish(ctx, tb.subj.CDNJob("v6"), &backbeatv1.CdnJob{VideoId: "v6"}, id))
	}
	require.EqualValues(t, 1, pendingJobs(t, tb))
}

func TestGuardCancelsWhenRunStopsBeingCurrent(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	runs, err := bus.OpenRuns(ctx, tb.js)
	require.NoError(t, err)

	_, _, err = runs.Guard(ctx, "v7", "r1", 1)
	require.ErrorIs(t, err, bus.ErrNotCurrent, "no run yet")

	require.NoError(t, runs.Set(ctx, "v7", bus.RunState{RunID: "r1", Attempt: 1, State: bus.RunActive}))
	gctx, cancel, err := runs.Guard(ctx, "v7", "r1", 1)
	require.NoError(t, err)
	defer cancel()
	_, _, err = runs.Guard(ctx, "v7", "r1", 2)
	require.ErrorIs(t, err, bus.ErrNotCurrent, "another attempt is not current")

	start := time.Now()
	require.NoError(t, runs.Set(ctx, "v7", bus.RunState{RunID: "r2", Attempt: 1, State: bus.RunActive}))
	select {
	case <-gctx.Done():
		require.ErrorIs(t, context.Cause(gctx), bus.ErrNotCurrent)
		require.Less(t, time.Since(start), time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("guard did not fire on supersede")
	}
}

func TestSubjectsVideoIDOf(t *testing.T) {
	t.Parallel()
	s := bus.Subjects{}
	require.Equal(t, "abc", s.VideoIDOf(s.Event("abc", bus.KindVideoCreate)))
	require.Equal(t, "abc", s.VideoIDOf(s.RenderJob("gpu", bus.PrioHigh, "abc")))
	require.Equal(t, "abc", s.VideoIDOf(s.AudioJob("abc")))
	require.Equal(t, "abc", s.VideoIDOf(s.Progress("abc")))
	require.Equal(t, "", s.VideoIDOf("other.events.abc.video.create"))
}

// TestFetchOrderDoesNotStarve: over three consumers, every fourth fetch
// starts from the lowest priority; the others go high, normal, low.
func TestFetchOrderDoesNotStarve(t *testing.T) {
	t.Parallel()
	lowFirst := 0
	for n := 0; n < 40; n++ {
		if bus.FetchOrder(n, 4, 3)[0] == 2 {
			lowFirst++
			require.Equal(t, []int{2, 0, 1}, bus.FetchOrder(n, 4, 3))
		} else {
			require.Equal(t, []int{0, 1, 2}, bus.FetchOrder(n, 4, 3))
		}
	}
	require.Equal(t, 10, lowFirst)
	require.Equal(t, []int{0}, bus.FetchOrder(3, 4, 1), "one consumer is always tried")
}
