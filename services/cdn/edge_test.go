package cdn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/testenv"
)

// edgeBundle is what the edge tests share.
type edgeBundle struct {
	store *blob.Local
	edge  *Edge
	srv   *httptest.Server
	reg   *prometheus.Registry
}

func setupEdge(t *testing.T, maxBytes int64) *edgeBundle {
	t.Helper()
	store, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	edge, err := NewEdge(EdgeConfig{CacheDir: t.TempDir(), CacheMaxBytes: maxBytes}, store, zaptest.NewLogger(t))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	edge.metrics = bus.NewMetrics(reg)
	srv := httptest.NewServer(edge)
	t.Cleanup(srv.Close)
	return &edgeBundle{store: store, edge: edge, srv: srv, reg: reg}
}

func (b *edgeBundle) put(t *testing.T, key string, data []byte) {
	t.Helper()
	_, err := b.store.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), "")
	require.NoError(t, err)
}

func (b *edgeBundle) do(t *testing.T, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// testRun is the run of every public key the edge tests serve.
const testRun = "r0123456789abcdef01234567"

// pub is the public key of the video of vid in testRun.
func pub(vid string) string { return keys.PublicKey(vid, testRun, keys.ObjectVideo) }

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestEdgeServesObjectThenHits(t *testing.T) {
	t.Parallel()
	b := setupEdge(t, 1<<20)
	data := payload(10000)
	b.put(t, pub("v1"), data)

	resp, body := b.do(t, http.MethodGet, "/"+pub("v1"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, data, body)
	require.Equal(t, "video/mp4", resp.Header.Get("Content-Type"))
	require.Equal(t, "MISS", resp.Header.Get("X-Cache"))
	require.Equal(t, "public, no-cache", resp.Header.Get("Cache-Control"))
	require.Equal(t, "bytes", resp.Header.Get("Accept-Ranges"))
	require.NotEmpty(t, resp.Header.Get("ETag"))
	require.True(t, strings.HasPrefix(resp.Header.Get("ETag"), `"`))

	resp, body = b.do(t, http.MethodGet, "/"+pub("v1"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, data, body)
	require.Equal(t, "HIT", resp.Header.Get("X-Cache"))
	require.Equal(t, 1.0, testenv.Counter(t, b.reg, "backbeat_edge_requests_total", "miss"), "operators see the miss")
	require.Equal(t, 1.0, testenv.Counter(t, b.reg, "backbeat_edge_requests_total", "hit"), "and the hit")

	n, size := b.edge.CacheStats()
	require.Equal(t, 1, n)
	require.Equal(t, int64(len(data)), size)
}

func TestEdgeRangeConditionalAndHead(t *testing.T) {
	t.Parallel()
	b := setupEdge(t, 1<<20)
	data := payload(5000)
	b.put(t, pub("v2"), data)

	resp, body := b.do(t, http.MethodGet, "/"+pub("v2"), map[string]string{"Range": "bytes=100-199"})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, data[100:200], body)
	require.Equal(t, "bytes 100-199/5000", resp.Header.Get("Content-Range"))
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)

	resp, body = b.do(t, http.MethodGet, "/"+pub("v2"), map[string]string{"If-None-Match": etag})
	require.Equal(t, http.StatusNotModified, resp.StatusCode)
	require.Empty(t, body)

	// If-Range with the current ETag honours the range; with an old one it
	// sends the whole (new) object.
	resp, body = b.do(t, http.MethodGet, "/"+pub("v2"), map[string]string{"Range": "bytes=0-9", "If-Range": etag})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, data[:10], body)
	resp, body = b.do(t, http.MethodGet, "/"+pub("v2"), map[string]string{"Range": "bytes=0-9", "If-Range": `"old"`})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, data, body)

	resp, body = b.do(t, http.MethodHead, "/"+pub("v2"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body)
	require.Equal(t, "5000", resp.Header.Get("Content-Length"))
	require.Equal(t, etag, resp.Header.Get("ETag"))
}

