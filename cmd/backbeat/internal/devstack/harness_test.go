package devstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/testenv"
	"github.com/backbeat/backbeat/services/api"
	renderer "github.com/backbeat/backbeat/services/gpu-renderer"
	coordinator "github.com/backbeat/backbeat/services/render-coordinator"
)

// testBundle renders fast: ultrafast preset, two pools, cheap units.
func testBundles() map[string]coordinator.Bundle {
	return map[string]coordinator.Bundle{
		"test": {Name: "test", CRF: 23, Preset: "ultrafast", FPS: 30, Priority: bus.PrioNormal, Pools: []string{"gpu", "cpu"},
			MaxRegionSeconds: 60, Concurrency: 2, UnitSeconds: 10, Encoder: "libx264"},
		"free": coordinator.DefaultBundles()["free"],
	}
}

// faults lets a test make a pool's renderer fail or hang at a frame.
type faults struct {
	mu sync.Mutex
	fn map[string]func(ctx context.Context, frame int) error
}

func (f *faults) set(pool string, fn func(ctx context.Context, frame int) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fn[pool] = fn
}

func (f *faults) hook(pool string) func(ctx context.Context, frame int) error {
	return func(ctx context.Context, frame int) error {
		f.mu.Lock()
		fn := f.fn[pool]
		f.mu.Unlock()
		if fn == nil {
			return nil
		}
		return fn(ctx, frame)
	}
}

// alertSink is a chat webhook that records what it receives.
type alertSink struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []map[string]any
}

func (a *alertSink) all() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]map[string]any(nil), a.got...)
}

// syncBuffer collects the JSON logs of every service.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Sync() error { return nil }

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type e2e struct {
	t      *testing.T
	st     *Stack
	faults *faults
	alerts *alertSink
	logs   *syncBuffer
	tone   string
	client *http.Client
	seq    atomic.Int32
}

// setup starts a whole stack on Postgres, MinIO, an embedded JetStream server
// and ffmpeg, with a dev user on the test bundle.
func setup(t *testing.T, mod func(*Options)) *e2e {
	t.Helper()
	testenv.RequireFFmpeg(t)
	e := &e2e{t: t, faults: &faults{fn: map[string]func(context.Context, int) error{}}, alerts: &alertSink{},
		logs: &syncBuffer{}, client: &http.Client{Timeout: 60 * time.Second}}
	e.alerts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		e.alerts.mu.Lock()
		e.alerts.got = append(e.alerts.got, m)
		e.alerts.mu.Unlock()
	}))
	t.Cleanup(e.alerts.srv.Close)
	// The logger `backbeat dev` builds, into the buffer.
	log, err := logging.NewTo("debug", e.logs)
	require.NoError(t, err)
	opts := Options{
		Dir: t.TempDir(), NATSPort: -1, HTTPAddr: "127.0.0.1:0",
		DatabaseURL: testenv.Postgres(t), Blob: testenv.MinIO(t),
		Bundles: testBundles(), DevBundle: "test", DevBalance: 100,
		StallTimeout: time.Minute, AlertWebhook: e.alerts.srv.URL, Log: log,
		Renderer: func(pool string, cfg *renderer.Config) { cfg.BeforeFrame = e.faults.hook(pool) },
		Policies: map[string]bus.Policy{
			bus.StepAudio:     {AckWait: 10 * time.Second, MaxDeliver: 2, Backoff: []time.Duration{200 * time.Millisecond}},
			bus.StepThumbnail: {AckWait: 10 * time.Second, MaxDeliver: 2, Backoff: []time.Duration{200 * time.Millisecond}},
		},
	}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		st.Stop()
		if t.Failed() {
			t.Logf("service logs:\n%s", tail(e.logs.String(), 60))
		}
		checkLogLines(t, e.logs.String())
	})
	e.st = st
	e.tone = testenv.Tone(t, t.TempDir(), 8)
	return e
}

// checkLogLines holds every line the stack logged to what operators parse:
// one JSON object, no key twice at any depth, the service it came from, and
// a trace id on every line that names a video (it was written while
// handling a request or a message about the video, or by the watchdog or
// sweeper acting on its run). Lines of one video carry the trace of the
// command that caused them (TestOneTracePerVideo holds a video with one
// command to one trace); start-up lines name no video and carry none.
func checkLogLines(t *testing.T, logs string) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		keys, err := jsonKeys(line)
		if err != nil {
			t.Errorf("log line %d is not one JSON object (%v): %s", i+1, err, line)
			continue
		}
		if keys["service"] != 1 {
			t.Errorf("log line %d names its service %d times: %s", i+1, keys["service"], line)
		}
		if keys["video_id"] == 0 {
			continue
		}
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m)
		if tid, _ := m[logging.KeyTraceID].(string); len(tid) != 32 {
			t.Errorf("log line %d names a video but carries no trace_id: %s", i+1, line)
		}
	}
}

