// Package cdn is Backbeat's edge and its purge worker. The edge serves the
// public objects of videos (MP4s, thumbnails, audio downloads), which live
// only under videos/<vid>/<run>/<name> (keys.PublicKey, copied there by the
// coordinator when a run is ready), from a local disk cache in front of the
// blob store, with the HTTP semantics a browser needs to seek in a video;
// every replica drops a cached object as soon as its key is written to the
// JetStream KV bucket "purges". The purge worker writes those keys (any valid
// key) when an object is replaced or withdrawn, and optionally tells an
// external CDN too. A failed purge never fails the video.
package cdn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
)

// PublicPrefixes are the URL folders servers mount the edge on: only the
// root of keys.PublicPrefix. Within it the edge serves nothing but
// well-formed public keys (PublicKey). Uploads and run outputs (runs/) are
// private: a user's raw upload must not become a public URL, and a run's
// objects are not public until the coordinator promotes them at ready.
var PublicPrefixes = []string{"videos/"}

// EdgeConfig sizes the edge's disk cache.
type EdgeConfig struct {
	// CacheDir holds cached objects. Files the edge left there on a previous
	// run are removed at start, since purges made meanwhile were not seen.
	CacheDir string
	// CacheMaxBytes bounds the cache; least recently used objects go first.
	// An object larger than this is served but not kept.
	CacheMaxBytes int64
	// FetchTimeout bounds one download from the blob store.
	FetchTimeout time.Duration
}

func (c *EdgeConfig) defaults() {
	if c.CacheMaxBytes == 0 {
		c.CacheMaxBytes = 10 << 30
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = 5 * time.Minute
	}
}

func (c EdgeConfig) validate() error {
	if c.CacheDir == "" {
		return errors.New("edge: cache dir is required")
	}
	if c.CacheMaxBytes < 0 {
		return errors.New("edge: cache max bytes must not be negative")
	}
	return nil
}

// Edge is the http.Handler of one edge replica.
type Edge struct {
	store blob.Store
	log   *zap.Logger
	cache *diskCache
	// metrics, when set, counts cache hits and misses.
	metrics *bus.Metrics
}

// NewEdge prepares the cache directory (emptying it) and returns the handler.
func NewEdge(cfg EdgeConfig, store blob.Store, log *zap.Logger) (*Edge, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("edge: blob store is required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	e := &Edge{store: store, log: log}
	fetchCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), cfg.FetchTimeout)
	}
	c, err := newDiskCache(cfg.CacheDir, cfg.CacheMaxBytes, e.fetch, fetchCtx)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	e.cache = c
	return e, nil
}

func (e *Edge) fetch(ctx context.Context, key, path string) (blob.Info, error) {
	info, err := e.store.GetFile(ctx, key, path)
	if err != nil {
		return blob.Info{}, fmt.Errorf("fetch %s: %w", key, err)
	}
	return info, nil
}

// Purge drops one key from this replica's cache. It reports whether the key
// was cached.
func (e *Edge) Purge(key string) bool { return e.cache.purge(key) }

// Flush drops every cached object.
func (e *Edge) Flush() { e.cache.flush() }

// CacheStats reports how many objects and bytes the cache holds.
func (e *Edge) CacheStats() (objects int, bytes int64) { return e.cache.stats() }

// ServeHTTP serves GET and HEAD of public objects. http.ServeContent does the
// conditional and range logic (Range, If-Range, If-None-Match, HEAD), so a
// browser can seek in an MP4 and revalidate by ETag.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	key, err := PublicKey(r.URL.Path)
	if err != nil {
		// Not found, not bad request: whether a private key exists is
		// nobody's business, and no public object has such a path.
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	res, err := e.cache.open(r.Context(), key)
	if err != nil {
		switch {
		case errors.Is(err, blob.ErrNotFound):
			http.Error(w, "not found", http.StatusNotFound)
		case r.Context().Err() != nil:
			// The client left; nobody reads the answer.
		default:
			e.log.Warn("edge fetch failed", zap.String("key", key), zap.Error(err))
			http.Error(w, "upstream error", http.StatusBadGateway)
		}
		return
	}
	defer res.file.Close()

	h := w.Header()
	h.Set("Content-Type", ContentType(key, res.info.ContentType))
	if et := quoteETag(res.info.ETag); et != "" {
		h.Set("ETag", et)
	}
	// A public key names one run, so its bytes do not change, but a video can
	// be withdrawn (deleted and purged): clients may keep a copy but must
	// revalidate it (cheap: 304 by ETag) before each use.
	h.Set("Cache-Control", "public, no-cache")
	h.Set("Accept-Ranges", "bytes")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "ETag, Content-Length, Content-Range, X-Cache")
	if res.hit {
		h.Set("X-Cache", "HIT")
	} else {
		h.Set("X-Cache", "MISS")
	}
	e.metrics.EdgeServed(res.hit)
	http.ServeContent(w, r, "", res.info.ModTime, res.file)
}

// PublicKey turns a request path into the object key it names, refusing
// anything that keys.ParsePublicKey does not accept: keys outside videos/,
// the flat keys of the first layout (videos/<vid>.mp4), names that are not
// object names, and anything keys.ValidKey refuses (.., empty segments, odd
// characters). The path is used as sent, not cleaned, so
// "/videos/../runs/x" is refused rather than resolved.
func PublicKey(urlPath string) (string, error) {
	key, ok := strings.CutPrefix(urlPath, "/")
	if !ok {
		return "", fmt.Errorf("path %q is not absolute", urlPath)
	}
	if err := keys.ValidKey(key); err != nil {
		return "", fmt.Errorf("path %q: %w", urlPath, err)
	}
	if _, _, _, ok := keys.ParsePublicKey(key); !ok {
		return "", fmt.Errorf("path %q is not a public object (want /%s<run>/<name>)", urlPath, keys.PublicPrefix("<vid>"))
	}
	return key, nil
}

// contentTypes by extension win over what the store recorded, so an object
// uploaded with a generic type still plays in a browser.
var contentTypes = map[string]string{
	".mp4":  "video/mp4",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".png":  "image/png",
	".webp": "image/webp",
	".mp3":  "audio/mpeg",
	".m4a":  "audio/mp4",
	".aac":  "audio/aac",
	".wav":  "audio/wav",
}

// ContentType is the Content-Type the edge sends for key: by extension, else
// the stored type, else application/octet-stream.
func ContentType(key, stored string) string {
	if ct, ok := contentTypes[strings.ToLower(path.Ext(key))]; ok {
		return ct
	}
	if stored != "" {
		return stored
	}
	return "application/octet-stream"
}

// quoteETag makes a store's ETag a valid HTTP entity tag; S3 clients often
// strip the quotes that ServeContent's If-None-Match matching requires.
func quoteETag(tag string) string {
	if tag == "" {
		return ""
	}
	if strings.HasPrefix(tag, `"`) || strings.HasPrefix(tag, `W/"`) {
		return tag
	}
	return `"` + tag + `"`
}
