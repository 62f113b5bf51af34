package renderer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/testenv"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// testBundle holds what a service test talks to: a real embedded JetStream
// with the Backbeat topology and a local blob folder.
type testBundle struct {
	js   jetstream.JetStream
	pub  *bus.Publisher
	runs *bus.Runs
	blob blob.Store
	dur  float64
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	requireFFmpeg(t)
	js, _ := testenv.NATS(t)
	ctx := context.Background()
	runs, err := bus.OpenRuns(ctx, js)
	require.NoError(t, err)
	store, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	tb := &testBundle{js: js, pub: bus.NewPublisher(js, bus.Subjects{}), runs: runs, blob: store, dur: 1.5}
	dir := t.TempDir()
	_, err = store.PutFile(ctx, "shared/audio.m4a", writeAudio(t, dir, tb.dur), "audio/mp4")
	require.NoError(t, err)
	an, err := json.Marshal(testAnalysis(tb.dur, 10, 16))
	require.NoError(t, err)
	_, err = store.Put(ctx, "shared/analysis.json", bytes.NewReader(an), int64(len(an)), "application/json")
	require.NoError(t, err)
	_, err = store.PutFile(ctx, "shared/cover.png", writeCoverPNG(t, dir), "image/png")
	require.NoError(t, err)
	return tb
}

func (tb *testBundle) service(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.Pool == "" {
		cfg.Pool = "gpu"
	}
	if cfg.Scale == 0 {
		cfg.Scale = 0.125
	}
	cfg.ProgressInterval = 100 * time.Millisecond
	cfg.PollInterval = 20 * time.Millisecond
	s, err := New(cfg, bus.Deps{Blob: tb.blob, Pub: tb.pub, Runs: tb.runs, Log: zaptest.NewLogger(t),
		Topo: testenv.Topology()})
	require.NoError(t, err)
	return s
}

// job makes a current run for vid, puts the shared inputs where that run's
// audio step and the app's upload would have (keys.RunKey, keys.UploadPrefix),
// and returns its render job.
func (tb *testBundle) job(t *testing.T, vid string) *backbeatv1.RenderJob {
	t.Helper()
	ctx := context.Background()
	run := ids.NewRunID()
	require.NoError(t, tb.runs.Set(ctx, vid, bus.RunState{RunID: run, Attempt: 1, State: bus.RunActive}))
	audio, an, cover := keys.RunKey(vid, run, keys.ObjectAudio), keys.RunKey(vid, run, keys.ObjectAnalysis), keys.UploadPrefix(vid)+"cover.png"
	for src, dst := range map[string]string{"shared/audio.m4a": audio, "shared/analysis.json": an, "shared/cover.png": cover} {
		_, err := tb.blob.Copy(ctx, src, dst)
		require.NoError(t, err)
	}
	return &backbeatv1.RenderJob{
		VideoId: vid, RunId: run, Attempt: 1, Pool: "gpu", Priority: backbeatv1.Priority_PRIORITY_NORMAL,
		Template: "spectrum", Format: backbeatv1.Format_FORMAT_PORTRAIT, Title: "Title", Artist: "Artist",
		CoverKey: cover, AudioKey: audio, AnalysisKey: an,
		DurationSeconds: tb.dur, OutputKey: keys.RunKey(vid, run, keys.ObjectVideo),
		Encoding: &backbeatv1.Encoding{Crf: 32, Preset: "ultrafast", Fps: 10, Concurrency: 2},
	}
}

// lastMsg returns the last message on subject in stream, decoded into m.
func (tb *testBundle) lastMsg(t *testing.T, stream, subject string, m proto.Message) {
	t.Helper()
	st, err := tb.js.Stream(context.Background(), stream)
	require.NoError(t, err)
	raw, err := st.GetLastMsgForSubject(context.Background(), subject)
	require.NoError(t, err)
	require.NoError(t, proto.Unmarshal(raw.Data, m))
}

