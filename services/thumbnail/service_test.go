package thumbnail

import (
	"context"
	"image/jpeg"
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
)

// svcBundle is what the service tests share.
type svcBundle struct {
	js    jetstream.JetStream
	store *blob.Local
	runs  *bus.Runs
	pub   *bus.Publisher
	svc   *Service
}

func setupService(t *testing.T) *svcBundle {
	t.Helper()
	js, _ := testenv.NATS(t)
	runs, err := bus.OpenRuns(context.Background(), js)
	require.NoError(t, err)
	store, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	pub := bus.NewPublisher(js, bus.Subjects{Prefix: bus.DefaultPrefix})
	svc, err := New(Config{TempDir: t.TempDir()}, bus.Deps{Blob: store, Runs: runs, Pub: pub, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	return &svcBundle{js: js, store: store, runs: runs, pub: pub, svc: svc}
}

func (b *svcBundle) setRun(t *testing.T, vid, run, state string) {
	t.Helper()
	require.NoError(t, b.runs.Set(context.Background(), vid, bus.RunState{RunID: run, Attempt: 1, State: state}))
}

// storedJPEGSize reads a thumbnail back from the store and decodes its header.
func (b *svcBundle) storedJPEGSize(t *testing.T, key string) (int, int) {
	t.Helper()
	rc, info, err := b.store.Get(context.Background(), key)
	require.NoError(t, err)
	defer rc.Close()
	require.Equal(t, "image/jpeg", info.ContentType)
	cfg, err := jpeg.DecodeConfig(rc)
	require.NoError(t, err)
	return cfg.Width, cfg.Height
}

func TestRunMakesThumbnailsThroughNATS(t *testing.T) {
	t.Parallel()
	b := setupService(t)
	clip := writeClip(t, t.TempDir(), 480, 270)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- b.svc.Run(ctx, b.js) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-runDone)
	})

	run := ids.NewRunID()
	videoKey := keys.RunKey("vid1", run, keys.ObjectVideo)
	_, err := b.store.PutFile(ctx, videoKey, clip, "video/mp4")
	require.NoError(t, err)
	b.setRun(t, "vid1", run, bus.RunDone)
	job := &backbeatv1.ThumbnailJob{VideoId: "vid1", RunId: run, VideoKey: videoKey,
		ThumbnailKey: keys.RunKey("vid1", run, keys.ObjectThumbnail), SquareThumbnailKey: keys.RunKey("vid1", run, keys.ObjectSquareThumbnail)}
	require.NoError(t, b.pub.Publish(ctx, b.pub.Subjects().ThumbnailJob("vid1"), job, "job-vid1"))

	stream, err := b.js.Stream(ctx, bus.StreamEvents)
	require.NoError(t, err)
	var raw *jetstream.RawStreamMsg
	require.Eventually(t, func() bool {
		raw, err = stream.GetLastMsgForSubject(ctx, b.pub.Subjects().Event("vid1", bus.KindThumbnailDone))
		return err == nil
	}, 30*time.Second, 50*time.Millisecond)
	var done backbeatv1.ThumbnailDone
	require.NoError(t, proto.Unmarshal(raw.Data, &done))
	require.Equal(t, run, done.GetRunId())
	require.Equal(t, "runs/vid1/"+run+"/thumbnail.jpg", done.GetThumbnailKey())
	require.Equal(t, "runs/vid1/"+run+"/square.jpg", done.GetSquareThumbnailKey())

	w, h := b.storedJPEGSize(t, done.GetThumbnailKey())
	require.Equal(t, []int{480, 270}, []int{w, h})
	w, h = b.storedJPEGSize(t, done.GetSquareThumbnailKey())
	require.Equal(t, []int{270, 270}, []int{w, h})
}

