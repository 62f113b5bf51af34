package cdn

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
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
	js     jetstream.JetStream
	store  *blob.Local
	purges jetstream.KeyValue
	runs   *bus.Runs
	pub    *bus.Publisher
}

func setupService(t *testing.T) *svcBundle {
	t.Helper()
	js, _ := testenv.NATS(t)
	ctx := context.Background()
	purges, err := bus.KV(ctx, js, bus.BucketPurges)
	require.NoError(t, err)
	runs, err := bus.OpenRuns(ctx, js)
	require.NoError(t, err)
	store, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	return &svcBundle{js: js, store: store, purges: purges, runs: runs,
		pub: bus.NewPublisher(js, bus.Subjects{Prefix: bus.DefaultPrefix})}
}

func (b *svcBundle) newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	cfg.Edge = EdgeConfig{CacheDir: t.TempDir(), CacheMaxBytes: 1 << 20}
	cfg.Purges = b.purges
	s, err := New(cfg, bus.Deps{Blob: b.store, Runs: b.runs, Pub: b.pub, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	return s
}

func (b *svcBundle) activeRun(t *testing.T, vid, run string) {
	t.Helper()
	require.NoError(t, b.runs.Set(context.Background(), vid, bus.RunState{RunID: run, Attempt: 1, State: bus.RunActive}))
}

// cdnDone waits for the CdnDone of a video on EVENTS.
func (b *svcBundle) cdnDone(t *testing.T, vid string) *backbeatv1.CdnDone {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := b.js.Stream(ctx, bus.StreamEvents)
	require.NoError(t, err)
	var raw *jetstream.RawStreamMsg
	require.Eventually(t, func() bool {
		raw, err = stream.GetLastMsgForSubject(ctx, b.pub.Subjects().Event(vid, bus.KindCDNDone))
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	var done backbeatv1.CdnDone
	require.NoError(t, proto.Unmarshal(raw.Data, &done))
	return &done
}

// purgeEndpoint is a fake external CDN that records what it is asked.
type purgeEndpoint struct {
	mu     sync.Mutex
	calls  int
	auth   []string
	files  [][]string
	status int
}

func (p *purgeEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req purgeRequest
	_ = json.Unmarshal(body, &req)
	p.mu.Lock()
	p.calls++
	p.auth = append(p.auth, r.Header.Get("Authorization"))
	p.files = append(p.files, req.Files)
	status := p.status
	p.mu.Unlock()
	w.WriteHeader(status)
}

func TestHandlePurgesEdgeAndExternalCDN(t *testing.T) {
	t.Parallel()
	b := setupService(t)
	ext := &purgeEndpoint{status: http.StatusOK}
	extSrv := httptest.NewServer(ext)
	t.Cleanup(extSrv.Close)
	s := b.newService(t, Config{
		PublicBaseURL: "https://cdn.example.com/", ExternalPurgeURL: extSrv.URL, ExternalPurgeToken: "tok",
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = s.Edge().WatchPurges(ctx, b.purges) }()
	edgeSrv := httptest.NewServer(s.Edge())
	t.Cleanup(edgeSrv.Close)

	run := ids.NewRunID()
	video, thumb := keys.PublicKey("vid1", run, keys.ObjectVideo), keys.PublicKey("vid1", run, keys.ObjectThumbnail)
	get := func() (string, string) {
		resp, err := edgeSrv.Client().Get(edgeSrv.URL + "/" + video)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(body), resp.Header.Get("X-Cache")
	}
	_, err := b.store.Put(ctx, video, bytes.NewReader([]byte("first render")), -1, "video/mp4")
	require.NoError(t, err)
	body, xc := get()
	require.Equal(t, "first render", body)
	require.Equal(t, "MISS", xc)
	body, xc = get()
	require.Equal(t, "first render", body)
	require.Equal(t, "HIT", xc)

	// The object is replaced; the edge keeps serving its copy until purged.
	_, err = b.store.Put(ctx, video, bytes.NewReader([]byte("second render")), -1, "video/mp4")
	require.NoError(t, err)
	body, _ = get()
	require.Equal(t, "first render", body)

	b.activeRun(t, "vid1", run)
	// Public keys with or without a leading slash, and a key of the flat
	// layout: the purge worker takes any valid key.
	err = s.Handle(ctx, &backbeatv1.CdnJob{VideoId: "vid1", RunId: run,
		Paths: []string{video, "/" + thumb, "thumbnails/vid1.jpg"}})
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		body, _ := get()
		return body == "second render"
	}, 5*time.Second, 20*time.Millisecond)

	entry, err := b.purges.Get(ctx, video)
	require.NoError(t, err)
	var rec PurgeRecord
	require.NoError(t, json.Unmarshal(entry.Value(), &rec))
	require.Equal(t, run, rec.RunID)
	require.False(t, rec.At.IsZero())

	ext.mu.Lock()
	require.Equal(t, 1, ext.calls)
	require.Equal(t, "Bearer tok", ext.auth[0])
	require.Equal(t, []string{"https://cdn.example.com/" + video, "https://cdn.example.com/" + thumb, "https://cdn.example.com/thumbnails/vid1.jpg"}, ext.files[0])
	ext.mu.Unlock()

	done := b.cdnDone(t, "vid1")
	require.Equal(t, run, done.GetRunId())
	require.Equal(t, []string{video, thumb, "thumbnails/vid1.jpg"}, done.GetPurgedPaths())
	require.Empty(t, done.GetErrors())
}

func TestHandleExternalFailureNeverFailsTheVideo(t *testing.T) {
	t.Parallel()
	b := setupService(t)
	ext := &purgeEndpoint{status: http.StatusBadGateway}
	extSrv := httptest.NewServer(ext)
	t.Cleanup(extSrv.Close)
	s := b.newService(t, Config{
		PublicBaseURL: "https://cdn.example.com", ExternalPurgeURL: extSrv.URL,
		ExternalPurgeRetryDelays: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond},
	})
	b.activeRun(t, "vid2", "run2")
	err := s.Handle(context.Background(), &backbeatv1.CdnJob{VideoId: "vid2", RunId: "run2",
		Paths: []string{"videos/vid2.mp4", "videos/../etc/passwd"}})
	require.NoError(t, err)

	ext.mu.Lock()
	require.Equal(t, 3, ext.calls, "one call and two quick retries")
	ext.mu.Unlock()
	done := b.cdnDone(t, "vid2")
	require.Equal(t, []string{"videos/vid2.mp4"}, done.GetPurgedPaths())
	require.Len(t, done.GetErrors(), 2)
	require.Contains(t, done.GetErrors()[0], "videos/../etc/passwd")
	require.Contains(t, done.GetErrors()[1], "status 502")
}

func TestHandlePurgesForStaleRunsToo(t *testing.T) {
	t.Parallel()
	b := setupService(t)
	s := b.newService(t, Config{})
	b.activeRun(t, "vid3", "newer")
	// A cancelled run's purge comes after its run stopped being current.
	err := s.Handle(context.Background(), &backbeatv1.CdnJob{VideoId: "vid3", RunId: "older", Paths: []string{"videos/vid3.mp4"}})
	require.NoError(t, err)
	require.Equal(t, []string{"videos/vid3.mp4"}, b.cdnDone(t, "vid3").GetPurgedPaths())

	err = s.Handle(context.Background(), &backbeatv1.CdnJob{VideoId: "../x", RunId: "r"})
	require.True(t, bus.IsPermanent(err))
}

func TestRunConsumesCdnJobs(t *testing.T) {
	t.Parallel()
	b := setupService(t)
	s := b.newService(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx, b.js) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-runDone)
	})

	b.activeRun(t, "vid4", "run4")
	job := &backbeatv1.CdnJob{VideoId: "vid4", RunId: "run4", Paths: []string{"videos/vid4.mp4"}}
	require.NoError(t, b.pub.Publish(ctx, b.pub.Subjects().CDNJob("vid4"), job, "job-vid4"))

	done := b.cdnDone(t, "vid4")
	require.Equal(t, []string{"videos/vid4.mp4"}, done.GetPurgedPaths())
	_, err := b.purges.Get(ctx, "videos/vid4.mp4")
	require.NoError(t, err)
}
