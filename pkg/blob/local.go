package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// reservedDir holds the sidecar metadata and the temporary files of a Local
// store, so that partial writes never appear under an object's key.
const reservedDir = ".blob"

// Local is a Store on a local folder, for `backbeat dev` and tests. An object
// lives at <dir>/<key> so the folder can be browsed and served as-is; its ETag
// and content type live in a JSON sidecar under <dir>/.blob/meta/.
type Local struct {
	root  string
	locks sync.Map // key → *sync.Mutex, orders the data+sidecar renames of one key
}

var _ Store = (*Local)(nil)

// localMeta is the sidecar of one object. Size, ModTime and Inode tie it to one
// version of the data file: when they no longer match (a crash between the two
// renames, a writer in another process), the sidecar is ignored and the ETag
// recomputed from the bytes.
type localMeta struct {
	ContentType string `json:"content_type"`
	ETag        string `json:"etag"`
	Size        int64  `json:"size"`
	ModTimeNano int64  `json:"mod_time_ns"`
	Inode       uint64 `json:"inode"`
}

// NewLocal opens (creating if needed) a store rooted at dir.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("blob: local store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: local store %q: %w", dir, err)
	}
	for _, d := range []string{abs, filepath.Join(abs, reservedDir, "meta"), filepath.Join(abs, reservedDir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("blob: local store: create %s: %w", d, err)
		}
	}
	return &Local{root: abs}, nil
}

// Dir returns the absolute root folder, so a dev server can serve objects from it.
func (l *Local) Dir() string { return l.root }

// Put implements Store. It streams into a temporary file while hashing, then
// renames it over the key, so readers see the old or the new object, never a mix.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	dst, metaPath, err := l.paths(key)
	if err != nil {
		return Info{}, err
	}
	tmp, err := os.CreateTemp(filepath.Join(l.root, reservedDir, "tmp"), "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx: ctx, r: r})
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: write: %w", key, err)
	}
	if size >= 0 && n != size {
		return Info{}, fmt.Errorf("blob: put %s: read %d bytes, expected %d", key, n, size)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: sync: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: close: %w", key, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: chmod: %w", key, err)
	}
	fi, err := os.Stat(tmp.Name())
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	meta := localMeta{
		ContentType: contentTypeFor(key, contentType),
		ETag:        hex.EncodeToString(h.Sum(nil)),
		Size:        fi.Size(),
		ModTimeNano: fi.ModTime().UnixNano(),
		Inode:       inode(fi),
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	for _, d := range []string{filepath.Dir(dst), filepath.Dir(metaPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
		}
	}
	mu := l.lock(key)
	mu.Lock()
	defer mu.Unlock()
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: rename: %w", key, err)
	}
	committed = true
	if err := writeFileAtomic(filepath.Join(l.root, reservedDir, "tmp"), metaPath, meta); err != nil {
		// The object is in place; a stale sidecar is detected and ignored on read.
		return Info{}, fmt.Errorf("blob: put %s: sidecar: %w", key, err)
	}
	return meta.info(key), nil
}

// PutFile implements Store.
func (l *Local) PutFile(ctx context.Context, key, path, contentType string) (Info, error) {
	return putFile(ctx, l, key, path, contentType)
}

// Get implements Store. The open descriptor keeps reading the version it
// opened even if a concurrent Put replaces the key.
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	dst, metaPath, err := l.paths(key)
	if err != nil {
		return nil, Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, Info{}, fmt.Errorf("blob: get %s: %w", key, err)
	}
	f, err := os.Open(dst)
	if err != nil {
		return nil, Info{}, notFound("get", key, err)
	}
	info, err := l.describe(key, f, metaPath)
	if err != nil {
		_ = f.Close()
		return nil, Info{}, err
	}
	return f, info, nil
}

// GetFile implements Store.
func (l *Local) GetFile(ctx context.Context, key, path string) (Info, error) {
	return getFile(ctx, l, key, path)
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, key string) (Info, error) {
	dst, metaPath, err := l.paths(key)
	if err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: stat %s: %w", key, err)
	}
	f, err := os.Open(dst)
	if err != nil {
		return Info{}, notFound("stat", key, err)
	}
	defer f.Close()
	return l.describe(key, f, metaPath)
}

// Copy implements Store. It streams the source version it opened through
// Put, which writes a temporary file and renames it over the destination,
// so a reader of dstKey sees the old object or the whole copy, never a part.
func (l *Local) Copy(ctx context.Context, srcKey, dstKey string) (Info, error) {
	srcPath, srcMeta, err := l.paths(srcKey)
	if err != nil {
		return Info{}, err
	}
	if err := CheckKey(dstKey); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: copy %s to %s: %w", srcKey, dstKey, err)
	}
	f, err := os.Open(srcPath)
	if err != nil {
		return Info{}, notFound("copy", srcKey, err)
	}
	defer f.Close()
	src, err := l.describe(srcKey, f, srcMeta)
	if err != nil {
		return Info{}, err
	}
	if srcKey == dstKey {
		return src, nil
	}
	if dst, err := l.Stat(ctx, dstKey); err == nil && sameObject(src, dst) {
		return dst, nil
	}
	if info, ok := l.link(f, srcPath, dstKey, src); ok {
		return info, nil
	}
	info, err := l.Put(ctx, dstKey, f, src.Size, src.ContentType)
	if err != nil {
		return Info{}, fmt.Errorf("blob: copy %s: %w", srcKey, err)
	}
	return info, nil
}

