package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/testenv"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	coordinator "github.com/backbeat/backbeat/services/render-coordinator"
)

// The test bundle: two pools, normal priority, 20 s regions, 10 s a unit.
const (
	testBundle    = "test"
	testCRF       = 23
	testPreset    = "ultrafast"
	testFPS       = 25
	testMaxRegion = 20
	startBalance  = 100
	edge          = "https://edge.test"
)

func testBundles() map[string]coordinator.Bundle {
	return map[string]coordinator.Bundle{
		testBundle: {Name: testBundle, CRF: testCRF, Preset: testPreset, FPS: testFPS, Priority: bus.PrioNormal,
			Pools: []string{"gpu", "cpu"}, MaxRegionSeconds: testMaxRegion, Concurrency: 2, UnitSeconds: 10, Encoder: "libx264"},
		"free": coordinator.DefaultBundles()["free"],
	}
}

// harness is one coordinator running against its own embedded JetStream
// server and Postgres schema; the test plays every worker.
type harness struct {
	t *testing.T
	// reg holds the coordinator's metrics.
	reg  *prometheus.Registry
	js   jetstream.JetStream
	db   *store.Store
	pub  *bus.Publisher
	subj bus.Subjects
	runs *bus.Runs
	blob blob.Store
	svc  *coordinator.Service
	seq  atomic.Int64
}

type options struct {
	cfg coordinator.Config
	// dupWindow shortens the streams' duplicate window (0: the default).
	dupWindow time.Duration
	// policies override delivery policies per step.
	policies map[string]bus.Policy
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func setup(t *testing.T, mod func(*options)) *harness {
	t.Helper()
	o := options{cfg: coordinator.Config{Bundles: testBundles(), EdgeBaseURL: edge + "/"}}
	if mod != nil {
		mod(&o)
	}
	dsn := testenv.Postgres(t)
	srv := testenv.NATSServer(t)
	_, js := testenv.Connect(t, srv)
	top := testenv.Topology()
	if o.dupWindow > 0 {
		top.DuplicateWindow = o.dupWindow
	}
	for k, p := range o.policies {
		top.Policies[k] = p
	}
	ctx := ctxT(t, 30*time.Second)
	require.NoError(t, top.Ensure(ctx, js))

	db, err := store.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, db.UpsertUser(ctx, store.User{ID: "u1", Balance: startBalance, Bundle: testBundle}))

	runs, err := bus.OpenRuns(ctx, js)
	require.NoError(t, err)
	bl, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	pub := bus.NewPublisher(js, top.Subjects)
	reg := prometheus.NewRegistry()
	svc, err := coordinator.New(o.cfg, coordinator.Deps{Store: db, Pub: pub, Runs: runs, Blob: bl, Log: log, Topo: top, Name: "coordinator-test",
		Metrics: bus.NewMetrics(reg)})
	require.NoError(t, err)

	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx, js) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("coordinator did not stop in 10s")
		}
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("%s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return &harness{t: t, reg: reg, js: js, db: db, pub: pub, subj: top.Subjects, runs: runs, blob: bl, svc: svc}
}

func (h *harness) ctx() context.Context { return ctxT(h.t, 15*time.Second) }

// vid returns a fresh valid video id.
func (h *harness) vid(name string) string {
	v := fmt.Sprintf("%s-%d", name, h.seq.Add(1))
	require.NoError(h.t, ids.ValidateVideoID(v))
	return v
}

// create is what the app publishes for a 12 s region (2 units).
func (h *harness) create(vid, requestID string) *backbeatv1.VideoCreate {
	return &backbeatv1.VideoCreate{VideoId: vid, UserId: "u1", AudioKey: keys.UploadPrefix(vid) + "song.wav",
		StartSeconds: 5, EndSeconds: 17, Template: "spectrum", Format: backbeatv1.Format_FORMAT_SQUARE,
		Title: "Song", Artist: "Band", RequestId: requestID, TemplateSettings: map[string]string{"color": "#ff0000"}}
}

// event publishes an event under a new message id, as a worker (or a replay) would.
func (h *harness) event(vid, kind string, m proto.Message) {
	h.t.Helper()
	id := fmt.Sprintf("test:%s:%s:%d", vid, kind, h.seq.Add(1))
	require.NoError(h.t, h.pub.Publish(h.ctx(), h.subj.Event(vid, kind), m, id))
}

// settle waits until the coordinator has handled (acked or terminated) every
// event published so far.
func (h *harness) settle() {
	h.t.Helper()
	cons, err := h.js.Consumer(h.ctx(), bus.StreamEvents, bus.ConsumerCoordinator)
	require.NoError(h.t, err)
	require.Eventually(h.t, func() bool {
		ci, err := cons.Info(h.ctx())
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	}, 10*time.Second, 20*time.Millisecond, "coordinator did not settle")
}

// job takes the next job from a JOBS consumer (acking it, as a worker that
// finished) and returns its subject.
func job[T proto.Message](h *harness, consumer string, m T) (T, string) {
	h.t.Helper()
	cons, err := h.js.Consumer(h.ctx(), bus.StreamJobs, consumer)
	require.NoError(h.t, err)
	msg, err := bus.FetchOne(h.ctx(), cons, 5*time.Second)
	require.NoError(h.t, err)
	require.NotNil(h.t, msg, "no job on %s", consumer)
	require.NoError(h.t, bus.Decode(msg.Data(), msg.Headers().Get(bus.HeaderContentType), m))
	require.NoError(h.t, msg.DoubleAck(h.ctx()))
	return m, msg.Subject()
}

