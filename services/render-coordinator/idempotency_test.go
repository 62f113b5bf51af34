package coordinator_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// stepCount counts a run's timeline lines of one step and attempt.
func (h *harness) stepCount(runID, name string, attempt int32) int {
	h.t.Helper()
	steps, err := h.db.Steps(h.ctx(), runID)
	require.NoError(h.t, err)
	n := 0
	for _, s := range steps {
		if s.Name == name && s.Attempt == attempt {
			n++
		}
	}
	return n
}

// TestDuplicateEventsTransitionOnce delivers the same AudioDone and
// RenderDone twice (new message ids, so JetStream does not deduplicate them).
func TestDuplicateEventsTransitionOnce(t *testing.T) {
	t.Parallel()
	h := setup(t, nil)
	vid := h.vid("dup")
	runID, _ := h.toProcessing(vid, "q1")
	before := h.run(runID)

	h.event(vid, bus.KindAudioDone, h.audioDone(vid, runID))
	h.settle()
	after := h.run(runID)
	require.Equal(t, before.UpdatedAt, after.UpdatedAt, "the second audio.done must not touch the run")
	require.Equal(t, int32(1), after.Attempt)
	require.Equal(t, 1, h.stepCount(runID, bus.StepRender, 1))
	// The render job is emitted again with the same id: the stream drops it.
	h.noJob(bus.RenderConsumer("gpu", bus.PrioNormal))

	h.event(vid, bus.KindRenderDone, h.renderDone(vid, runID, 1))
	_, _ = job(h, bus.StepCDN, &backbeatv1.CdnJob{})
	h.settle()
	before = h.run(runID)
	require.Equal(t, store.StageCDN, before.Stage)
	h.event(vid, bus.KindRenderDone, h.renderDone(vid, runID, 1))
	h.settle()
	after = h.run(runID)
	require.Equal(t, before.UpdatedAt, after.UpdatedAt)
	require.Equal(t, 1, h.stepCount(runID, bus.StepCDN, 0))
	h.noJob(bus.StepCDN)
	require.Equal(t, []string{runID + ":hold:2"}, h.ledger("u1"))
}

// TestStaleEventsAreIgnored: events of a superseded run and a RenderDone of
// an attempt that already failed over change nothing.
func TestStaleEventsAreIgnored(t *testing.T) {
	t.Parallel()
	h := setup(t, nil)

	t.Run("old run after supersede", func(t *testing.T) {
		vid := h.vid("old")
		oldRun, _ := h.toProcessing(vid, "q1")
		h.event(vid, bus.KindVideoCreate, h.create(vid, "q2"))
		aj, _ := job(h, bus.StepAudio, &backbeatv1.AudioJob{})
		newRun := aj.RunId
		require.NotEqual(t, oldRun, newRun)
		h.settle()

		h.event(vid, bus.KindRenderDone, h.renderDone(vid, oldRun, 1))
		h.event(vid, bus.KindAudioDone, h.audioDone(vid, oldRun))
		h.event(vid, bus.KindStepFailed, &backbeatv1.StepFailed{VideoId: vid, RunId: oldRun, Step: bus.StepRender, Attempt: 1, Reason: "boom"})
		h.settle()
		require.Equal(t, store.StatusCancelled, h.run(oldRun).Status)
		v := h.video(vid)
		require.Equal(t, newRun, v.RunID)
		require.Equal(t, store.StatusPending, v.Status)
		require.Equal(t, store.StageAudio, h.run(newRun).Stage)
		require.Equal(t, bus.RunState{RunID: newRun, State: bus.RunActive}, h.runState(vid))
		h.noJob(bus.StepCDN)
		h.noJob(bus.RenderConsumer("gpu", bus.PrioNormal))
		h.noJob(bus.RenderConsumer("cpu", bus.PrioNormal))
	})

	t.Run("render done of a stale attempt", func(t *testing.T) {
		vid := h.vid("stale")
		runID, _ := h.toProcessing(vid, "q1")
		h.event(vid, bus.KindStepFailed, &backbeatv1.StepFailed{VideoId: vid, RunId: runID, Step: bus.StepRender,
			Attempt: 1, Pool: "gpu", Reason: "gpu lost"})
		rj, subj := job(h, bus.RenderConsumer("cpu", bus.PrioNormal), &backbeatv1.RenderJob{})
		require.Equal(t, h.subj.RenderJob("cpu", bus.PrioNormal, vid), subj)
		require.Equal(t, int32(2), rj.Attempt)
		require.Equal(t, "cpu", rj.Pool)

		h.event(vid, bus.KindRenderDone, h.renderDone(vid, runID, 1))
		h.settle()
		r := h.run(runID)
		require.Equal(t, store.StageRender, r.Stage)
		require.Equal(t, int32(2), r.Attempt)
		require.Empty(t, r.VideoKey)
		h.noJob(bus.StepCDN)

		// The current attempt still completes.
		h.event(vid, bus.KindRenderDone, h.renderDone(vid, runID, 2))
		cj, _ := job(h, bus.StepCDN, &backbeatv1.CdnJob{})
		require.Equal(t, runID, cj.RunId)
	})
}

