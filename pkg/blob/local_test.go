package blob_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/blob"
)

func TestLocalConformance(t *testing.T) {
	t.Parallel()
	testStore(t, func(t *testing.T) blob.Store {
		s, err := blob.NewLocal(t.TempDir())
		require.NoError(t, err)
		return s
	})
}

func TestLocalLayoutIsBrowsable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := blob.NewLocal(dir)
	require.NoError(t, err)
	_, err = s.Put(context.Background(), "videos/v1.mp4", bytes.NewReader([]byte("mp4")), 3, "")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, "videos", "v1.mp4"))
	require.NoError(t, err)
	require.Equal(t, "mp4", string(b))

	_, err = s.Put(context.Background(), ".blob/meta/x", bytes.NewReader(nil), 0, "")
	require.Error(t, err, "the reserved folder is not addressable")
	tmp, err := os.ReadDir(filepath.Join(dir, ".blob", "tmp"))
	require.NoError(t, err)
	require.Empty(t, tmp, "no temporary files left behind")
}

func TestLocalStaleSidecarIgnored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := blob.NewLocal(dir)
	require.NoError(t, err)
	ctx := context.Background()
	put, err := s.Put(ctx, "audio/v1.mp3", bytes.NewReader([]byte("one")), 3, "")
	require.NoError(t, err)
	// Someone replaces the bytes behind the store's back (another process, a crash).
	require.NoError(t, os.WriteFile(filepath.Join(dir, "audio", "v1.mp3.new"), []byte("two!"), 0o644))
	require.NoError(t, os.Rename(filepath.Join(dir, "audio", "v1.mp3.new"), filepath.Join(dir, "audio", "v1.mp3")))
	st, err := s.Stat(ctx, "audio/v1.mp3")
	require.NoError(t, err)
	require.NotEqual(t, put.ETag, st.ETag)
	require.EqualValues(t, 4, st.Size)
	require.Equal(t, "audio/mpeg", st.ContentType)
}

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{dir, "file://" + dir} {
		s, err := blob.Open(ctx, u)
		require.NoError(t, err, u)
		require.IsType(t, &blob.Local{}, s)
		require.Equal(t, dir, s.(*blob.Local).Dir())
	}
	for _, u := range []string{"", "ftp://x/y", "file://host/dir", "s3://k:s@127.0.0.1:1/", "s3://k:s@127.0.0.1:1/a/b", "s3://k:s@127.0.0.1:1/b?secure=maybe"} {
		_, err := blob.Open(ctx, u)
		require.Error(t, err, u)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := blob.Open(short, "s3://key:topsecret@127.0.0.1:1/bucket?secure=false")
	require.Error(t, err, "nothing listens on port 1")
	require.NotContains(t, err.Error(), "topsecret")
}

// A local copy is a hard link to the source's file, not a second copy of its
// bytes; a later Put of either key leaves the other as it was.
func TestLocalCopyLinksAndStaysApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := blob.NewLocal(dir)
	require.NoError(t, err)
	_, err = s.Put(ctx, "runs/v/r/video.mp4", bytes.NewReader([]byte("first")), 5, "video/mp4")
	require.NoError(t, err)
	src, err := s.Stat(ctx, "runs/v/r/video.mp4")
	require.NoError(t, err)
	dst, err := s.Copy(ctx, "runs/v/r/video.mp4", "videos/v/r/video.mp4")
	require.NoError(t, err)
	require.Equal(t, src.ETag, dst.ETag)
	require.Equal(t, "video/mp4", dst.ContentType)
	a, err := os.Stat(filepath.Join(dir, "runs", "v", "r", "video.mp4"))
	require.NoError(t, err)
	b, err := os.Stat(filepath.Join(dir, "videos", "v", "r", "video.mp4"))
	require.NoError(t, err)
	require.True(t, os.SameFile(a, b), "the copy shares the source's file")

	_, err = s.Put(ctx, "runs/v/r/video.mp4", bytes.NewReader([]byte("second")), 6, "video/mp4")
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dir, "videos", "v", "r", "video.mp4"))
	require.NoError(t, err)
	require.Equal(t, "first", string(got), "a Put of the source does not reach the copy")
	st, err := s.Stat(ctx, "videos/v/r/video.mp4")
	require.NoError(t, err)
	require.Equal(t, src.ETag, st.ETag)
	tmp, err := os.ReadDir(filepath.Join(dir, ".blob", "tmp"))
	require.NoError(t, err)
	require.Empty(t, tmp, "no temporary links left behind")
}
