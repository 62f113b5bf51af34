package coordinator_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/testenv"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// TestRefusedCreates: a create the user cannot pay for, or whose region is
// longer than the bundle allows, ends in error with a reason and moves no
// credits; no audio job is queued.
func TestRefusedCreates(t *testing.T) {
	t.Parallel()
	h := setup(t, nil)
	require.NoError(t, h.db.UpsertUser(h.ctx(), store.User{ID: "poor", Balance: 1, Bundle: testBundle}))

	t.Run("insufficient credits", func(t *testing.T) {
		vid := h.vid("poor")
		c := h.create(vid, "q1")
		c.UserId = "poor"
		h.event(vid, bus.KindVideoCreate, c)
		v := h.waitStatus(vid, store.StatusError)
		require.Contains(t, v.Reason, "insufficient credits")
		require.Contains(t, v.Reason, "costs 2 units")
		require.Equal(t, int64(1), h.balance("poor"))
		require.Empty(t, h.ledger("poor"))
		r := h.run(v.RunID)
		require.Equal(t, store.StageDone, r.Stage)
		require.Equal(t, bus.RunState{RunID: v.RunID, State: bus.RunFailed}, h.runState(vid))
		h.settle()
		h.noJob(bus.StepAudio)
	})

	t.Run("region longer than the bundle allows", func(t *testing.T) {
		vid := h.vid("long")
		c := h.create(vid, "q1")
		c.StartSeconds, c.EndSeconds = 0, testMaxRegion+5
		h.event(vid, bus.KindVideoCreate, c)
		v := h.waitStatus(vid, store.StatusError)
		require.Contains(t, v.Reason, "longer than")
		require.Equal(t, int64(startBalance), h.balance("u1"))
		require.Empty(t, h.ledger("u1"))
		h.settle()
		h.noJob(bus.StepAudio)
	})

	t.Run("the exact maximum is accepted", func(t *testing.T) {
		vid := h.vid("max")
		c := h.create(vid, "q1")
		c.StartSeconds, c.EndSeconds = 10, 10+testMaxRegion
		h.event(vid, bus.KindVideoCreate, c)
		aj, _ := job(h, bus.StepAudio, &backbeatv1.AudioJob{})
		require.Equal(t, vid, aj.VideoId)
		require.Equal(t, int64(startBalance-2), h.balance("u1"))
	})
}

// progress publishes RenderProgress for a render every 200 ms; frames()
// gives the count to send, so a test can make it advance or stop.
func (h *harness) progress(ctx context.Context, wg *sync.WaitGroup, vid, runID string, attempt int32, frames func() int64) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			p := &backbeatv1.RenderProgress{VideoId: vid, RunId: runID, Attempt: attempt, FramesDone: frames(),
				FramesTotal: 300, Pool: "gpu", Worker: "w1"}
			if err := h.pub.Publish(ctx, h.subj.Progress(vid), p, ""); err != nil && ctx.Err() == nil {
				h.t.Errorf("publish progress: %v", err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
}

// TestStalls: with a 1 s stall timeout, a render whose frame count stops
// moving is stalled (no refund), one whose count advances is not, and
// recovering the stalled one queues attempt 2 on the next pool.
func TestStalls(t *testing.T) {
	t.Parallel()
	h := setup(t, func(o *options) {
		o.cfg.StallTimeout = time.Second
		o.cfg.StallCheckEvery = 100 * time.Millisecond
	})
	stuck, moving := h.vid("stuck"), h.vid("moving")
	stuckRun, _ := h.toProcessing(stuck, "q1")
	movingRun, _ := h.toProcessing(moving, "q2")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var stuckFrames, movingFrames atomic.Int64
	var freeze atomic.Bool
	h.progress(ctx, &wg, stuck, stuckRun, 1, func() int64 {
		if freeze.Load() {
			return stuckFrames.Load()
		}
		return stuckFrames.Add(3)
	})
	h.progress(ctx, &wg, moving, movingRun, 1, func() int64 { return movingFrames.Add(3) })

	// Both advance for longer than the stall timeout: neither stalls.
	time.Sleep(1500 * time.Millisecond)
	require.NoError(t, h.svc.CheckStalls(h.ctx()))
	require.Equal(t, store.StatusProcessing, h.video(stuck).Status)
	require.Equal(t, store.StatusProcessing, h.video(moving).Status)

	// Now one repeats the same count.
	freeze.Store(true)
	frozenAt := time.Now()
	v := h.waitStatus(stuck, store.StatusStalled)
	require.GreaterOrEqual(t, time.Since(frozenAt), 900*time.Millisecond, "stalled before the timeout")
	require.Contains(t, v.Reason, "no render progress")
	require.Eventually(t, func() bool { return testenv.Counter(t, h.reg, "backbeat_runs_stalled_total", "gpu", "render") == 1 },
		5*time.Second, 20*time.Millisecond, "the stall is counted once for operators (pool gpu, stage render)")
	require.NoError(t, h.svc.CheckStalls(h.ctx()))
	require.Equal(t, store.StatusProcessing, h.video(moving).Status)
	require.Equal(t, bus.RunState{RunID: stuckRun, Attempt: 1, State: bus.RunStalled}, h.runState(stuck))

	// A stall refunds nothing.
	require.Equal(t, int64(startBalance-4), h.balance("u1"))
	require.ElementsMatch(t, []string{stuckRun + ":hold:2", movingRun + ":hold:2"}, h.ledger("u1"))

	h.event(stuck, bus.KindVideoRecover, &backbeatv1.VideoRecover{VideoId: stuck, RunId: stuckRun, RequestId: "r1"})
	rj, subj := job(h, bus.RenderConsumer("cpu", bus.PrioNormal), &backbeatv1.RenderJob{})
	require.Equal(t, h.subj.RenderJob("cpu", bus.PrioNormal, stuck), subj)
	require.Equal(t, stuckRun, rj.RunId)
	require.Equal(t, int32(2), rj.Attempt)
	require.Equal(t, "cpu", rj.Pool)
	v = h.waitStatus(stuck, store.StatusProcessing)
	require.Empty(t, v.Reason)
	require.Equal(t, bus.RunState{RunID: stuckRun, Attempt: 2, State: bus.RunActive}, h.runState(stuck))
	require.Equal(t, int64(startBalance-4), h.balance("u1"))

	// The old attempt's frozen progress does not count against attempt 2,
	// and a finished render completes normally.
	h.event(stuck, bus.KindRenderDone, h.renderDone(stuck, stuckRun, 2))
	cj, _ := job(h, bus.StepCDN, &backbeatv1.CdnJob{})
	require.Equal(t, stuckRun, cj.RunId)
	require.Equal(t, store.StatusProcessing, h.video(moving).Status)
}