func TestHandleRendersAndPublishes(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	s := tb.service(t, Config{})
	job := tb.job(t, "vid1")
	require.NoError(t, s.Handle(context.Background(), job))

	local := filepath.Join(t.TempDir(), "v.mp4")
	_, err := tb.blob.GetFile(context.Background(), job.OutputKey, local)
	require.NoError(t, err)
	probeVideo(t, local, 136, 240, 10, tb.dur)

	var done backbeatv1.RenderDone
	tb.lastMsg(t, bus.StreamEvents, tb.pub.Subjects().Event("vid1", bus.KindRenderDone), &done)
	require.Equal(t, job.RunId, done.RunId)
	require.Equal(t, job.OutputKey, done.VideoKey)
	require.True(t, keys.IsRunKey(done.VideoKey, "vid1", job.RunId), "the MP4 stays private until promoted")
	_, err = tb.blob.Stat(context.Background(), keys.PublicKey("vid1", job.RunId, keys.ObjectVideo))
	require.ErrorIs(t, err, blob.ErrNotFound, "the renderer never writes a public key")
	require.Equal(t, int64(15), done.Frames)
	require.Equal(t, EncoderX264, done.Encoder)
	require.Equal(t, "gpu", done.Pool)
	require.NotEmpty(t, done.Worker)
	require.Positive(t, done.RenderSeconds)

	var prog backbeatv1.RenderProgress
	tb.lastMsg(t, bus.StreamProgress, tb.pub.Subjects().Progress("vid1"), &prog)
	require.Equal(t, int64(15), prog.FramesDone)
	require.InDelta(t, 100, prog.Percent, 1e-9)

	entries, err := os.ReadDir(s.cfg.TempDir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NotContains(t, e.Name(), "render-vid1-", "temp dir left behind")
	}
}

// TestHandleCancelledRun cancels the run in the KV mid-render: Handle returns
// ErrNotCurrent within a second and ffmpeg is gone.
func TestHandleCancelledRun(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	reached := make(chan struct{})
	s := tb.service(t, Config{BeforeFrame: blockAtFrame(5, reached)})
	pids := make(chan int, 1)
	s.r.ffmpegStarted = func(pid int) { pids <- pid }
	job := tb.job(t, "vid2")
	errc := make(chan error, 1)
	go func() { errc <- s.Handle(context.Background(), job) }()
	<-reached
	start := time.Now()
	require.NoError(t, tb.runs.Set(context.Background(), "vid2", bus.RunState{RunID: job.RunId, Attempt: 1, State: bus.RunCancelled}))
	select {
	case err := <-errc:
		require.Less(t, time.Since(start), time.Second)
		require.ErrorIs(t, err, bus.ErrNotCurrent)
	case <-time.After(5 * time.Second):
		t.Fatal("Handle did not return after the run was cancelled")
	}
	requireGone(t, <-pids)
	_, err := tb.blob.Stat(context.Background(), job.OutputKey)
	require.ErrorIs(t, err, blob.ErrNotFound)
}

func TestHandlePermanentErrors(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	s := tb.service(t, Config{})
	for name, mutate := range map[string]func(j *backbeatv1.RenderJob){
		"unknown template": func(j *backbeatv1.RenderJob) { j.Template = "vaporwave" },
		"unknown format":   func(j *backbeatv1.RenderJob) { j.Format = backbeatv1.Format_FORMAT_UNSPECIFIED },
		"bad setting": func(j *backbeatv1.RenderJob) {
			j.TemplateSettings = map[string]string{template.SettingBarColor: "pink"}
		},
		"missing analysis": func(j *backbeatv1.RenderJob) { j.AnalysisKey = keys.RunKey(j.VideoId, j.RunId, keys.ObjectMP3) },
		"traversal key":    func(j *backbeatv1.RenderJob) { j.OutputKey = "../etc/passwd" },
		"bad preset":       func(j *backbeatv1.RenderJob) { j.Encoding.Preset = "ludicrous" },
	} {
		job := tb.job(t, "vid3")
		mutate(job)
		err := s.Handle(context.Background(), job)
		require.Error(t, err, name)
		require.True(t, bus.IsPermanent(err), "%s: %v", name, err)
	}
	// A job for a run that is not current is dropped, not failed.
	job := tb.job(t, "vid3")
	tb.job(t, "vid3") // a newer run
	err := s.Handle(context.Background(), job)
	require.ErrorIs(t, err, bus.ErrNotCurrent)
	require.False(t, bus.IsPermanent(err))
}

