package coordinator_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// TestHappyPath plays every worker through one video and checks each job the
// coordinator hands out, the final state and the credits.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	h := setup(t, nil)
	vid := h.vid("happy")

	h.event(vid, bus.KindVideoCreate, h.create(vid, "q1"))
	aj, subj := job(h, bus.StepAudio, &backbeatv1.AudioJob{})
	require.Equal(t, h.subj.AudioJob(vid), subj)
	require.Equal(t, vid, aj.VideoId)
	require.NotEmpty(t, aj.RunId)
	require.Equal(t, keys.UploadPrefix(vid)+"song.wav", aj.SourceKey)
	require.Equal(t, 5.0, aj.StartSeconds)
	require.Equal(t, 17.0, aj.EndSeconds)
	require.Equal(t, float64(testMaxRegion), aj.MaxRegionSeconds)
	require.Equal(t, int32(testFPS), aj.Fps)
	runID := aj.RunId
	require.Equal(t, store.StatusPending, h.video(vid).Status)
	require.Equal(t, bus.RunState{RunID: runID, State: bus.RunActive}, h.runState(vid))
	require.Equal(t, int64(startBalance-2), h.balance("u1"))

	h.event(vid, bus.KindAudioDone, h.audioDone(vid, runID))
	rj, subj := job(h, bus.RenderConsumer("gpu", bus.PrioNormal), &backbeatv1.RenderJob{})
	require.Equal(t, h.subj.RenderJob("gpu", bus.PrioNormal, vid), subj)
	require.Equal(t, runID, rj.RunId)
	require.Equal(t, int32(1), rj.Attempt)
	require.Equal(t, "gpu", rj.Pool)
	require.Equal(t, backbeatv1.Priority_PRIORITY_NORMAL, rj.Priority)
	require.Equal(t, int32(testCRF), rj.Encoding.GetCrf())
	require.Equal(t, testPreset, rj.Encoding.GetPreset())
	require.Equal(t, int32(testFPS), rj.Encoding.GetFps())
	require.Equal(t, "libx264", rj.Encoding.GetEncoder())
	require.Equal(t, keys.RunKey(vid, runID, keys.ObjectAudio), rj.AudioKey)
	require.Equal(t, keys.RunKey(vid, runID, keys.ObjectAnalysis), rj.AnalysisKey)
	require.Equal(t, keys.RunKey(vid, runID, keys.ObjectVideo), rj.OutputKey)
	require.Equal(t, 12.0, rj.DurationSeconds)
	require.Equal(t, "spectrum", rj.Template)
	require.Equal(t, map[string]string{"color": "#ff0000"}, rj.TemplateSettings)
	require.Equal(t, backbeatv1.Format_FORMAT_SQUARE, rj.Format)
	v := h.video(vid)
	require.Equal(t, store.StatusProcessing, v.Status)
	require.Empty(t, v.MP3URL, "the MP3 is public only once the video is ready")
	require.Equal(t, bus.RunState{RunID: runID, Attempt: 1, State: bus.RunActive}, h.runState(vid))

	h.event(vid, bus.KindRenderDone, h.renderDone(vid, runID, 1))
	cj, subj := job(h, bus.StepCDN, &backbeatv1.CdnJob{})
	require.Equal(t, h.subj.CDNJob(vid), subj)
	require.Equal(t, runID, cj.RunId)
	require.Equal(t, []string{keys.PublicKey(vid, runID, keys.ObjectVideo), keys.PublicKey(vid, runID, keys.ObjectMP3),
		keys.PublicKey(vid, runID, keys.ObjectThumbnail), keys.PublicKey(vid, runID, keys.ObjectSquareThumbnail)}, cj.Paths)
	_, err := h.blob.Stat(h.ctx(), keys.PublicKey(vid, runID, keys.ObjectVideo))
	require.ErrorIs(t, err, blob.ErrNotFound, "nothing is public before ready")
	require.Equal(t, store.StatusProcessing, h.video(vid).Status)

	h.event(vid, bus.KindCDNDone, &backbeatv1.CdnDone{VideoId: vid, RunId: runID, PurgedPaths: cj.Paths})
	v = h.waitStatus(vid, store.StatusReady)
	require.Equal(t, edge+"/"+keys.PublicKey(vid, runID, keys.ObjectVideo), v.VideoURL)
	require.Equal(t, edge+"/"+keys.PublicKey(vid, runID, keys.ObjectMP3), v.MP3URL)
	for _, name := range []string{keys.ObjectVideo, keys.ObjectMP3} {
		_, err := h.blob.Stat(h.ctx(), keys.PublicKey(vid, runID, name))
		require.NoError(t, err, "promoted %s", name)
	}
	require.Equal(t, 3.5, v.RenderSeconds)
	require.Empty(t, v.Reason)

	tj, subj := job(h, bus.StepThumbnail, &backbeatv1.ThumbnailJob{})
	require.Equal(t, h.subj.ThumbnailJob(vid), subj)
	require.Equal(t, runID, tj.RunId)
	require.Equal(t, keys.RunKey(vid, runID, keys.ObjectVideo), tj.VideoKey)
	require.Equal(t, keys.RunKey(vid, runID, keys.ObjectThumbnail), tj.ThumbnailKey)
	require.Equal(t, keys.RunKey(vid, runID, keys.ObjectSquareThumbnail), tj.SquareThumbnailKey)
	// The NotifyJob is consumed by the coordinator's own notifier, whose
	// notify.done proves it was published with this run.
	require.Eventually(t, func() bool {
		var nd backbeatv1.NotifyDone
		return lastEvent(h, vid, bus.KindNotifyDone, &nd) && nd.RunId == runID && nd.Channel == "log"
	}, 10*time.Second, 50*time.Millisecond, "no notify.done")

	h.put(tj.ThumbnailKey)
	h.put(tj.SquareThumbnailKey)
	h.event(vid, bus.KindThumbnailDone, &backbeatv1.ThumbnailDone{VideoId: vid, RunId: runID,
		ThumbnailKey: tj.ThumbnailKey, SquareThumbnailKey: tj.SquareThumbnailKey})
	h.settle()
	v = h.video(vid)
	require.Equal(t, edge+"/"+keys.PublicKey(vid, runID, keys.ObjectThumbnail), v.ThumbnailURL)
	require.Equal(t, edge+"/"+keys.PublicKey(vid, runID, keys.ObjectSquareThumbnail), v.SquareThumbnailURL)
	require.Equal(t, bus.RunState{RunID: runID, Attempt: 1, State: bus.RunDone}, h.runState(vid))

	var st backbeatv1.VideoStatusChanged
	require.True(t, lastEvent(h, vid, bus.KindVideoStatus, &st))
	require.Equal(t, backbeatv1.VideoStatus_VIDEO_STATUS_READY, st.Status)

	require.Equal(t, int64(startBalance-2), h.balance("u1"))
	require.Equal(t, []string{runID + ":hold:2"}, h.ledger("u1"))
	r := h.run(runID)
	require.Equal(t, store.StatusReady, r.Status)
	require.Equal(t, store.StageDone, r.Stage)
	require.NotNil(t, r.FinishedAt)
	steps, err := h.db.Steps(h.ctx(), runID)
	require.NoError(t, err)
	for _, s := range steps {
		if s.Name == bus.StepNotify {
			continue // may still be closing
		}
		require.NotNil(t, s.EndedAt, "step %s/%d still open", s.Name, s.Attempt)
		require.Empty(t, s.Error, "step %s", s.Name)
	}
	h.noJob(bus.StepAudio)
	h.noJob(bus.RenderConsumer("gpu", bus.PrioNormal))
	h.noJob(bus.StepCDN)
	h.noJob(bus.StepThumbnail)
}

