package media

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func requireFFmpeg(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatalf("ffmpeg is required for these tests: %v", err)
	}
}

func TestRunAndProbe(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "clip.mp4")
	err := Run(ctx, []string{"-y",
		"-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-ac", "2", "-shortest", out})
	require.NoError(t, err)

	p, err := Probe(ctx, out)
	require.NoError(t, err)
	require.InDelta(t, 1.0, p.Duration, 0.1)
	require.Contains(t, p.FormatName, "mp4")
	v := p.Video()
	require.NotNil(t, v)
	require.Equal(t, "h264", v.CodecName)
	require.Equal(t, 64, v.Width)
	require.Equal(t, 48, v.Height)
	require.Equal(t, "yuv420p", v.PixFmt)
	require.Equal(t, "25/1", v.RFrameRate)
	require.InDelta(t, 25.0, v.FrameRate, 1e-9)
	a := p.Audio()
	require.NotNil(t, a)
	require.Equal(t, "aac", a.CodecName)
	require.Equal(t, 48000, a.SampleRate)
	require.Equal(t, 2, a.Channels)
}

func TestProbeErrors(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	_, err := Probe(context.Background(), filepath.Join(t.TempDir(), "missing.wav"))
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, FFprobeBin, ee.Bin)
	require.Contains(t, ee.Stderr, "No such file")

	_, err = Probe(context.Background(), "")
	require.Error(t, err)
}

func TestRunFailureCarriesStderr(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	err := Run(context.Background(), []string{"-f", "lavfi", "-i", "no_such_filter_xyz", "-f", "null", "-"})
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, FFmpegBin, ee.Bin)
	require.Contains(t, err.Error(), "no_such_filter_xyz")
	var xe interface{ ExitCode() int }
	require.True(t, errors.As(err, &xe), "wraps *exec.ExitError")
}

// TestRunKilledWithContext checks the promise services rely on: a cancelled
// run stops ffmpeg and its whole process group within a second.
func TestRunKilledWithContext(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	cause := errors.New("run superseded")
	ctx, cancel := context.WithCancelCause(context.Background())
	c := FFmpeg(ctx, "-nostdin", "-re", "-f", "lavfi", "-i", "sine=duration=600", "-f", "null", "-")
	require.NoError(t, c.Start())
	pid := c.Pid()
	require.NotZero(t, pid)
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	cancel(cause)
	err := c.Wait()
	require.Less(t, time.Since(start), time.Second)
	require.ErrorIs(t, err, cause)
	require.ErrorIs(t, syscall.Kill(-pid, 0), syscall.ESRCH, "process group must be gone")
}

func TestStartPipe(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	out := filepath.Join(t.TempDir(), "pipe.mp4")
	const w, h, frames = 32, 16, 10
	stdin, wait, err := StartPipe(context.Background(), []string{"-y",
		"-f", "rawvideo", "-pix_fmt", "rgba", "-s", "32x16", "-r", "10", "-i", "pipe:0",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", out})
	require.NoError(t, err)
	frame := make([]byte, w*h*4)
	for i := 0; i < frames; i++ {
		for j := range frame {
			frame[j] = byte(i * 20)
		}
		_, err := stdin.Write(frame)
		require.NoError(t, err)
	}
	require.NoError(t, stdin.Close())
	require.NoError(t, wait())
	require.NoError(t, wait(), "wait is idempotent")

	p, err := Probe(context.Background(), out)
	require.NoError(t, err)
	require.Equal(t, w, p.Video().Width)
	require.Equal(t, h, p.Video().Height)
	require.InDelta(t, 1.0, p.Duration, 0.05)
}

func TestStartPipeCancelled(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ctx, cancel := context.WithCancel(context.Background())
	stdin, wait, err := StartPipe(ctx, []string{
		"-f", "rawvideo", "-pix_fmt", "gray", "-s", "16x16", "-r", "25", "-i", "pipe:0", "-f", "null", "-"})
	require.NoError(t, err)
	time.AfterFunc(100*time.Millisecond, cancel)
	frame := make([]byte, 16*16)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := stdin.Write(frame); err != nil {
			break // killed: the pipe broke
		}
		require.True(t, time.Now().Before(deadline), "writes never failed after cancel")
	}
	_ = stdin.Close()
	require.ErrorIs(t, wait(), context.Canceled)
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	tb := &tailBuffer{max: 10}
	_, _ = io.WriteString(tb, "hello ")
	require.Equal(t, "hello ", tb.String())
	_, _ = io.WriteString(tb, strings.Repeat("x", 5)+"world")
	require.Equal(t, "…xxxxxworld", tb.String())
}

func TestEncoders(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	ctx := context.Background()
	require.True(t, HasEncoder(ctx, "aac"))
	require.True(t, HasEncoder(ctx, "libmp3lame"))
	require.True(t, HasEncoder(ctx, "libx264"))
	require.False(t, HasEncoder(ctx, "no_such_encoder"))

	list := parseEncoders([]byte("Encoders:\n V..... = Video\n ------\n V....D libx264  libx264 H.264\n A..... aac   AAC (Advanced Audio Coding)\n"))
	require.Equal(t, map[string]bool{"libx264": true, "aac": true}, list)
}
