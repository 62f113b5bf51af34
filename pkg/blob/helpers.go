package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/backbeat/backbeat/pkg/keys"
)

// CheckKey refuses keys that fail keys.ValidKey, and keys under the Local
// store's reserved ".blob/" folder, on every implementation alike so that a
// key valid on one store is valid on all.
func CheckKey(key string) error {
	if err := keys.ValidKey(key); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if key == reservedDir || strings.HasPrefix(key, reservedDir+"/") {
		return fmt.Errorf("blob: invalid object key %q: %s/ is reserved", key, reservedDir)
	}
	return nil
}

// sameObject reports whether dst already holds src's bytes and content type,
// by ETag and size, so Copy can leave an identical destination alone.
func sameObject(src, dst Info) bool {
	return src.ETag != "" && src.ETag == dst.ETag && src.Size == dst.Size && src.ContentType == dst.ContentType
}

// knownTypes pins the content types of the objects Backbeat stores, so they do
// not depend on the host's /etc/mime.types.
var knownTypes = map[string]string{
	".mp4":  "video/mp4",
	".m4a":  "audio/mp4",
	".mp3":  "audio/mpeg",
	".wav":  "audio/wav",
	".flac": "audio/flac",
	".ogg":  "audio/ogg",
	".json": "application/json",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".png":  "image/png",
	".webp": "image/webp",
	".txt":  "text/plain; charset=utf-8",
}

// contentTypeFor returns ct, or when it is empty the type implied by the key's
// extension, falling back to application/octet-stream.
func contentTypeFor(key, ct string) string {
	if ct != "" {
		return ct
	}
	ext := strings.ToLower(path.Ext(key))
	if t, ok := knownTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// ctxReader stops a long copy as soon as ctx is done, so a cancelled run does
// not keep streaming a large object.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// putFile uploads the local file at path through s.Put with its exact size.
func putFile(ctx context.Context, s Store, key, path, contentType string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("blob: put file %s: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("blob: put file %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("blob: put file %s: %s is not a regular file", key, path)
	}
	return s.Put(ctx, key, f, fi.Size(), contentType)
}

// getFile downloads key into a temporary file beside path and renames it into
// place, so path never holds a partial download.
func getFile(ctx context.Context, s Store, key, dst string) (Info, error) {
	rc, info, err := s.Get(ctx, key)
	if err != nil {
		return Info{}, err
	}
	defer rc.Close()
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Info{}, fmt.Errorf("blob: get file %s: %w", key, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+filepath.Base(dst)+".part-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return Info{}, fmt.Errorf("blob: get file %s: %w", key, err)
	}
	n, err := io.Copy(f, ctxReader{ctx: ctx, r: rc})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != info.Size {
		err = fmt.Errorf("read %d bytes, expected %d", n, info.Size)
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return Info{}, fmt.Errorf("blob: get file %s to %s: %w", key, dst, err)
	}
	return info, nil
}