// TestHandleRefusesKeysOutsideItsRun is issue 8's defects 2 and 4 on the
// renderer: it reads only its own run's audio and analysis and the video's
// own cover, and writes only its own run's private key, never a key the
// edge serves (the flat videos/<vid>.mp4 was served while being written).
func TestHandleRefusesKeysOutsideItsRun(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	s := tb.service(t, Config{})
	other := ids.NewRunID()
	for name, c := range map[string]struct {
		mutate func(j *backbeatv1.RenderJob)
		want   string
	}{
		"invalid run id":       {func(j *backbeatv1.RenderJob) { j.RunId = "run1" }, "invalid run id"},
		"flat output":          {func(j *backbeatv1.RenderJob) { j.OutputKey = "videos/" + j.VideoId + ".mp4" }, "output key"},
		"public output":        {func(j *backbeatv1.RenderJob) { j.OutputKey = keys.PublicKey(j.VideoId, j.RunId, keys.ObjectVideo) }, "output key"},
		"another run's output": {func(j *backbeatv1.RenderJob) { j.OutputKey = keys.RunKey(j.VideoId, other, keys.ObjectVideo) }, "output key"},
		"another video's output": {func(j *backbeatv1.RenderJob) {
			j.OutputKey = keys.RunKey(j.VideoId+"-square", j.RunId, keys.ObjectVideo)
		}, "output key"},
		"another run's audio":   {func(j *backbeatv1.RenderJob) { j.AudioKey = keys.RunKey(j.VideoId, other, keys.ObjectAudio) }, "audio key"},
		"flat analysis":         {func(j *backbeatv1.RenderJob) { j.AnalysisKey = "analysis/" + j.VideoId + ".json" }, "analysis key"},
		"output over the audio": {func(j *backbeatv1.RenderJob) { j.OutputKey = j.AudioKey }, "would overwrite an input"},
		"another video's cover": {func(j *backbeatv1.RenderJob) { j.CoverKey = keys.UploadPrefix("vid4") + "cover.png" }, "cover key"},
	} {
		job := tb.job(t, "vid4-")
		c.mutate(job)
		err := s.Handle(context.Background(), job)
		require.True(t, bus.IsPermanent(err), "%s: %v", name, err)
		require.ErrorContains(t, err, c.want, name)
	}
}

// TestRunDrainsByPriority queues low, normal and high jobs before the worker
// starts; with one render at a time they finish high, normal, low. An unknown
// template reaches the coordinator as a permanent StepFailed.
func TestRunDrainsByPriority(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	s := tb.service(t, Config{StarveEvery: 1000})
	ctx := context.Background()
	subj := tb.pub.Subjects()
	for _, q := range []struct{ vid, prio string }{{"low1", bus.PrioLow}, {"norm1", bus.PrioNormal}, {"high1", bus.PrioHigh}} {
		job := tb.job(t, q.vid)
		job.Format = backbeatv1.Format_FORMAT_SQUARE
		require.NoError(t, tb.pub.Publish(ctx, subj.RenderJob("gpu", q.prio, q.vid), job, q.vid))
	}
	bad := tb.job(t, "bad1")
	bad.Template = "vaporwave"
	require.NoError(t, tb.pub.Publish(ctx, subj.RenderJob("gpu", bus.PrioLow, "bad1"), bad, "bad1"))

	cons, err := tb.js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj.EventsOfKind(bus.KindRenderDone), subj.EventsOfKind(bus.KindStepFailed)}})
	require.NoError(t, err)

	rctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(rctx, tb.js) }()
	defer func() {
		cancel()
		require.NoError(t, <-runErr)
	}()

	var order []string
	var failed *backbeatv1.StepFailed
	deadline := time.Now().Add(60 * time.Second)
	for len(order) < 3 || failed == nil {
		require.True(t, time.Now().Before(deadline), "timed out; got %v", order)
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		require.NoError(t, err)
		switch msg.Headers().Get(bus.HeaderType) {
		case "backbeat.v1.RenderDone":
			var d backbeatv1.RenderDone
			require.NoError(t, proto.Unmarshal(msg.Data(), &d))
			order = append(order, d.VideoId)
		case "backbeat.v1.StepFailed":
			failed = &backbeatv1.StepFailed{}
			require.NoError(t, proto.Unmarshal(msg.Data(), failed))
		}
	}
	require.Equal(t, []string{"high1", "norm1", "low1"}, order)
	require.Equal(t, "bad1", failed.VideoId)
	require.True(t, failed.Permanent)
	require.Equal(t, bus.StepRender, failed.Step)
}
