package cdn

import (
	"container/list"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/backbeat/backbeat/pkg/blob"
)

// fetchFunc downloads the object named by key into the local file path and
// describes what it wrote. The cache calls it at most once per key at a time.
type fetchFunc func(ctx context.Context, key, path string) (blob.Info, error)

// diskCache keeps whole objects in files under dir, at most max bytes of them,
// evicting the least recently used. Concurrent misses on one key share a single
// fetch (a flight); every waiter receives its own open file, so a file can be
// unlinked (evicted, purged, or too large to keep) while it is still being served.
type diskCache struct {
	dir   string
	max   int64
	fetch fetchFunc
	// fetchCtx bounds fetches; it is not the requester's context, because a
	// flight outlives the first requester when others have joined it.
	fetchCtx func() (context.Context, context.CancelFunc)

	mu      sync.Mutex
	lru     *list.List               // of *cacheEntry, front = most recently used
	entries map[string]*list.Element // key → element of lru
	size    int64
	flights map[string]*flight
}

// cacheEntry is one object held on disk.
type cacheEntry struct {
	key  string
	path string
	info blob.Info
}

// flight is one fetch in progress; waiters join it instead of fetching again.
type flight struct {
	waiters []*waiter
	// stale is set when the key is purged while the fetch runs: the bytes are
	// handed to the waiters that asked before the purge but never cached.
	stale bool
}

// waiter is one request waiting on a flight.
type waiter struct {
	ch   chan openResult // buffered (1): the fetcher never blocks on it
	gone bool            // the request gave up; do not hand it a file
}

// openResult is an open cached object, or why there is none.
type openResult struct {
	file *os.File
	info blob.Info
	hit  bool
	err  error
}

const (
	cacheFileSuffix = ".obj"
	partFileSuffix  = ".part"
)

// newDiskCache prepares dir and removes files a previous process left there:
// a replica that starts knows nothing of the purges it missed, so it starts empty.
func newDiskCache(dir string, maxBytes int64, fetch fetchFunc, fetchCtx func() (context.Context, context.CancelFunc)) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	old, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read cache dir: %w", err)
	}
	for _, de := range old {
		name := de.Name()
		if de.Type().IsRegular() && (strings.HasSuffix(name, cacheFileSuffix) || strings.HasSuffix(name, partFileSuffix)) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("clear stale cache file: %w", err)
			}
		}
	}
	return &diskCache{
		dir:      dir,
		max:      maxBytes,
		fetch:    fetch,
		fetchCtx: fetchCtx,
		lru:      list.New(),
		entries:  make(map[string]*list.Element),
		flights:  make(map[string]*flight),
	}, nil
}

// open returns an open file holding the object key, from the cache (hit) or
// after fetching it (miss). The caller closes the file.
func (c *diskCache) open(ctx context.Context, key string) (openResult, error) {
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		f, err := os.Open(e.path)
		if err == nil {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return openResult{file: f, info: e.info, hit: true}, nil
		}
		// The file vanished under us (someone cleaned the dir): forget it and refetch.
		c.removeLocked(el)
	}
	w := &waiter{ch: make(chan openResult, 1)}
	fl, ok := c.flights[key]
	if !ok {
		fl = &flight{}
		c.flights[key] = fl
		go c.run(key, fl)
	}
	fl.waiters = append(fl.waiters, w)
	c.mu.Unlock()

	select {
	case res := <-w.ch:
		if res.err != nil {
			return openResult{}, res.err
		}
		return res, nil
	case <-ctx.Done():
		c.mu.Lock()
		w.gone = true
		c.mu.Unlock()
		// The fetcher may have handed us a file just before we left.
		select {
		case res := <-w.ch:
			if res.file != nil {
				_ = res.file.Close()
			}
		default:
		}
		return openResult{}, fmt.Errorf("wait for fetch of %s: %w", key, context.Cause(ctx))
	}
}

// run performs one flight: fetch into a part file, then, under the lock, open
// one file per waiter and decide whether the object stays cached.
func (c *diskCache) run(key string, fl *flight) {
	info, path, err := c.download(key)

	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.flights, key)
	keep := err == nil && !fl.stale && info.Size <= c.max
	for _, w := range fl.waiters {
		if w.gone {
			continue
		}
		if err != nil {
			w.ch <- openResult{err: err}
			continue
		}
		f, oerr := os.Open(path)
		if oerr != nil {
			w.ch <- openResult{err: fmt.Errorf("open fetched %s: %w", key, oerr)}
			continue
		}
		w.ch <- openResult{file: f, info: info}
	}
	if err != nil {
		return
	}
	if !keep {
		// Waiters hold open descriptors; the bytes live until they close them.
		_ = os.Remove(path)
		return
	}
	if el, ok := c.entries[key]; ok {
		c.removeLocked(el)
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, path: path, info: info})
	c.size += info.Size
	c.evictLocked()
}

// download fetches key into a new file of the cache dir and returns its path.
func (c *diskCache) download(key string) (blob.Info, string, error) {
	ctx, cancel := c.fetchCtx()
	defer cancel()
	tmp, err := os.CreateTemp(c.dir, "*"+partFileSuffix)
	if err != nil {
		return blob.Info{}, "", fmt.Errorf("create cache file: %w", err)
	}
	part := tmp.Name()
	_ = tmp.Close()
	info, err := c.fetch(ctx, key, part)
	if err != nil {
		_ = os.Remove(part)
		return blob.Info{}, "", err
	}
	// The size on disk is what we serve and account for, whatever Info says.
	st, err := os.Stat(part)
	if err != nil {
		_ = os.Remove(part)
		return blob.Info{}, "", fmt.Errorf("stat cache file: %w", err)
	}
	info.Size = st.Size()
	final := strings.TrimSuffix(part, partFileSuffix) + cacheFileSuffix
	if err := os.Rename(part, final); err != nil {
		_ = os.Remove(part)
		return blob.Info{}, "", fmt.Errorf("commit cache file: %w", err)
	}
	return info, final, nil
}

// purge drops key from the cache and marks a fetch in flight for it as stale,
// so bytes read before the purge are never cached after it.
func (c *diskCache) purge(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fl, ok := c.flights[key]; ok {
		fl.stale = true
	}
	el, ok := c.entries[key]
	if ok {
		c.removeLocked(el)
	}
	return ok
}

// flush drops everything, for when purges may have been missed.
func (c *diskCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fl := range c.flights {
		fl.stale = true
	}
	for c.lru.Len() > 0 {
		c.removeLocked(c.lru.Back())
	}
}

// stats reports the number of cached objects and their total size.
func (c *diskCache) stats() (objects int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.size
}

func (c *diskCache) evictLocked() {
	for c.size > c.max && c.lru.Len() > 1 {
		c.removeLocked(c.lru.Back())
	}
}

func (c *diskCache) removeLocked(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.entries, e.key)
	c.size -= e.info.Size
	// A file we cannot remove is left for the next start to clear; open
	// descriptors keep serving the bytes either way.
	_ = os.Remove(e.path)
}
