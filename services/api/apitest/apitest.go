// Package apitest runs the real API handler on an httptest server with an
// embedded JetStream, a fresh Postgres schema and a local blob folder (or a
// fresh MinIO bucket), for the API's own tests and for the CLI's. The server
// runs with the connection timeouts the API sets in production. It also seeds what the coordinator
// would write (videos, runs, steps), since the API only reads them.
package apitest

import (
	"context"
	"encoding/binary"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"
	"gorm.io/gorm/clause"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/telemetry"
	"github.com/backbeat/backbeat/pkg/testenv"
	"github.com/backbeat/backbeat/services/api"
)

// AdminKey is the admin key of every test environment.
const AdminKey = "test-admin-key-0123456789"

// Env is one running API with its parts.
type Env struct {
	Server *httptest.Server
	URL    string
	JS     jetstream.JetStream
	NC     *nats.Conn
	Store  *store.Store
	// Objects is where the API stores uploads; Blob is the same store when
	// it is a local folder (New) and nil on MinIO (NewOnMinIO).
	Objects blob.Store
	Blob    *blob.Local
	Pub     *bus.Publisher
	// Service is the API behind Server.
	Service *api.Service
	// UserID and Key are a seeded user with 100 credits and its API key.
	UserID string
	Key    string
}

// New starts an environment whose uploads go to a local folder; everything
// stops in t.Cleanup. Options adjust the API's configuration.
func New(t *testing.T, opts ...func(*api.Config)) *Env {
	t.Helper()
	local, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	e := NewOn(t, local, opts...)
	e.Blob = local
	return e
}

// NewOnMinIO is New with uploads on a fresh bucket of the test MinIO
// (testenv.MinIO), for what only shows against S3: multipart uploads and the
// memory minio-go takes for them.
func NewOnMinIO(t *testing.T, opts ...func(*api.Config)) *Env {
	t.Helper()
	return NewOn(t, testenv.MinIO(t), opts...)
}

// NewOn is New with uploads on the given store.
func NewOn(t *testing.T, objects blob.Store, opts ...func(*api.Config)) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, nc := testenv.NATS(t)
	st, err := store.Open(ctx, testenv.Postgres(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	pub := bus.NewPublisher(js, testenv.Topology().Subjects)
	cfg := api.Config{AdminKey: AdminKey, MaxCoverBytes: 64 << 10, SpoolDir: t.TempDir()}
	for _, o := range opts {
		o(&cfg)
	}
	log := zaptest.NewLogger(t)
	tel := telemetry.New("api", log)
	svc, err := api.New(cfg,
		api.Deps{Store: st, Blob: objects, Pub: pub, JS: js, Log: log, Telemetry: tel})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(svc.Handler())
	srv.Config = tel.HTTPServer()
	srv.Start()
	t.Cleanup(srv.Close)
	e := &Env{Server: srv, URL: srv.URL, JS: js, NC: nc, Store: st, Objects: objects, Pub: pub, Service: svc}
	e.UserID, e.Key = e.AddUser(t, "u1")
	return e
}

// AddUser creates a user with 100 credits and returns its id and a key.
func (e *Env) AddUser(t *testing.T, id string) (string, string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, e.Store.UpsertUser(ctx, store.User{ID: id, Balance: 100, Bundle: "free"}))
	key, err := api.CreateAPIKey(ctx, e.Store, id, "test")
	require.NoError(t, err)
	return id, key
}

// SeedVideo writes a video, its run and timeline as the coordinator would.
// A video row an upload already claimed is taken over, as the coordinator's
// create does.
func (e *Env) SeedVideo(t *testing.T, v store.Video, stage store.Stage, steps ...store.Step) {
	t.Helper()
	db := e.Store.DB
	if v.RunID != "" {
		require.NoError(t, db.Create(&store.Run{
			ID: v.RunID, VideoID: v.ID, UserID: v.UserID, CreateKey: "seed:" + v.RunID,
			Status: v.Status, Stage: stage, Bundle: "free", Units: 1, Attempt: 1, Pool: "cpu",
		}).Error)
	}
	require.NoError(t, db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&v).Error)
	for i := range steps {
		steps[i].RunID, steps[i].VideoID = v.RunID, v.ID
		require.NoError(t, db.Create(&steps[i]).Error)
	}
}

// SetVideo updates columns of a video row (a coordinator state change).
func (e *Env) SetVideo(t *testing.T, id string, fields map[string]any) {
	t.Helper()
	require.NoError(t, e.Store.DB.Model(&store.Video{}).Where("id = ?", id).Updates(fields).Error)
}

// PublishProgress stores a progress message as a renderer would.
func (e *Env) PublishProgress(t *testing.T, videoID string, m proto.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Pub.Publish(ctx, e.Pub.Subjects().Progress(videoID), m, ""))
}

// Events returns every message stored on EVENTS under subject filter.
func (e *Env) Events(t *testing.T, filter string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.JS.Stream(ctx, bus.StreamEvents)
	require.NoError(t, err)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	require.NoError(t, err)
	var want uint64
	for _, n := range info.State.Subjects {
		want += n
	}
	if want == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	require.NoError(t, err)
	var out []jetstream.Msg
	for uint64(len(out)) < want {
		batch, err := cons.Fetch(int(want)-len(out), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		n := len(out)
		for m := range batch.Messages() {
			out = append(out, m)
		}
		require.NoError(t, batch.Error())
		require.Greater(t, len(out), n, "no events fetched")
	}
	return out
}

// WAV returns a valid 8 kHz mono 16-bit WAV of n samples of silence.
func WAV(n int) []byte {
	data := make([]byte, 44+2*n)
	copy(data[0:], "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+2*n))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1)
	binary.LittleEndian.PutUint16(data[22:], 1)
	binary.LittleEndian.PutUint32(data[24:], 8000)
	binary.LittleEndian.PutUint32(data[28:], 16000)
	binary.LittleEndian.PutUint16(data[32:], 2)
	binary.LittleEndian.PutUint16(data[34:], 16)
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(2*n))
	return data
}

// PNG is a 1×1 PNG image.
var PNG = []byte{
	0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
	0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
	0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
	0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
}
