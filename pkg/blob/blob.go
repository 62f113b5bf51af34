// Package blob stores uploads, audio, analyses, videos and thumbnails by object
// key, on S3-compatible storage (MinIO, S3, R2) in production and in a local
// folder for `backbeat dev`. Both implementations pass one conformance suite.
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) when a key does not exist; check it with errors.Is.
var ErrNotFound = errors.New("blob: object not found")

// Info describes a stored object. ETag changes whenever the bytes change, so the
// edge can revalidate and purge by it.
type Info struct {
	Key         string
	Size        int64
	ETag        string
	ContentType string
	ModTime     time.Time
}

// Store is object storage by key. Keys are slash-separated and validated by
// callers with keys.ValidKey before they get here; implementations refuse keys
// that could escape their root (.., leading slash, backslash, NUL) anyway.
type Store interface {
	// Put writes the object atomically: a reader never sees a half-written object.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error)
	// PutFile uploads a local file.
	PutFile(ctx context.Context, key, path, contentType string) (Info, error)
	// Get opens the object; the caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// GetFile downloads the object to a local path (created or truncated).
	GetFile(ctx context.Context, key, path string) (Info, error)
	// Stat describes the object without reading it.
	Stat(ctx context.Context, key string) (Info, error)
	// Copy makes dstKey a copy of srcKey, bytes and content type, without
	// the bytes passing through the caller (server-side on S3), so the
	// coordinator can promote a run's objects to public keys. Like Put, the
	// destination appears whole or not at all, and an existing one is
	// replaced. A missing source is an error wrapping ErrNotFound. Copying
	// onto an identical destination, or a key onto itself, succeeds without
	// rewriting it, so a promotion can be retried.
	Copy(ctx context.Context, srcKey, dstKey string) (Info, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Ping checks the store is reachable (for /readyz).
	Ping(ctx context.Context) error
}