// noJob asserts a JOBS consumer holds nothing (call after settle).
func (h *harness) noJob(consumer string) {
	h.t.Helper()
	cons, err := h.js.Consumer(h.ctx(), bus.StreamJobs, consumer)
	require.NoError(h.t, err)
	ci, err := cons.Info(h.ctx())
	require.NoError(h.t, err)
	require.Zero(h.t, ci.NumPending+uint64(ci.NumAckPending), "unexpected job on %s", consumer)
}

func (h *harness) video(vid string) store.Video {
	h.t.Helper()
	v, err := h.db.GetVideo(h.ctx(), vid)
	require.NoError(h.t, err)
	return v
}

func (h *harness) run(id string) store.Run {
	h.t.Helper()
	r, err := h.db.GetRun(h.ctx(), id)
	require.NoError(h.t, err)
	return r
}

func (h *harness) balance(user string) int64 {
	h.t.Helper()
	u, err := h.db.GetUser(h.ctx(), user)
	require.NoError(h.t, err)
	return u.Balance
}

// ledger lists a user's movements as "<run>:<kind>:<amount>".
func (h *harness) ledger(user string) []string {
	h.t.Helper()
	es, err := h.db.Ledger(h.ctx(), user)
	require.NoError(h.t, err)
	out := []string{}
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s:%s:%d", e.RunID, e.Kind, e.Amount))
	}
	return out
}

func (h *harness) countRuns() int64 {
	h.t.Helper()
	var n int64
	require.NoError(h.t, h.db.DB.Model(&store.Run{}).Count(&n).Error)
	return n
}

func (h *harness) runState(vid string) bus.RunState {
	h.t.Helper()
	s, ok, err := h.runs.Get(h.ctx(), vid)
	require.NoError(h.t, err)
	require.True(h.t, ok, "no runs-KV entry for %s", vid)
	return s
}

// waitStatus waits for the video's status.
func (h *harness) waitStatus(vid string, status store.Status) store.Video {
	h.t.Helper()
	var v store.Video
	require.Eventually(h.t, func() bool {
		var err error
		v, err = h.db.GetVideo(h.ctx(), vid)
		return err == nil && v.Status == status
	}, 10*time.Second, 20*time.Millisecond, "video %s never became %s (last: %+v)", vid, status, v)
	return v
}

// lastEvent returns the last event of a kind for a video, or false.
func lastEvent[T proto.Message](h *harness, vid, kind string, m T) bool {
	h.t.Helper()
	st, err := h.js.Stream(h.ctx(), bus.StreamEvents)
	require.NoError(h.t, err)
	raw, err := st.GetLastMsgForSubject(h.ctx(), h.subj.Event(vid, kind))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false
	}
	require.NoError(h.t, err)
	require.NoError(h.t, bus.Decode(raw.Data, raw.Header.Get(bus.HeaderContentType), m))
	return true
}

// toProcessing creates a video and plays the audio worker: it returns the
// run id with the first RenderJob taken off the queue.
func (h *harness) toProcessing(vid, requestID string) (string, *backbeatv1.RenderJob) {
	h.t.Helper()
	h.event(vid, bus.KindVideoCreate, h.create(vid, requestID))
	aj, _ := job(h, bus.StepAudio, &backbeatv1.AudioJob{})
	require.Equal(h.t, vid, aj.VideoId)
	h.event(vid, bus.KindAudioDone, h.audioDone(vid, aj.RunId))
	rj, _ := job(h, bus.RenderConsumer("gpu", bus.PrioNormal), &backbeatv1.RenderJob{})
	require.Equal(h.t, aj.RunId, rj.RunId)
	return aj.RunId, rj
}

// put writes an object of a run, as its worker would.
func (h *harness) put(key string) string {
	_, err := h.blob.Put(h.ctx(), key, strings.NewReader("bytes of "+key), -1, "application/octet-stream")
	require.NoError(h.t, err)
	return key
}

func (h *harness) audioDone(vid, runID string) *backbeatv1.AudioDone {
	return &backbeatv1.AudioDone{VideoId: vid, RunId: runID, AudioKey: h.put(keys.RunKey(vid, runID, keys.ObjectAudio)),
		Mp3Key: h.put(keys.RunKey(vid, runID, keys.ObjectMP3)), AnalysisKey: h.put(keys.RunKey(vid, runID, keys.ObjectAnalysis)),
		DurationSeconds: 12, SourceDurationSeconds: 200}
}

func (h *harness) renderDone(vid, runID string, attempt int32) *backbeatv1.RenderDone {
	return &backbeatv1.RenderDone{VideoId: vid, RunId: runID, Attempt: attempt, VideoKey: h.put(keys.RunKey(vid, runID, keys.ObjectVideo)),
		RenderSeconds: 3.5, Frames: 300, Encoder: "libx264", Pool: "gpu", Worker: "w1"}
}

// toReady plays every worker until the video is ready; it returns the run id.
func (h *harness) toReady(vid, requestID string) string {
	h.t.Helper()
	runID, _ := h.toProcessing(vid, requestID)
	h.event(vid, bus.KindRenderDone, h.renderDone(vid, runID, 1))
	cj, _ := job(h, bus.StepCDN, &backbeatv1.CdnJob{})
	h.event(vid, bus.KindCDNDone, &backbeatv1.CdnDone{VideoId: vid, RunId: runID, PurgedPaths: cj.Paths})
	h.waitStatus(vid, store.StatusReady)
	tj, _ := job(h, bus.StepThumbnail, &backbeatv1.ThumbnailJob{})
	h.put(tj.ThumbnailKey)
	h.put(tj.SquareThumbnailKey)
	h.event(vid, bus.KindThumbnailDone, &backbeatv1.ThumbnailDone{VideoId: vid, RunId: runID,
		ThumbnailKey: tj.ThumbnailKey, SquareThumbnailKey: tj.SquareThumbnailKey})
	h.settle()
	return runID
}