// TestReplayChangesNothing re-publishes the whole EVENTS history (new message
// ids, as `backbeat replay` does) after one ready and one failed video.
func TestReplayChangesNothing(t *testing.T) {
	t.Parallel()
	h := setup(t, nil)
	ready := h.vid("ready")
	readyRun := h.toReady(ready, "q1")

	failed := h.vid("failed")
	h.event(failed, bus.KindVideoCreate, h.create(failed, "q2"))
	aj, _ := job(h, bus.StepAudio, &backbeatv1.AudioJob{})
	h.event(failed, bus.KindStepFailed, &backbeatv1.StepFailed{VideoId: failed, RunId: aj.RunId, Step: bus.StepAudio,
		Reason: "not an audio file", Permanent: true})
	h.waitStatus(failed, store.StatusError)
	// Let the notifier finish too, so nothing moves while we snapshot.
	require.Eventually(t, func() bool {
		var nd backbeatv1.NotifyDone
		return lastEvent(h, failed, bus.KindNotifyDone, &nd) && lastEvent(h, ready, bus.KindNotifyDone, &nd)
	}, 10*time.Second, 50*time.Millisecond)
	h.settle()

	type snapshot struct {
		runs    int64
		balance int64
		ledger  []string
		ready   store.Video
		failed  store.Video
		kvReady bus.RunState
		kvFail  bus.RunState
	}
	snap := func() snapshot {
		r, f := h.video(ready), h.video(failed)
		r.UpdatedAt, f.UpdatedAt = time.Time{}, time.Time{}
		return snapshot{h.countRuns(), h.balance("u1"), h.ledger("u1"), r, f, h.runState(ready), h.runState(failed)}
	}
	before := snap()
	require.Equal(t, int64(2), before.runs)
	require.Equal(t, int64(startBalance-2), before.balance, "the failed video was refunded")
	require.Equal(t, store.StatusReady, before.ready.Status)
	require.Equal(t, store.StatusError, before.failed.Status)
	require.Contains(t, before.failed.Reason, "not an audio file")

	// Read the history with an ordered consumer and publish it again.
	oc, err := h.js.OrderedConsumer(h.ctx(), bus.StreamEvents, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	info, err := h.js.Stream(h.ctx(), bus.StreamEvents)
	require.NoError(t, err)
	last := info.CachedInfo().State.LastSeq
	var history []jetstream.Msg
	for len(history) == 0 || seqOf(t, history[len(history)-1]) < last {
		msg, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		require.NoError(t, err)
		history = append(history, msg)
	}
	require.Greater(t, len(history), 10)
	for _, m := range history {
		out := nats.NewMsg(m.Subject())
		out.Data = m.Data()
		for k, vs := range m.Headers() {
			if k == jetstream.MsgIDHeader {
				continue
			}
			for _, v := range vs {
				out.Header.Add(k, v)
			}
		}
		_, err := h.js.PublishMsg(h.ctx(), out)
		require.NoError(t, err)
	}
	h.settle()
	// The notifier may have been asked again; let it settle as well.
	time.Sleep(300 * time.Millisecond)
	h.settle()

	after := snap()
	require.Equal(t, before, after)
	require.Equal(t, readyRun, after.ready.RunID)
	h.noJob(bus.StepAudio)
	h.noJob(bus.RenderConsumer("gpu", bus.PrioNormal))
	h.noJob(bus.StepCDN)
	h.noJob(bus.StepThumbnail)
}

func seqOf(t *testing.T, m jetstream.Msg) uint64 {
	t.Helper()
	meta, err := m.Metadata()
	require.NoError(t, err)
	return meta.Sequence.Stream
}
