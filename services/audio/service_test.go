package audio

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"

	"github.com/backbeat/backbeat/pkg/analysis"
	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/pkg/testenv"
)

// testBundle is what each service test works with: a real embedded JetStream
// with the topology, a local blob store and one uploaded track.
type testBundle struct {
	svc   *Service
	js    jetstream.JetStream
	pub   *bus.Publisher
	runs  *bus.Runs
	store *blob.Local
	vid   string
	run   string
	key   string
}

func setup(t *testing.T, seconds float64) *testBundle {
	t.Helper()
	js, _ := testenv.NATS(t)
	ctx := context.Background()
	runs, err := bus.OpenRuns(ctx, js)
	require.NoError(t, err)
	store, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	pub := bus.NewPublisher(js, bus.Subjects{})
	svc, err := New(Config{WorkDir: t.TempDir(), AllowHosts: []string{"127.0.0.1", "cdn.example.com"}},
		bus.Deps{Blob: store, Pub: pub, Runs: runs, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)

	b := &testBundle{svc: svc, js: js, pub: pub, runs: runs, store: store, vid: "vid1", run: ids.NewRunID()}
	b.key = keys.UploadPrefix(b.vid) + "track.wav"
	_, err = store.PutFile(ctx, b.key, testenv.Tone(t, t.TempDir(), seconds), "audio/wav")
	require.NoError(t, err)
	require.NoError(t, runs.Set(ctx, b.vid, bus.RunState{RunID: b.run, State: bus.RunActive}))
	return b
}

func (b *testBundle) job() *backbeatv1.AudioJob {
	return &backbeatv1.AudioJob{VideoId: b.vid, RunId: b.run, SourceKey: b.key,
		StartSeconds: 0.5, EndSeconds: 2.5, MaxRegionSeconds: 60, Fps: 30}
}

// lastEvent returns the last event of a kind for the video, or nil.
func (b *testBundle) lastEvent(t *testing.T, kind string, m proto.Message) bool {
	t.Helper()
	st, err := b.js.Stream(context.Background(), bus.StreamEvents)
	require.NoError(t, err)
	raw, err := st.GetLastMsgForSubject(context.Background(), b.pub.Subjects().Event(b.vid, kind))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false
	}
	require.NoError(t, err)
	require.NoError(t, proto.Unmarshal(raw.Data, m))
	return true
}

func TestHandle(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	ctx := context.Background()
	require.NoError(t, b.svc.Handle(ctx, b.job()))

	var done backbeatv1.AudioDone
	require.True(t, b.lastEvent(t, bus.KindAudioDone, &done))
	require.Equal(t, b.vid, done.GetVideoId())
	require.Equal(t, b.run, done.GetRunId())
	require.Equal(t, keys.RunKey(b.vid, b.run, keys.ObjectAudio), done.GetAudioKey())
	require.Equal(t, keys.RunKey(b.vid, b.run, keys.ObjectMP3), done.GetMp3Key())
	require.Equal(t, keys.RunKey(b.vid, b.run, keys.ObjectAnalysis), done.GetAnalysisKey())
	for _, k := range []string{done.GetAudioKey(), done.GetMp3Key(), done.GetAnalysisKey()} {
		require.True(t, keys.IsRunKey(k, b.vid, b.run), "%s is a private key of the run", k)
	}
	require.InDelta(t, 2.0, done.GetDurationSeconds(), 1.0/30)
	require.InDelta(t, 3.0, done.GetSourceDurationSeconds(), 0.05)

	// The outputs are in the store and are what the event says.
	dir := t.TempDir()
	m4a := filepath.Join(dir, "a.m4a")
	_, err := b.store.GetFile(ctx, done.GetAudioKey(), m4a)
	require.NoError(t, err)
	p, err := media.Probe(ctx, m4a)
	require.NoError(t, err)
	require.Equal(t, "aac", p.Audio().CodecName)
	info, err := b.store.Stat(ctx, done.GetMp3Key())
	require.NoError(t, err)
	require.Equal(t, "audio/mpeg", info.ContentType)
	r, _, err := b.store.Get(ctx, done.GetAnalysisKey())
	require.NoError(t, err)
	defer r.Close()
	an, err := analysis.Decode(r)
	require.NoError(t, err)
	require.Len(t, an.Frames, FrameCount(done.GetDurationSeconds(), 30))

	// Handling the same job again (a redelivery) publishes the same message
	// id, which the stream deduplicates.
	require.NoError(t, b.svc.Handle(ctx, b.job()))
	st, err := b.js.Stream(ctx, bus.StreamEvents)
	require.NoError(t, err)
	si, err := st.Info(ctx, jetstream.WithSubjectFilter(b.pub.Subjects().Event(b.vid, bus.KindAudioDone)))
	require.NoError(t, err)
	require.Equal(t, uint64(1), si.State.Subjects[b.pub.Subjects().Event(b.vid, bus.KindAudioDone)])

	// No scratch files are left behind.
	left, err := os.ReadDir(b.svc.cfg.WorkDir)
	require.NoError(t, err)
	require.Empty(t, left)
}

func TestHandleStaleRun(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	job := b.job()
	job.RunId = ids.NewRunID()
	err := b.svc.Handle(context.Background(), job)
	require.ErrorIs(t, err, bus.ErrNotCurrent)
	var done backbeatv1.AudioDone
	require.False(t, b.lastEvent(t, bus.KindAudioDone, &done))
}