// TestSupersedeWhilePending: a second create while the first waits for its
// audio cancels and refunds the first, and the runs KV names the second.
func TestSupersedeWhilePending(t *testing.T) {
	t.Parallel()
	h := setup(t, nil)
	vid := h.vid("sup")
	h.event(vid, bus.KindVideoCreate, h.create(vid, "q1"))
	first, _ := job(h, bus.StepAudio, &backbeatv1.AudioJob{})
	h.event(vid, bus.KindVideoCreate, h.create(vid, "q2"))
	second, _ := job(h, bus.StepAudio, &backbeatv1.AudioJob{})
	require.NotEqual(t, first.RunId, second.RunId)
	h.settle()

	old := h.run(first.RunId)
	require.Equal(t, store.StatusCancelled, old.Status)
	require.Contains(t, old.Reason, "superseded")
	require.NotNil(t, old.FinishedAt)
	v := h.video(vid)
	require.Equal(t, second.RunId, v.RunID)
	require.Equal(t, store.StatusPending, v.Status)
	require.Equal(t, bus.RunState{RunID: second.RunId, State: bus.RunActive}, h.runState(vid))
	require.Equal(t, int64(startBalance-2), h.balance("u1"))
	require.Equal(t, []string{first.RunId + ":hold:2", first.RunId + ":refund:2", second.RunId + ":hold:2"}, h.ledger("u1"))

	// The old run's audio finishing late changes nothing.
	h.event(vid, bus.KindAudioDone, h.audioDone(vid, first.RunId))
	h.settle()
	require.Equal(t, store.StatusPending, h.video(vid).Status)
	require.Equal(t, bus.RunState{RunID: second.RunId, State: bus.RunActive}, h.runState(vid))
	h.noJob(bus.RenderConsumer("gpu", bus.PrioNormal))
}

