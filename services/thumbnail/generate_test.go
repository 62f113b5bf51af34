package thumbnail

import (
	"context"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/pkg/testenv"
)

// writeClip encodes a short test-pattern MP4 of the given size: 5 frames,
// ultrafast, so it costs little on a shared CI machine.
func writeClip(t *testing.T, dir string, w, h int) string {
	t.Helper()
	testenv.RequireFFmpeg(t)
	path := filepath.Join(dir, fmt.Sprintf("clip-%dx%d.mp4", w, h))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := media.Run(ctx, []string{"-y", "-loglevel", "error",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=10:duration=0.5", w, h),
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", path})
	require.NoError(t, err)
	return path
}

// jpegSize decodes a JPEG's header.
func jpegSize(t *testing.T, path string) (int, int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cfg, err := jpeg.DecodeConfig(f)
	require.NoError(t, err)
	return cfg.Width, cfg.Height
}

func TestGenerateKeepsVideoSizeAndCropsSquare(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		w, h int
	}{
		{"landscape", 1920, 1080},
		{"portrait", 1080, 1920},
		{"square", 320, 320},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			clip := writeClip(t, dir, tc.w, tc.h)
			full, square := filepath.Join(dir, "full.jpg"), filepath.Join(dir, "square.jpg")

			res, err := Generate(context.Background(), clip, full, square, DefaultFrames)
			require.NoError(t, err)
			side := min(tc.w, tc.h)
			require.Equal(t, Size{Width: tc.w, Height: tc.h}, res.Video)
			require.Equal(t, side, res.Square)

			w, h := jpegSize(t, full)
			require.Equal(t, tc.w, w)
			require.Equal(t, tc.h, h)
			w, h = jpegSize(t, square)
			require.Equal(t, side, w)
			require.Equal(t, side, h)
		})
	}
}

func TestGenerateRejectsUndecodableVideo(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.mp4")
	require.NoError(t, os.WriteFile(bad, []byte("this is not an mp4 at all"), 0o600))
	_, err := Generate(context.Background(), bad, filepath.Join(dir, "a.jpg"), filepath.Join(dir, "b.jpg"), 10)
	require.Error(t, err)
	require.True(t, bus.IsPermanent(err), "undecodable video must be permanent: %v", err)

	// An audio-only file decodes but has no picture.
	wav := testenv.Tone(t, dir, 0.2)
	_, err = Generate(context.Background(), wav, filepath.Join(dir, "a.jpg"), filepath.Join(dir, "b.jpg"), 10)
	require.Error(t, err)
	require.True(t, bus.IsPermanent(err))
}

func TestGenerateStopsWithContext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clip := writeClip(t, dir, 64, 64)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Generate(ctx, clip, filepath.Join(dir, "a.jpg"), filepath.Join(dir, "b.jpg"), 10)
	require.Error(t, err)
	require.False(t, bus.IsPermanent(err), "a cancelled job is not bad input")
}
