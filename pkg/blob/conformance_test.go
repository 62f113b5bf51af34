package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
)

// testStore is the one conformance suite every Store implementation passes.
// newStore returns an empty store private to the calling (sub)test.
func testStore(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		require.NoError(t, s.Ping(ctx))

		data := []byte(`{"bpm":120}`)
		put, err := s.Put(ctx, "analysis/v1.json", bytes.NewReader(data), int64(len(data)), "")
		require.NoError(t, err)
		require.Equal(t, "analysis/v1.json", put.Key)
		require.EqualValues(t, len(data), put.Size)
		require.NotEmpty(t, put.ETag)
		require.Equal(t, "application/json", put.ContentType)

		st, err := s.Stat(ctx, "analysis/v1.json")
		require.NoError(t, err)
		require.Equal(t, put.ETag, st.ETag)
		require.EqualValues(t, len(data), st.Size)
		require.Equal(t, "application/json", st.ContentType)
		require.WithinDuration(t, time.Now(), st.ModTime, time.Hour)

		rc, info, err := s.Get(ctx, "analysis/v1.json")
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, rc.Close())
		require.NoError(t, err)
		require.Equal(t, data, got)
		require.Equal(t, put.ETag, info.ETag)

		require.NoError(t, s.Delete(ctx, "analysis/v1.json"))
		_, err = s.Stat(ctx, "analysis/v1.json")
		require.ErrorIs(t, err, blob.ErrNotFound)
		require.NoError(t, s.Delete(ctx, "analysis/v1.json"), "deleting a missing key is not an error")
	})

	t.Run("ExplicitContentType", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		_, err := s.Put(ctx, "videos/v1.mp4", bytes.NewReader([]byte("x")), 1, "video/x-test")
		require.NoError(t, err)
		st, err := s.Stat(ctx, "videos/v1.mp4")
		require.NoError(t, err)
		require.Equal(t, "video/x-test", st.ContentType)
	})

	t.Run("OverwriteChangesETag", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		a, err := s.Put(ctx, "thumbnails/v1.jpg", bytes.NewReader([]byte("first")), 5, "image/jpeg")
		require.NoError(t, err)
		b, err := s.Put(ctx, "thumbnails/v1.jpg", bytes.NewReader([]byte("second")), 6, "image/jpeg")
		require.NoError(t, err)
		require.NotEqual(t, a.ETag, b.ETag)
		st, err := s.Stat(ctx, "thumbnails/v1.jpg")
		require.NoError(t, err)
		require.Equal(t, b.ETag, st.ETag)
		require.EqualValues(t, 6, st.Size)
		c, err := s.Put(ctx, "thumbnails/v1.jpg", bytes.NewReader([]byte("first")), 5, "image/jpeg")
		require.NoError(t, err)
		require.Equal(t, a.ETag, c.ETag, "same bytes, same ETag")
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		_, err := s.Stat(ctx, "videos/missing.mp4")
		require.ErrorIs(t, err, blob.ErrNotFound)
		_, _, err = s.Get(ctx, "videos/missing.mp4")
		require.ErrorIs(t, err, blob.ErrNotFound)
		dst := filepath.Join(t.TempDir(), "out.mp4")
		_, err = s.GetFile(ctx, "videos/missing.mp4", dst)
		require.ErrorIs(t, err, blob.ErrNotFound)
		require.NoFileExists(t, dst)
	})

	t.Run("BadKeysRefused", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		for _, key := range []string{"../x", "/abs", "a//b", "", "a/../b", "a\\b", "a\x00b", "./a", "a/"} {
			_, err := s.Put(ctx, key, bytes.NewReader([]byte("x")), 1, "")
			require.Error(t, err, "put %q", key)
			_, err = s.Stat(ctx, key)
			require.Error(t, err, "stat %q", key)
			require.NotErrorIs(t, err, blob.ErrNotFound, "stat %q", key)
			_, _, err = s.Get(ctx, key)
			require.Error(t, err, "get %q", key)
			require.Error(t, s.Delete(ctx, key), "delete %q", key)
		}
	})

	t.Run("Files", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		dir := t.TempDir()
		src := filepath.Join(dir, "in.wav")
		data := bytes.Repeat([]byte("RIFF"), 1000)
		require.NoError(t, os.WriteFile(src, data, 0o644))
		put, err := s.PutFile(ctx, "audio/v1.wav", src, "")
		require.NoError(t, err)
		require.Equal(t, "audio/wav", put.ContentType)

		dst := filepath.Join(dir, "nested", "out.wav")
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		require.NoError(t, os.WriteFile(dst, []byte("old and longer content that must be truncated away"), 0o644))
		got, err := s.GetFile(ctx, "audio/v1.wav", dst)
		require.NoError(t, err)
		require.Equal(t, put.ETag, got.ETag)
		b, err := os.ReadFile(dst)
		require.NoError(t, err)
		require.Equal(t, data, b)
		entries, err := os.ReadDir(filepath.Dir(dst))
		require.NoError(t, err)
		require.Len(t, entries, 1, "no partial download left behind")
	})

	t.Run("ConcurrentPutsSameKey", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		const writers, size = 6, 256 << 10
		etags := make(map[string]byte)
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		readErr := make(chan error, 1)
		go func() { readErr <- readWhole(ctx, s, "videos/race.mp4", size, stop) }()
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fill := byte('a' + i)
				for range 3 {
					info, err := s.Put(ctx, "videos/race.mp4", bytes.NewReader(bytes.Repeat([]byte{fill}, size)), size, "video/mp4")
					if !assertNoError(t, err) {
						return
					}
					mu.Lock()
					etags[info.ETag] = fill
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(stop)
		require.NoError(t, <-readErr)
		require.Len(t, etags, writers, "distinct contents, distinct ETags")

		rc, info, err := s.Get(ctx, "videos/race.mp4")
		require.NoError(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.Len(t, b, size)
		require.Equal(t, bytes.Repeat(b[:1], size), b, "object is one writer's whole content")
		require.Equal(t, etags[info.ETag], b[0], "ETag belongs to the content")
	})

	t.Run("LargeStreamed", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		const size = 9 << 20
		for _, declared := range []int64{size, -1} {
			key := fmt.Sprintf("videos/large%d.mp4", declared+1)
			want := sha256.New()
			src := io.TeeReader(io.LimitReader(newPRNG(uint64(declared+2)), size), want)
			put, err := s.Put(ctx, key, src, declared, "video/mp4")
			require.NoError(t, err, "declared size %d", declared)
			require.EqualValues(t, size, put.Size)

			rc, info, err := s.Get(ctx, key)
			require.NoError(t, err)
			require.EqualValues(t, size, info.Size)
			got := sha256.New()
			n, err := io.Copy(got, rc)
			require.NoError(t, rc.Close())
			require.NoError(t, err)
			require.EqualValues(t, size, n)
			require.Equal(t, want.Sum(nil), got.Sum(nil))
		}
	})

	t.Run("Copy", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		run := ids.NewRunID()
		src, dst := keys.RunKey("v1", run, keys.ObjectVideo), keys.PublicKey("v1", run, keys.ObjectVideo)
		data := []byte("the bytes of a finished render")
		// A type the extension does not imply: Copy must carry it, not guess it.
		put, err := s.Put(ctx, src, bytes.NewReader(data), int64(len(data)), "video/x-test")
		require.NoError(t, err)

		cp, err := s.Copy(ctx, src, dst)
		require.NoError(t, err)
		require.Equal(t, dst, cp.Key)
		require.EqualValues(t, len(data), cp.Size)
		require.Equal(t, "video/x-test", cp.ContentType)
		require.Equal(t, put.ETag, cp.ETag, "same bytes, same ETag")
		st, err := s.Stat(ctx, dst)
		require.NoError(t, err)
		require.Equal(t, cp.ETag, st.ETag)
		require.EqualValues(t, len(data), st.Size)
		require.Equal(t, "video/x-test", st.ContentType)
		require.Equal(t, data, readAll(t, s, dst))
		require.Equal(t, data, readAll(t, s, src), "the source stays")

		again, err := s.Copy(ctx, src, dst)
		require.NoError(t, err, "copying onto an identical destination succeeds")
		require.Equal(t, cp.ETag, again.ETag)
		self, err := s.Copy(ctx, src, src)
		require.NoError(t, err, "copying a key onto itself succeeds")
		require.Equal(t, put.ETag, self.ETag)
		require.Equal(t, data, readAll(t, s, src))

		// An existing, different destination is replaced, as by Put.
		other := keys.RunKey("v1", run, keys.ObjectThumbnail)
		_, err = s.Put(ctx, other, bytes.NewReader([]byte("older")), 5, "image/jpeg")
		require.NoError(t, err)
		_, err = s.Copy(ctx, src, other)
		require.NoError(t, err)
		require.Equal(t, data, readAll(t, s, other))
		st, err = s.Stat(ctx, other)
		require.NoError(t, err)
		require.Equal(t, "video/x-test", st.ContentType)
	})

	t.Run("CopyMissingOrRefused", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		run := ids.NewRunID()
		missing, dst := keys.RunKey("v1", run, keys.ObjectVideo), keys.PublicKey("v1", run, keys.ObjectVideo)
		_, err := s.Copy(ctx, missing, dst)
		require.ErrorIs(t, err, blob.ErrNotFound)
		_, err = s.Stat(ctx, dst)
		require.ErrorIs(t, err, blob.ErrNotFound, "a failed copy leaves nothing behind")

		_, err = s.Put(ctx, missing, bytes.NewReader([]byte("x")), 1, "")
		require.NoError(t, err)
		for _, bad := range []string{"../x", "/abs", "a//b", "", "a\\b", ".blob/meta/x"} {
			_, err = s.Copy(ctx, missing, bad)
			require.Error(t, err, "copy to %q", bad)
			require.NotErrorIs(t, err, blob.ErrNotFound, "copy to %q", bad)
			_, err = s.Copy(ctx, bad, dst)
			require.Error(t, err, "copy from %q", bad)
			require.NotErrorIs(t, err, blob.ErrNotFound, "copy from %q", bad)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_, err = s.Copy(cancelled, missing, dst)
		require.Error(t, err)
		_, err = s.Stat(ctx, dst)
		require.ErrorIs(t, err, blob.ErrNotFound, "a cancelled copy leaves nothing behind")
	})

	t.Run("CopyIsWholeOrNothing", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		const size = 2 << 20
		run := ids.NewRunID()
		srcs := []string{keys.RunKey("v1", run, keys.ObjectVideo), keys.RunKey("v1", run, keys.ObjectAudio)}
		for i, k := range srcs {
			_, err := s.Put(ctx, k, bytes.NewReader(bytes.Repeat([]byte{byte('a' + i)}, size)), size, "video/mp4")
			require.NoError(t, err)
		}
		dst := keys.PublicKey("v1", run, keys.ObjectVideo)
		stop := make(chan struct{})
		readErr := make(chan error, 1)
		go func() { readErr <- readWhole(ctx, s, dst, size, stop) }()
		for i := range 8 {
			_, err := s.Copy(ctx, srcs[i%2], dst)
			require.NoError(t, err)
		}
		close(stop)
		require.NoError(t, <-readErr)
		b := readAll(t, s, dst)
		require.Equal(t, bytes.Repeat([]byte{'b'}, size), b, "the last copy wins, whole")
	})

	t.Run("SizeMismatchRejected", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		_, err := s.Put(ctx, "audio/short.m4a", bytes.NewReader([]byte("abc")), 10, "")
		require.Error(t, err)
		_, err = s.Stat(ctx, "audio/short.m4a")
		require.ErrorIs(t, err, blob.ErrNotFound, "a short upload leaves nothing behind")
	})
}

// readWhole keeps reading key until stop closes, failing if it ever sees a
// missing-but-was-there, short or mixed object.
func readWhole(ctx context.Context, s blob.Store, key string, size int, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		rc, _, err := s.Get(ctx, key)
		if errors.Is(err, blob.ErrNotFound) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			return err
		}
		if len(b) != size || !bytes.Equal(b, bytes.Repeat(b[:1], size)) {
			return fmt.Errorf("read a torn object: %d bytes", len(b))
		}
	}
}

// readAll returns the bytes stored under key.
func readAll(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	rc, _, err := s.Get(context.Background(), key)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

// assertNoError reports err from a goroutine without calling t.FailNow there.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

// prng is a deterministic, allocation-free source of incompressible bytes.
type prng struct{ r *rand.ChaCha8 }

func newPRNG(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return prng{r: rand.NewChaCha8(s)}
}

func (p prng) Read(b []byte) (int, error) { return p.r.Read(b) }
