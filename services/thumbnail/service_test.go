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
	svc, err := New(Config{TempDir: t.TempDir()}, Deps{Store: store, Runs: runs, Pub: pub, Log: zaptest.NewLogger(t)})
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

	_, err := b.store.PutFile(ctx, ids.VideoKey("vid1"), clip, "video/mp4")
	require.NoError(t, err)
	b.setRun(t, "vid1", "run1", bus.RunDone)
	job := &backbeatv1.ThumbnailJob{VideoId: "vid1", RunId: "run1", VideoKey: ids.VideoKey("vid1"),
		ThumbnailKey: ids.ThumbnailKey("vid1"), SquareThumbnailKey: ids.SquareThumbnailKey("vid1")}
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
	require.Equal(t, "run1", done.GetRunId())
	require.Equal(t, "thumbnails/vid1.jpg", done.GetThumbnailKey())
	require.Equal(t, "thumbnails/vid1-square.jpg", done.GetSquareThumbnailKey())

	w, h := b.storedJPEGSize(t, done.GetThumbnailKey())
	require.Equal(t, []int{480, 270}, []int{w, h})
	w, h = b.storedJPEGSize(t, done.GetSquareThumbnailKey())
	require.Equal(t, []int{270, 270}, []int{w, h})
}

func TestHandleFailures(t *testing.T) {
	t.Parallel()
	b := setupService(t)
	ctx := context.Background()

	// Keys default to DESIGN.md's; a missing video is permanent.
	b.setRun(t, "vid2", "run2", bus.RunDone)
	err := b.svc.Handle(ctx, &backbeatv1.ThumbnailJob{VideoId: "vid2", RunId: "run2"})
	require.True(t, bus.IsPermanent(err), "missing video: %v", err)
	require.ErrorIs(t, err, blob.ErrNotFound)

	// A job of a superseded run is dropped, not failed.
	b.setRun(t, "vid3", "newer", bus.RunActive)
	err = b.svc.Handle(ctx, &backbeatv1.ThumbnailJob{VideoId: "vid3", RunId: "older"})
	require.ErrorIs(t, err, bus.ErrNotCurrent)
	require.False(t, bus.IsPermanent(err))

	// Bad ids and keys are refused before anything touches a path.
	err = b.svc.Handle(ctx, &backbeatv1.ThumbnailJob{VideoId: "../etc", RunId: "r"})
	require.True(t, bus.IsPermanent(err))
	err = b.svc.Handle(ctx, &backbeatv1.ThumbnailJob{VideoId: "vid2", RunId: "run2", ThumbnailKey: "thumbnails/../x.jpg"})
	require.True(t, bus.IsPermanent(err))
}