// link makes dstKey a hard link to the version of the source that f has
// open, with its sidecar: no byte is copied or synced again, which is what a
// promotion of a finished video costs in `backbeat dev`. It is safe because
// an object file is never written in place: Put renames a new file over the
// key, so two keys that share an inode never see each other's later Puts.
// It reports false (the caller copies) when the file system refuses the
// link or the source changed since f was opened.
func (l *Local) link(f *os.File, srcPath, dstKey string, src Info) (Info, bool) {
	dst, metaPath, err := l.paths(dstKey)
	if err != nil {
		return Info{}, false
	}
	fi, err := f.Stat()
	if err != nil {
		return Info{}, false
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(l.root, reservedDir, "tmp", "link-"+hex.EncodeToString(rnd[:]))
	if err := os.Link(srcPath, tmp); err != nil {
		return Info{}, false
	}
	// The link names what srcPath names now: make sure that is still the
	// version f has open (a Put may have replaced it in between).
	if li, err := os.Stat(tmp); err != nil || !os.SameFile(li, fi) {
		_ = os.Remove(tmp)
		return Info{}, false
	}
	for _, d := range []string{filepath.Dir(dst), filepath.Dir(metaPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			_ = os.Remove(tmp)
			return Info{}, false
		}
	}
	meta := localMeta{ContentType: src.ContentType, ETag: src.ETag, Size: fi.Size(),
		ModTimeNano: fi.ModTime().UnixNano(), Inode: inode(fi)}
	mu := l.lock(dstKey)
	mu.Lock()
	defer mu.Unlock()
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return Info{}, false
	}
	// A missing or stale sidecar is detected on read and the object hashed
	// again: the link stands either way.
	_ = writeFileAtomic(filepath.Join(l.root, reservedDir, "tmp"), metaPath, meta)
	return meta.info(dstKey), true
}

// Delete implements Store.
func (l *Local) Delete(ctx context.Context, key string) error {
	dst, metaPath, err := l.paths(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: delete %s: %w", key, err)
	}
	mu := l.lock(key)
	mu.Lock()
	defer mu.Unlock()
	for _, p := range []string{dst, metaPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob: delete %s: %w", key, err)
		}
	}
	return nil
}

// Ping implements Store: the root must still be a folder.
func (l *Local) Ping(ctx context.Context) error {
	fi, err := os.Stat(l.root)
	if err != nil {
		return fmt.Errorf("blob: ping %s: %w", l.root, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("blob: ping %s: not a directory", l.root)
	}
	return nil
}

// paths validates key and returns the data and sidecar paths.
func (l *Local) paths(key string) (data, meta string, err error) {
	if err := CheckKey(key); err != nil {
		return "", "", err
	}
	rel := filepath.FromSlash(key)
	return filepath.Join(l.root, rel), filepath.Join(l.root, reservedDir, "meta", rel+".json"), nil
}

func (l *Local) lock(key string) *sync.Mutex {
	mu, _ := l.locks.LoadOrStore(key, &sync.Mutex{})
	return mu.(*sync.Mutex)
}

// describe builds the Info of the open data file f, trusting the sidecar only
// when it names exactly this version of the file.
func (l *Local) describe(key string, f *os.File, metaPath string) (Info, error) {
	fi, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("blob: stat %s: %w", key, err)
	}
	if fi.IsDir() {
		return Info{}, fmt.Errorf("blob: %s: %w", key, ErrNotFound)
	}
	var m localMeta
	if b, err := os.ReadFile(metaPath); err == nil && json.Unmarshal(b, &m) == nil &&
		m.Size == fi.Size() && m.ModTimeNano == fi.ModTime().UnixNano() && m.Inode == inode(fi) {
		return m.info(key), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
		return Info{}, fmt.Errorf("blob: hash %s: %w", key, err)
	}
	return Info{
		Key:         key,
		Size:        fi.Size(),
		ETag:        hex.EncodeToString(h.Sum(nil)),
		ContentType: contentTypeFor(key, ""),
		ModTime:     fi.ModTime(),
	}, nil
}

func (m localMeta) info(key string) Info {
	return Info{Key: key, Size: m.Size, ETag: m.ETag, ContentType: m.ContentType, ModTime: time.Unix(0, m.ModTimeNano)}
}

// inode identifies the file version a sidecar belongs to (0 where unknown).
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino) //nolint:unconvert // Ino is uint32 on some platforms.
	}
	return 0
}

// writeFileAtomic writes v as JSON to path through a temporary file in tmpDir.
func writeFileAtomic(tmpDir, path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(tmpDir, "meta-"+hex.EncodeToString(rnd[:]))
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func notFound(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("blob: %s %s: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("blob: %s %s: %w", op, key, err)
}
