package bus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/testenv"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// runPriorityWorker runs a render worker over the three priority consumers
// of testenv's first pool with the given PollInterval, sending each handled
// job's video id and queue wait to the returned channel.
func runPriorityWorker(t *testing.T, tb *testBundle, poll time.Duration) (pool string, handled chan handledJob) {
	t.Helper()
	pool = testenv.Pools[0]
	ctx, cancel := context.WithCancel(context.Background())
	cons := make([]jetstream.Consumer, 0, len(bus.Priorities))
	for _, prio := range bus.Priorities {
		c, err := bus.Consumer(ctx, tb.js, bus.StreamJobs, bus.RenderConsumer(pool, prio))
		require.NoError(t, err)
		cons = append(cons, c)
	}
	handled = make(chan handledJob, 16)
	w := &bus.Worker[*backbeatv1.RenderJob]{
		Step: bus.StepRender, New: func() *backbeatv1.RenderJob { return &backbeatv1.RenderJob{} },
		Handle: func(ctx context.Context, m *backbeatv1.RenderJob) error {
			handled <- handledJob{video: m.VideoId, wait: bus.QueueWait(ctx)}
			return nil
		},
		Pub: tb.pub, Log: zaptest.NewLogger(t), PollInterval: poll,
		Policy: bus.Policy{AckWait: 5 * time.Second, MaxDeliver: 3},
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx, 1, cons...) }()
	t.Cleanup(func() { cancel(); <-done })
	return pool, handled
}

type handledJob struct {
	video string
	wait  time.Duration
}

// fetchRequests counts the pull requests (CONSUMER.MSG.NEXT) sent to JOBS.
func fetchRequests(t *testing.T, nc *nats.Conn) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	sub, err := nc.Subscribe("$JS.API.CONSUMER.MSG.NEXT."+bus.StreamJobs+".>", func(*nats.Msg) { n.Add(1) })
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &n
}

// A worker over several consumers is woken by the job's doorbell: with a
// poll interval of an hour, a job of any priority is still taken at once.
func TestPriorityWorkerWakesOnTheDoorbell(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	pool, handled := runPriorityWorker(t, tb, time.Hour)
	time.Sleep(300 * time.Millisecond) // the worker has found every consumer empty and waits
	for i, prio := range []string{bus.PrioLow, bus.PrioHigh, bus.PrioNormal} {
		vid := "bell" + prio
		require.NoError(t, tb.pub.Publish(context.Background(), tb.subj.RenderJob(pool, prio, vid),
			&backbeatv1.RenderJob{VideoId: vid, RunId: "r1", Attempt: int32(i + 1)}, "bell:"+vid))
		select {
		case h := <-handled:
			require.Equal(t, vid, h.video)
			require.Greater(t, h.wait, time.Duration(0), "the queue wait is measured from the stream's timestamp")
			require.Less(t, h.wait, 30*time.Second)
		case <-time.After(20 * time.Second):
			t.Fatalf("a %s job waited for the hour-long poll: the doorbell did not wake the worker", prio)
		}
	}
}

// The bell rings once a job is stored, a moment before its consumer knows
// of it: a worker woken by it must still find the job, every time. Jobs go
// one at a time, each published once the worker is idle again.
func TestPriorityWorkerNeverMissesABell(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	pool, handled := runPriorityWorker(t, tb, time.Hour)
	for i := 0; i < 500; i++ {
		vid := fmt.Sprintf("race%d", i)
		require.NoError(t, tb.pub.Publish(context.Background(), tb.subj.RenderJob(pool, bus.PrioNormal, vid),
			&backbeatv1.RenderJob{VideoId: vid, RunId: "r1", Attempt: 1}, "race:"+vid))
		select {
		case h := <-handled:
			require.Equal(t, vid, h.video)
		case <-time.After(10 * time.Second):
			t.Fatalf("job %d was stored but the worker missed its bell", i)
		}
	}
}

// An idle worker over several consumers sends no pull request while no job
// arrives: one round over its consumers at start, then nothing.
func TestIdlePriorityWorkerDoesNotPoll(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	requests := fetchRequests(t, tb.nc)
	runPriorityWorker(t, tb, 0) // the default recheck
	time.Sleep(2 * time.Second)
	n := requests.Load()
	require.LessOrEqual(t, n, int64(len(bus.Priorities)),
		"an idle worker polled: %d pull requests in 2 s (the old 250 ms poll sent about %d)", n, 8*len(bus.Priorities))
	require.Greater(t, n, int64(0), "the worker never looked at its consumers")
}

// Without a doorbell (no publisher to find the connection), the worker falls
// back to polling, and still takes its jobs.
func TestPriorityWorkerWithoutDoorbellPolls(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	requests := fetchRequests(t, tb.nc)
	pool := testenv.Pools[0]
	ctx, cancel := context.WithCancel(context.Background())
	var cons []jetstream.Consumer
	for _, prio := range bus.Priorities {
		c, err := bus.Consumer(ctx, tb.js, bus.StreamJobs, bus.RenderConsumer(pool, prio))
		require.NoError(t, err)
		cons = append(cons, c)
	}
	got := make(chan string, 1)
	w := &bus.Worker[*backbeatv1.RenderJob]{
		Step: bus.StepRender, New: func() *backbeatv1.RenderJob { return &backbeatv1.RenderJob{} },
		Handle: func(_ context.Context, m *backbeatv1.RenderJob) error { got <- m.VideoId; return nil },
		Log:    zaptest.NewLogger(t), Policy: bus.Policy{AckWait: 5 * time.Second, MaxDeliver: 3},
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx, 1, cons...) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(time.Second)
	require.Greater(t, requests.Load(), int64(2*len(bus.Priorities)), "without a doorbell the worker must poll")
	require.NoError(t, tb.pub.Publish(context.Background(), tb.subj.RenderJob(pool, bus.PrioNormal, "poll1"),
		&backbeatv1.RenderJob{VideoId: "poll1", RunId: "r1", Attempt: 1}, "poll:1"))
	select {
	case v := <-got:
		require.Equal(t, "poll1", v)
	case <-time.After(20 * time.Second):
		t.Fatal("the polling worker never took the job")
	}
}

func TestBellSubjects(t *testing.T) {
	t.Parallel()
	s := bus.Subjects{Prefix: "bb"}
	b, ok := s.Bell(s.RenderJob("gpu", bus.PrioHigh, "*"))
	require.True(t, ok)
	require.Equal(t, "bb.bell.render.gpu.high.*", b)
	_, ok = s.Bell(s.Event("v1", bus.KindRenderDone))
	require.False(t, ok, "only JOBS subjects have a bell")
	_, ok = s.Bell("bb.jobs.")
	require.False(t, ok)
}