func TestHandleFailures(t *testing.T) {
	t.Parallel()
	b := setupService(t)
	ctx := context.Background()
	job := func(vid, run string) *backbeatv1.ThumbnailJob {
		return &backbeatv1.ThumbnailJob{VideoId: vid, RunId: run, VideoKey: keys.RunKey(vid, run, keys.ObjectVideo),
			ThumbnailKey: keys.RunKey(vid, run, keys.ObjectThumbnail), SquareThumbnailKey: keys.RunKey(vid, run, keys.ObjectSquareThumbnail)}
	}

	// A missing video is permanent.
	run2 := ids.NewRunID()
	b.setRun(t, "vid2", run2, bus.RunDone)
	err := b.svc.Handle(ctx, job("vid2", run2))
	require.True(t, bus.IsPermanent(err), "missing video: %v", err)
	require.ErrorIs(t, err, blob.ErrNotFound)

	// A job of a superseded run is dropped, not failed.
	b.setRun(t, "vid3", ids.NewRunID(), bus.RunActive)
	err = b.svc.Handle(ctx, job("vid3", ids.NewRunID()))
	require.ErrorIs(t, err, bus.ErrNotCurrent)
	require.False(t, bus.IsPermanent(err))

	// Bad ids and keys are refused before anything touches a path.
	err = b.svc.Handle(ctx, &backbeatv1.ThumbnailJob{VideoId: "../etc", RunId: run2})
	require.True(t, bus.IsPermanent(err))
	err = b.svc.Handle(ctx, job("vid2", "run2"))
	require.True(t, bus.IsPermanent(err), "not a run id: %v", err)
	require.ErrorContains(t, err, "invalid run id")
}

// TestHandleRefusesKeysOutsideItsRun is issue 8's defects 2 and 4 on the
// thumbnail side: every key must be a private key of the job's own run, so a
// job can neither read another video's or run's objects nor write where the
// edge serves (the flat thumbnails/<vid>-square.jpg was another video's
// thumbnail). There are no default keys.
func TestHandleRefusesKeysOutsideItsRun(t *testing.T) {
	t.Parallel()
	b := setupService(t)
	ctx := context.Background()
	run, other := ids.NewRunID(), ids.NewRunID()
	b.setRun(t, "X", run, bus.RunDone)
	good := func() *backbeatv1.ThumbnailJob {
		return &backbeatv1.ThumbnailJob{VideoId: "X", RunId: run, VideoKey: keys.RunKey("X", run, keys.ObjectVideo),
			ThumbnailKey: keys.RunKey("X", run, keys.ObjectThumbnail), SquareThumbnailKey: keys.RunKey("X", run, keys.ObjectSquareThumbnail)}
	}
	for name, mutate := range map[string]func(j *backbeatv1.ThumbnailJob){
		"no keys":               func(j *backbeatv1.ThumbnailJob) { j.VideoKey, j.ThumbnailKey, j.SquareThumbnailKey = "", "", "" },
		"no video key":          func(j *backbeatv1.ThumbnailJob) { j.VideoKey = "" },
		"flat video key":        func(j *backbeatv1.ThumbnailJob) { j.VideoKey = "videos/X.mp4" },
		"public video key":      func(j *backbeatv1.ThumbnailJob) { j.VideoKey = keys.PublicKey("X", run, keys.ObjectVideo) },
		"another run's video":   func(j *backbeatv1.ThumbnailJob) { j.VideoKey = keys.RunKey("X", other, keys.ObjectVideo) },
		"another video's video": func(j *backbeatv1.ThumbnailJob) { j.VideoKey = keys.RunKey("X-square", run, keys.ObjectVideo) },
		"flat thumbnail":        func(j *backbeatv1.ThumbnailJob) { j.ThumbnailKey = "thumbnails/X-square.jpg" },
		"public thumbnail":      func(j *backbeatv1.ThumbnailJob) { j.ThumbnailKey = keys.PublicKey("X", run, keys.ObjectThumbnail) },
		"another video's square": func(j *backbeatv1.ThumbnailJob) {
			j.SquareThumbnailKey = keys.RunKey("Y", run, keys.ObjectSquareThumbnail)
		},
		"traversal":                func(j *backbeatv1.ThumbnailJob) { j.ThumbnailKey = "runs/X/" + run + "/../thumbnail.jpg" },
		"thumbnail over the video": func(j *backbeatv1.ThumbnailJob) { j.ThumbnailKey = j.VideoKey },
		"one key for both":         func(j *backbeatv1.ThumbnailJob) { j.SquareThumbnailKey = j.ThumbnailKey },
	} {
		j := good()
		mutate(j)
		err := b.svc.Handle(ctx, j)
		require.True(t, bus.IsPermanent(err), "%s: %v", name, err)
		require.NotErrorIs(t, err, blob.ErrNotFound, "%s: refused for its keys, not for a missing object", name)
	}

	// The same job with its own keys works, and writes only there.
	_, err := b.store.PutFile(ctx, good().VideoKey, writeClip(t, t.TempDir(), 160, 90), "video/mp4")
	require.NoError(t, err)
	require.NoError(t, b.svc.Handle(ctx, good()))
	keys := testenv.LocalKeys(t, b.store)
	require.ElementsMatch(t, []string{good().VideoKey, good().ThumbnailKey, good().SquareThumbnailKey}, keys)
}
