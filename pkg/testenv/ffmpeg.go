package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/backbeat/backbeat/pkg/media"
)

// RequireFFmpeg fails the test (never skips it) when ffmpeg or ffprobe is not
// on PATH: media tests that silently skip would hide a broken CI image.
func RequireFFmpeg(t testing.TB) {
	t.Helper()
	if err := media.Available(); err != nil {
		t.Fatalf("testenv: ffmpeg is required (apt-get install ffmpeg): %v", err)
	}
}

// ToneBPM is the tempo of the clicks in Tone's track: a click every 0.5 s.
const ToneBPM = 120

// Tone writes a short stereo 48 kHz WAV to dir and returns its path: a quiet
// 220 Hz sine with a loud 30 ms 2 kHz click every 0.5 s (120 BPM), starting at
// t=0. It is long enough to crop, has clear beats, and costs milliseconds.
func Tone(t testing.TB, dir string, seconds float64) string {
	t.Helper()
	RequireFFmpeg(t)
	path := filepath.Join(dir, fmt.Sprintf("tone-%gs.wav", seconds))
	expr := "0.2*sin(2*PI*220*t)+if(lt(mod(t\\,0.5)\\,0.03)\\,0.7*sin(2*PI*2000*t)*(1-mod(t\\,0.5)/0.03)\\,0)"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := media.Run(ctx, []string{"-y", "-loglevel", "error",
		"-f", "lavfi", "-i", fmt.Sprintf("aevalsrc=exprs=%s:channel_layout=stereo:sample_rate=48000:duration=%g", expr, seconds),
		"-c:a", "pcm_s16le", path})
	if err != nil {
		t.Fatalf("testenv: write tone: %v", err)
	}
	return path
}
