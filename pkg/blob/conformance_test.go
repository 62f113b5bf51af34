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