func TestEdgeRefusesPrivateAndBadPaths(t *testing.T) {
	t.Parallel()
	b := setupEdge(t, 1<<20)
	// Objects that exist but are not public objects: uploads, and the flat
	// keys of the first layout, which the edge served before (issue 8).
	for _, k := range []string{"uploads/v3/track.mp3", "analysis/v3.json", "videos/v3.mp4", "thumbnails/v3.jpg",
		"thumbnails/v3-square.jpg", "audio/v3.mp3", "audio/v3.m4a", "videos/v3/" + testRun + "/other.mp4"} {
		b.put(t, k, payload(10))
	}

	for _, p := range []string{
		"/uploads/v3/track.mp3",
		"/uploads/x",
		"/analysis/v3.json",
		"/videos/v3.mp4",
		"/thumbnails/v3.jpg",
		"/thumbnails/v3-square.jpg",
		"/audio/v3.mp3",
		"/audio/v3.m4a",
		"/videos/v3/" + testRun + "/other.mp4",
		"/videos/v3/run1/video.mp4",
		"/videos/v3/" + testRun,
		"/videos/v3/",
		"/videos/../uploads/v3/track.mp3",
		"/videos/../x",
		"/videos/",
		"/videos//x.mp4",
		"/videos/a%20b.mp4",
		"/" + pub("v3") + "/",
		"/",
	} {
		resp, _ := b.do(t, http.MethodGet, p, nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, p)
	}
	n, _ := b.edge.CacheStats()
	require.Zero(t, n, "nothing refused was fetched")
	resp, _ := b.do(t, http.MethodGet, "/"+pub("missing"), nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = b.do(t, http.MethodPost, "/"+pub("missing"), nil)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// TestEdgeNeverServesRunScopedObjects is issue 8's defect 2 on the edge: the
// objects a run writes (runs/<vid>/<run>/…) and the uploads stay private even
// when they exist, whatever the method, range or path spelling; the edge
// serves a run's object only once the coordinator has promoted it (copied
// it to its public key).
func TestEdgeNeverServesRunScopedObjects(t *testing.T) {
	t.Parallel()
	b := setupEdge(t, 1<<20)
	ctx := context.Background()
	b.put(t, keys.UploadPrefix("v5")+"audio.mp3", payload(100))
	for _, name := range keys.ObjectNames() {
		b.put(t, keys.RunKey("v5", testRun, name), payload(100))
	}
	private := []string{keys.UploadPrefix("v5") + "audio.mp3", keys.RunPrefix("v5", testRun)}
	for _, name := range keys.ObjectNames() {
		private = append(private, keys.RunKey("v5", testRun, name))
	}
	for _, key := range private {
		for _, path := range []string{"/" + key, "/videos/../" + key, "/videos/%2e%2e/" + key, "//" + key} {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				resp, body := b.do(t, method, path, map[string]string{"Range": "bytes=0-9"})
				require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s %s", method, path)
				require.NotContains(t, string(body), string(payload(10)), "%s %s", method, path)
			}
		}
	}
	n, _ := b.edge.CacheStats()
	require.Zero(t, n, "no private object reached the cache")

	// Promotion makes the run's video public, under its public key only.
	_, err := b.store.Copy(ctx, keys.RunKey("v5", testRun, keys.ObjectVideo), keys.PublicKey("v5", testRun, keys.ObjectVideo))
	require.NoError(t, err)
	resp, body := b.do(t, http.MethodGet, "/"+keys.PublicKey("v5", testRun, keys.ObjectVideo), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, payload(100), body)
	resp, _ = b.do(t, http.MethodGet, "/"+keys.RunKey("v5", testRun, keys.ObjectVideo), nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestPublicKeyAcceptsExactlyThePublicLayout(t *testing.T) {
	t.Parallel()
	for _, name := range keys.ObjectNames() {
		key := keys.PublicKey("X-square", testRun, name)
		got, err := PublicKey("/" + key)
		require.NoError(t, err, key)
		require.Equal(t, key, got)
		routed := false
		for _, p := range PublicPrefixes {
			routed = routed || strings.HasPrefix(key, p)
		}
		require.True(t, routed, "servers mount the edge on a prefix of %s", key)

		_, err = PublicKey("/" + keys.RunKey("X-square", testRun, name))
		require.Error(t, err)
	}
	require.Equal(t, []string{"videos/"}, PublicPrefixes, "the edge is mounted on the public folder only")
}

func TestEdgeContentTypes(t *testing.T) {
	t.Parallel()
	b := setupEdge(t, 1<<20)
	for name, want := range map[string]string{
		keys.ObjectVideo:           "video/mp4",
		keys.ObjectThumbnail:       "image/jpeg",
		keys.ObjectSquareThumbnail: "image/jpeg",
		keys.ObjectMP3:             "audio/mpeg",
		keys.ObjectAudio:           "audio/mp4",
	} {
		key := keys.PublicKey("v4", testRun, name)
		b.put(t, key, payload(64))
		resp, _ := b.do(t, http.MethodGet, "/"+key, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, key)
		require.Equal(t, want, resp.Header.Get("Content-Type"), key)
	}
}

func TestEdgeEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	b := setupEdge(t, 2500)
	for i := range 3 {
		b.put(t, pub(fmt.Sprintf("e%d", i)), payload(1000))
	}
	b.do(t, http.MethodGet, "/"+pub("e0"), nil)
	b.do(t, http.MethodGet, "/"+pub("e1"), nil)
	b.do(t, http.MethodGet, "/"+pub("e0"), nil) // e1 is now the least recent
	b.do(t, http.MethodGet, "/"+pub("e2"), nil) // evicts e1
	n, size := b.edge.CacheStats()
	require.Equal(t, 2, n)
	require.Equal(t, int64(2000), size)
	resp, _ := b.do(t, http.MethodGet, "/"+pub("e0"), nil)
	require.Equal(t, "HIT", resp.Header.Get("X-Cache"))
	resp, _ = b.do(t, http.MethodGet, "/"+pub("e1"), nil)
	require.Equal(t, "MISS", resp.Header.Get("X-Cache"))

	// Larger than the whole cache: served, never kept.
	big := payload(4000)
	b.put(t, pub("big"), big)
	resp, body := b.do(t, http.MethodGet, "/"+pub("big"), map[string]string{"Range": "bytes=3990-"})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, big[3990:], body)
	resp, _ = b.do(t, http.MethodGet, "/"+pub("big"), nil)
	require.Equal(t, "MISS", resp.Header.Get("X-Cache"))
}

// countingStore counts downloads so the test can see concurrent misses share one.
type countingStore struct {
	*blob.Local
	mu      sync.Mutex
	gets    int
	delay   time.Duration
	started chan struct{} // closed when the first download starts, if set
}

func (s *countingStore) GetFile(ctx context.Context, key, path string) (blob.Info, error) {
	s.mu.Lock()
	s.gets++
	if s.gets == 1 && s.started != nil {
		close(s.started)
	}
	s.mu.Unlock()
	time.Sleep(s.delay)
	return s.Local.GetFile(ctx, key, path)
}

func TestEdgeConcurrentMissesFetchOnce(t *testing.T) {
	t.Parallel()
	local, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	store := &countingStore{Local: local, delay: 200 * time.Millisecond}
	data := payload(3000)
	_, err = local.Put(context.Background(), pub("c"), bytes.NewReader(data), int64(len(data)), "video/mp4")
	require.NoError(t, err)
	edge, err := NewEdge(EdgeConfig{CacheDir: t.TempDir(), CacheMaxBytes: 1 << 20}, store, zaptest.NewLogger(t))
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			edge.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+pub("c"), nil))
			if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), data) {
				t.Errorf("concurrent GET: status %d, %d bytes", rec.Code, rec.Body.Len())
			}
		})
	}
	wg.Wait()
	store.mu.Lock()
	defer store.mu.Unlock()
	require.Equal(t, 1, store.gets)
}

func TestEdgePurgeDuringFetchIsNotCached(t *testing.T) {
	t.Parallel()
	local, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	store := &countingStore{Local: local, delay: 300 * time.Millisecond, started: make(chan struct{})}
	_, err = local.Put(context.Background(), pub("p"), strings.NewReader("old"), 3, "")
	require.NoError(t, err)
	edge, err := NewEdge(EdgeConfig{CacheDir: t.TempDir(), CacheMaxBytes: 1 << 20}, store, zaptest.NewLogger(t))
	require.NoError(t, err)

	done := make(chan struct{})
	go func() {
		defer close(done)
		rec := httptest.NewRecorder()
		edge.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+pub("p"), nil))
	}()
	<-store.started
	edge.Purge(pub("p"))
	<-done
	n, _ := edge.CacheStats()
	require.Zero(t, n, "bytes fetched before a purge must not be cached after it")
}
