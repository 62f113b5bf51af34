package renderer

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/analysis"
	"github.com/backbeat/backbeat/pkg/media"
)

// testAnalysis builds a deterministic analysis with moving bands and a beat
// every half second, like the audio service would write for a rhythmic track.
func testAnalysis(duration float64, fps, bands int) *analysis.Analysis {
	n := int(math.Ceil(duration * float64(fps)))
	a := &analysis.Analysis{Version: analysis.Version, FPS: fps, Duration: duration, Bands: bands}
	beatEvery := max(1, fps/2)
	for i := 0; i < n; i++ {
		t := float64(i) / float64(fps)
		f := analysis.Frame{Spectrum: make([]float32, bands)}
		for b := range f.Spectrum {
			v := 0.5 + 0.4*math.Sin(t*3+float64(b)*0.4)*math.Cos(t*1.3+float64(b)*0.13)
			f.Spectrum[b] = float32(v * (1 - 0.5*float64(b)/float64(bands)))
		}
		since := i % beatEvery
		f.Beat = since == 0
		f.BeatPulse = float32(math.Pow(0.8, float64(since)))
		f.Loudness = float32(0.5 + 0.3*math.Sin(t))
		a.Frames = append(a.Frames, f)
	}
	return a
}

// testCover is a colourful 300×200 image (not square, to exercise cropping).
func testCover() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 300, 200))
	for y := 0; y < 200; y++ {
		for x := 0; x < 300; x++ {
			img.Set(x, y, color.RGBA{R: uint8(x * 255 / 300), G: uint8(y * 255 / 200), B: uint8((x + y) % 256), A: 255})
		}
	}
	return img
}

// writeCoverPNG stores testCover as a PNG in dir.
func writeCoverPNG(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "cover.png")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, testCover()))
	require.NoError(t, f.Close())
	return p
}

// writeAudio makes an AAC-in-MP4 sine of duration seconds with ffmpeg, like
// the audio service's cropped track.
func writeAudio(t testing.TB, dir string, duration float64) string {
	t.Helper()
	p := filepath.Join(dir, "audio.m4a")
	err := media.Run(context.Background(), []string{"-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=" + strconv.FormatFloat(duration, 'f', 3, 64),
		"-c:a", "aac", "-b:a", "96k", p})
	require.NoError(t, err)
	return p
}

// requireFFmpeg fails (never skips) when ffmpeg is missing: these tests need it.
func requireFFmpeg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is required on PATH for renderer tests")
	}
}

// probeVideo checks an MP4 has H.264 and AAC streams of the given size and a
// duration within one frame of want; it returns the probe for further checks.
func probeVideo(t testing.TB, path string, w, h, fps int, want float64) *media.ProbeResult {
	t.Helper()
	p, err := media.Probe(context.Background(), path)
	require.NoError(t, err)
	v := p.Video()
	require.NotNil(t, v, "video stream")
	a := p.Audio()
	require.NotNil(t, a, "audio stream")
	require.Equal(t, "h264", v.CodecName)
	require.Equal(t, "aac", a.CodecName)
	require.Equal(t, w, v.Width)
	require.Equal(t, h, v.Height)
	require.InDelta(t, float64(fps), v.FrameRate, 0.01)
	frame := 1 / float64(fps)
	require.InDelta(t, want, v.Duration, frame+1e-6, "video stream duration")
	require.InDelta(t, want, p.Duration, frame+0.05, "container duration")
	return p
}

// requireGone fails when a process with pid still exists (ffmpeg left behind).
func requireGone(t testing.TB, pid int) {
	t.Helper()
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "process %d (ffmpeg) still running", pid)
}

// blockAtFrame is a frame hook that, at frame n, closes reached and holds
// the render there until it is cancelled.
func blockAtFrame(n int, reached chan struct{}) func(context.Context, int) error {
	return func(ctx context.Context, frame int) error {
		if frame == n {
			close(reached)
			<-ctx.Done()
			return context.Cause(ctx)
		}
		return nil
	}
}