// TestCrashBetweenCommitAndPublishHeals: the RenderJob of a committed
// AudioDone is lost (taken off JOBS and forgotten by the duplicate window, as
// if the coordinator died before publishing it); the AudioDone redelivered
// under a new id emits it again from the run's state.
func TestCrashBetweenCommitAndPublishHeals(t *testing.T) {
	t.Parallel()
	h := setup(t, func(o *options) { o.dupWindow = 500 * time.Millisecond })
	vid := h.vid("heal")
	runID, first := h.toProcessing(vid, "q1")
	h.settle()
	h.noJob(bus.RenderConsumer("gpu", bus.PrioNormal))
	time.Sleep(time.Second) // past the duplicate window: the publish "never happened"

	h.event(vid, bus.KindAudioDone, h.audioDone(vid, runID))
	again, _ := job(h, bus.RenderConsumer("gpu", bus.PrioNormal), &backbeatv1.RenderJob{})
	require.Equal(t, runID, again.RunId)
	require.Equal(t, int32(1), again.Attempt)
	require.Equal(t, first.Encoding.GetCrf(), again.Encoding.GetCrf())
	require.Equal(t, 1, h.stepCount(runID, bus.StepRender, 1))
	require.Equal(t, []string{runID + ":hold:2"}, h.ledger("u1"))

	// The same holds one stage later for the CdnJob.
	h.event(vid, bus.KindRenderDone, h.renderDone(vid, runID, 1))
	_, _ = job(h, bus.StepCDN, &backbeatv1.CdnJob{})
	time.Sleep(time.Second)
	h.event(vid, bus.KindRenderDone, h.renderDone(vid, runID, 1))
	cj, _ := job(h, bus.StepCDN, &backbeatv1.CdnJob{})
	require.Equal(t, runID, cj.RunId)
}

// TestReplayedCreateWithoutRequestID: a create published by hand (no
// request id) is keyed by its stream sequence; replaying it (same body and
// headers, no message id, as `backbeat replay` does) must still not start a
// second run.
func TestReplayedCreateWithoutRequestID(t *testing.T) {
	t.Parallel()
	h := setup(t, nil)
	vid := h.vid("noreq")
	h.event(vid, bus.KindVideoCreate, h.create(vid, ""))
	aj, _ := job(h, bus.StepAudio, &backbeatv1.AudioJob{})
	h.settle()

	st, err := h.js.Stream(h.ctx(), bus.StreamEvents)
	require.NoError(t, err)
	orig, err := st.GetLastMsgForSubject(h.ctx(), h.subj.Event(vid, bus.KindVideoCreate))
	require.NoError(t, err)
	out := nats.NewMsg(orig.Subject)
	out.Data = orig.Data
	for k, vs := range orig.Header {
		if k != jetstream.MsgIDHeader {
			out.Header[k] = vs
		}
	}
	out.Header.Set(bus.HeaderReplayOf, strconv.FormatUint(orig.Sequence, 10))
	_, err = h.js.PublishMsg(h.ctx(), out)
	require.NoError(t, err)
	h.settle()
	require.Equal(t, int64(1), h.countRuns(), "a replayed create made a second run")
	v := h.video(vid)
	require.Equal(t, aj.RunId, v.RunID)
	require.Equal(t, store.StatusPending, v.Status)
	require.Equal(t, []string{aj.RunId + ":hold:2"}, h.ledger("u1"))
}

// TestRetryOfAnOldRunChangesNothing: an operator's retry names the failed
// run it retries; handled after the user asked again (a new run is
// current), it creates no run, holds nothing and leaves the new run alone.
// While the failed run is current, the retry is a create like any other.
func TestRetryOfAnOldRunChangesNothing(t *testing.T) {
	t.Parallel()
	h := setup(t, nil)
	vid := h.vid("retryof")
	runA, _ := h.toProcessing(vid, "q1")
	runB, _ := h.toProcessing(vid, "q2") // the user's new request supersedes A
	require.NotEqual(t, runA, runB)
	runs, balance := h.countRuns(), h.balance("u1")

	retry := h.create(vid, "retry-"+runA)
	retry.RetryOf = runA
	h.event(vid, bus.KindVideoCreate, retry)
	h.settle()
	require.Equal(t, runs, h.countRuns(), "a stale retry creates no run")
	require.Equal(t, balance, h.balance("u1"), "and holds nothing")
	require.Equal(t, runB, h.video(vid).RunID)
	require.Equal(t, store.StatusProcessing, h.run(runB).Status)

	current := h.create(vid, "retry-"+runB)
	current.RetryOf = runB
	h.event(vid, bus.KindVideoCreate, current)
	h.settle()
	require.Equal(t, runs+1, h.countRuns(), "a retry of the current run is a create")
	require.NotEqual(t, runB, h.video(vid).RunID)
}