// TestHandleCancelledMidway cancels the run while the job works and expects
// the handler (and its ffmpeg) to give up within a second.
func TestHandleCancelledMidway(t *testing.T) {
	t.Parallel()
	b := setup(t, 60)
	job := b.job()
	job.StartSeconds, job.EndSeconds = 0, 60

	errc := make(chan error, 1)
	go func() { errc <- b.svc.Handle(context.Background(), job) }()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	require.NoError(t, b.runs.Set(context.Background(), b.vid, bus.RunState{RunID: b.run, State: bus.RunCancelled}))
	select {
	case err := <-errc:
		require.ErrorIs(t, err, bus.ErrNotCurrent)
		require.Less(t, time.Since(start), time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running 5s after the run was cancelled")
	}
	var done backbeatv1.AudioDone
	require.False(t, b.lastEvent(t, bus.KindAudioDone, &done))
}

func TestHandleBadInputIsPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	ctx := context.Background()
	cases := map[string]func(j *backbeatv1.AudioJob){
		"past the end of the track": func(j *backbeatv1.AudioJob) { j.EndSeconds = 95 },
		"not an upload of video":    func(j *backbeatv1.AudioJob) { j.SourceKey = "uploads/other/track.wav" },
		"not found":                 func(j *backbeatv1.AudioJob) { j.SourceKey = keys.UploadPrefix(b.vid) + "missing.wav" },
		"neither source_key":        func(j *backbeatv1.AudioJob) { j.SourceKey = "" },
		"must be https":             func(j *backbeatv1.AudioJob) { j.SourceKey, j.SourceUrl = "", "/etc/passwd" },
		"not on the allow-list":     func(j *backbeatv1.AudioJob) { j.SourceKey, j.SourceUrl = "", "https://evil.example.org/a.mp3" },
		"non-public address":        func(j *backbeatv1.AudioJob) { j.SourceKey, j.SourceUrl = "", "https://127.0.0.1/a.mp3" },
		"invalid video id":          func(j *backbeatv1.AudioJob) { j.VideoId = "../x" },
		`invalid run id "run1"`:     func(j *backbeatv1.AudioJob) { j.RunId = "run1" },
		`invalid run id ""`:         func(j *backbeatv1.AudioJob) { j.RunId = "" },
	}
	for want, mutate := range cases {
		job := b.job()
		mutate(job)
		err := b.svc.Handle(ctx, job)
		require.True(t, bus.IsPermanent(err), "%s: %v", want, err)
		require.ErrorContains(t, err, want)
	}
}

// TestNewRunLeavesOlderRunsObjects is issue 8's defect 2 on the audio side:
// a newer run of the same video writes its own keys, so the objects an older
// run's renderer may still be reading keep their bytes, and nothing lands
// under a key the edge serves.
func TestNewRunLeavesOlderRunsObjects(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	ctx := context.Background()
	require.NoError(t, b.svc.Handle(ctx, b.job()))
	var first backbeatv1.AudioDone
	require.True(t, b.lastEvent(t, bus.KindAudioDone, &first))
	before := map[string]string{}
	for _, k := range []string{first.GetAudioKey(), first.GetMp3Key(), first.GetAnalysisKey()} {
		info, err := b.store.Stat(ctx, k)
		require.NoError(t, err)
		before[k] = info.ETag
	}

	older := b.run
	b.run = ids.NewRunID()
	require.NoError(t, b.runs.Set(ctx, b.vid, bus.RunState{RunID: b.run, State: bus.RunActive}))
	job := b.job()
	job.StartSeconds, job.EndSeconds = 1, 2.5 // different bytes
	require.NoError(t, b.svc.Handle(ctx, job))
	var second backbeatv1.AudioDone
	require.True(t, b.lastEvent(t, bus.KindAudioDone, &second))
	require.Equal(t, b.run, second.GetRunId())
	for _, k := range []string{second.GetAudioKey(), second.GetMp3Key(), second.GetAnalysisKey()} {
		require.True(t, keys.IsRunKey(k, b.vid, b.run), k)
		require.False(t, keys.IsRunKey(k, b.vid, older), k)
		_, ok := before[k]
		require.False(t, ok, "run %s reused key %s of run %s", b.run, k, older)
	}
	for k, etag := range before {
		info, err := b.store.Stat(ctx, k)
		require.NoError(t, err)
		require.Equal(t, etag, info.ETag, "%s changed under the older run", k)
	}

	// Nothing was written outside the runs' private folders but the upload.
	stored := testenv.LocalKeys(t, b.store)
	require.Len(t, stored, 7)
	for _, k := range stored {
		require.True(t, k == b.key || keys.IsRunKey(k, b.vid, older) || keys.IsRunKey(k, b.vid, b.run), "unexpected object %s", k)
	}
}

// TestRun goes through the real consumer: a published job becomes audio.done,
// and a job with a bad region becomes step.failed.
func TestRun(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- b.svc.Run(ctx, b.js) }()

	require.NoError(t, b.pub.Publish(ctx, b.pub.Subjects().AudioJob(b.vid), b.job(), "job-1"))
	var done backbeatv1.AudioDone
	require.Eventually(t, func() bool { return b.lastEvent(t, bus.KindAudioDone, &done) }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, b.run, done.GetRunId())

	bad := b.job()
	bad.EndSeconds = 95
	require.NoError(t, b.pub.Publish(ctx, b.pub.Subjects().AudioJob(b.vid), bad, "job-2"))
	var failed backbeatv1.StepFailed
	require.Eventually(t, func() bool { return b.lastEvent(t, bus.KindStepFailed, &failed) }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, bus.StepAudio, failed.GetStep())
	require.True(t, failed.GetPermanent())
	require.Contains(t, failed.GetReason(), "region end 95.0s is past the end of the track (3.0s)")

	cancel()
	select {
	case err := <-runErr:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