// jsonKeys counts the keys of the top-level object of line, and fails on a
// key repeated in any object of it.
func jsonKeys(line string) (map[string]int, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	var top map[string]int
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]int{}
			if top == nil {
				top = seen
			}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				if seen[key]++; seen[key] > 1 && key != "service" {
					return fmt.Errorf("key %q twice", key)
				}
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // }
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ]
			return err
		}
		return nil
	}
	if err := walk(); err != nil {
		return nil, err
	}
	if top == nil {
		return nil, errors.New("not an object")
	}
	if dec.More() {
		return nil, errors.New("more than one value")
	}
	return top, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (e *e2e) vid(name string) string {
	return fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano()%1_000_000, e.seq.Add(1))
}

// do sends an API request with the dev key and decodes a JSON answer.
func (e *e2e) do(method, path string, body io.Reader, contentType string, out any) int {
	e.t.Helper()
	req, err := http.NewRequest(method, e.st.BaseURL+path, body)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+e.st.APIKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(e.t, json.Unmarshal(b, out), "body: %s", b)
	}
	if resp.StatusCode >= 300 && out == nil {
		e.t.Logf("%s %s → %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func (e *e2e) upload(vid, kind, path string) string {
	e.t.Helper()
	f, err := os.Open(path)
	require.NoError(e.t, err)
	defer f.Close()
	var out struct {
		Key string `json:"key"`
	}
	code := e.do(http.MethodPost, "/v1/uploads?video_id="+vid+"&kind="+kind, f, "application/octet-stream", &out)
	require.Equal(e.t, http.StatusCreated/100, code/100, "upload answered %d", code)
	return out.Key
}

func (e *e2e) create(r api.CreateRequest) {
	e.t.Helper()
	code := e.do(http.MethodPost, "/v1/videos", jsonBody(e.t, r), "application/json", &struct{}{})
	require.Equal(e.t, 2, code/100, "create answered %d", code)
}

// submit uploads the test tone and creates a video of region [start, end).
func (e *e2e) submit(vid string, start, end float64, format string) {
	e.t.Helper()
	key := e.upload(vid, "audio", e.tone)
	e.create(api.CreateRequest{VideoID: vid, AudioKey: key, StartSeconds: start, EndSeconds: end, Template: "spectrum",
		Format: format, Title: "Test Tone", Artist: "Backbeat"})
}

func jsonBody(t *testing.T, v any) io.Reader {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return bytes.NewReader(b)
}

func (e *e2e) status(vid string) (api.VideoView, int) {
	e.t.Helper()
	var v api.VideoView
	code := e.do(http.MethodGet, "/v1/videos/"+vid, nil, "", &v)
	return v, code
}

// wait polls until cond holds, failing with the last view after timeout.
func (e *e2e) wait(vid string, timeout time.Duration, what string, cond func(v api.VideoView) bool) api.VideoView {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var v api.VideoView
	for time.Now().Before(deadline) {
		var code int
		v, code = e.status(vid)
		if code == http.StatusOK && cond(v) {
			return v
		}
		time.Sleep(150 * time.Millisecond)
	}
	e.t.Fatalf("video %s: %s not reached in %s; last: %+v", vid, what, timeout, v)
	return v
}

func (e *e2e) waitStatus(vid string, want store.Status) api.VideoView {
	e.t.Helper()
	return e.wait(vid, 3*time.Minute, "status "+string(want), func(v api.VideoView) bool {
		if v.Status == want {
			return true
		}
		terminal := v.Status == "ready" || v.Status == "error" || v.Status == "cancelled"
		if terminal && v.Status != want {
			e.t.Fatalf("video %s ended %s (%s), want %s", vid, v.Status, v.Reason, want)
		}
		return false
	})
}

func (e *e2e) balance() int64 {
	e.t.Helper()
	var me struct {
		Balance int64 `json:"balance"`
	}
	require.Equal(e.t, http.StatusOK, e.do(http.MethodGet, "/v1/me", nil, "", &me))
	return me.Balance
}

// fetch downloads a URL from the edge into dir and returns its path, its
// sha256 and the response headers.
func (e *e2e) fetch(url, dir string) (string, string, http.Header) {
	e.t.Helper()
	resp, err := e.client.Get(url)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, http.StatusOK, resp.StatusCode, "GET %s", url)
	path := filepath.Join(dir, filepath.Base(url))
	f, err := os.Create(path)
	require.NoError(e.t, err)
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	require.NoError(e.t, err)
	require.NoError(e.t, f.Close())
	return path, hex.EncodeToString(h.Sum(nil)), resp.Header
}

func stepsNamed(v api.VideoView, name string) []api.StepView {
	var out []api.StepView
	for _, s := range v.Steps {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// ffmpegPIDs lists running ffmpeg processes working for a video.
func ffmpegPIDs(vid string) []string {
	var pids []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		if strings.Contains(cmd, "ffmpeg") && strings.Contains(cmd, "render-"+vid+"-") {
			pids = append(pids, filepath.Base(filepath.Dir(d)))
		}
	}
	return pids
}

func alive(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited.
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}
