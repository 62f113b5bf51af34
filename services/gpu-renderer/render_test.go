package renderer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// smallJob is a quick render: small frames, low fps, short audio.
func smallJob(t *testing.T, layout string, w, h int) Job {
	t.Helper()
	dir := t.TempDir()
	const dur, fps = 2.0, 12
	return Job{
		Scene: SceneInput{
			Template: builtin(t, "spectrum"), Layout: layout, Width: w, Height: h,
			Analysis: testAnalysis(dur, fps, 32), Cover: testCover(),
			Title: "Night Drive", Artist: "The Testers",
		},
		Encoding:  Encoding{FPS: fps, Preset: "ultrafast", CRF: 30, Concurrency: 2},
		Duration:  dur,
		AudioPath: writeAudio(t, dir, dur),
		OutPath:   filepath.Join(dir, "out.mp4"),
	}
}

func TestRenderFormats(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	for _, tc := range []struct {
		layout string
		w, h   int
	}{
		{template.LayoutSquare, 160, 160},
		{template.LayoutPortrait, 144, 256},
		{template.LayoutLandscape, 256, 144},
	} {
		t.Run(tc.layout, func(t *testing.T) {
			t.Parallel()
			job := smallJob(t, tc.layout, tc.w, tc.h)
			var last int
			res, err := NewRenderer(zaptest.NewLogger(t), nil).Render(context.Background(), job, func(d int) { last = d })
			require.NoError(t, err)
			require.Equal(t, 24, res.Frames)
			require.Equal(t, 24, last)
			require.Equal(t, EncoderX264, res.Encoder)
			p := probeVideo(t, job.OutPath, tc.w, tc.h, 12, job.Duration)
			require.Equal(t, "yuv420p", p.Video().PixFmt)
		})
	}
}

// TestRenderFullSizeSquare renders a real 1080×1080 frame size (short, low fps).
func TestRenderFullSizeSquare(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	job := smallJob(t, template.LayoutSquare, 0, 0)
	job.Duration = 1
	job.AudioPath = writeAudio(t, t.TempDir(), 1)
	job.Scene.Watermark = true
	job.Encoding.FPS = 6
	res, err := NewRenderer(zaptest.NewLogger(t), nil).Render(context.Background(), job, nil)
	require.NoError(t, err)
	require.Equal(t, 6, res.Frames)
	probeVideo(t, job.OutPath, 1080, 1080, 6, 1)
}

func TestRenderHDR(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	job := smallJob(t, template.LayoutLandscape, 256, 144)
	job.Encoding.HDR = true
	_, err := NewRenderer(zaptest.NewLogger(t), nil).Render(context.Background(), job, nil)
	require.NoError(t, err)
	p := probeVideo(t, job.OutPath, 256, 144, 12, job.Duration)
	require.Equal(t, "yuv420p10le", p.Video().PixFmt)
	require.Equal(t, "bt2020", p.Video().ColorPrimaries)

	out, err := media.FFprobe(context.Background(), "-v", "error", "-select_streams", "v:0", "-of", "json",
		"-show_entries", "stream=color_transfer,color_space,profile,bits_per_raw_sample", job.OutPath).Output()
	require.NoError(t, err)
	var pj struct {
		Streams []struct {
			ColorTransfer string `json:"color_transfer"`
			ColorSpace    string `json:"color_space"`
			Profile       string `json:"profile"`
		} `json:"streams"`
	}
	require.NoError(t, json.Unmarshal(out, &pj))
	require.Len(t, pj.Streams, 1)
	require.Equal(t, "smpte2084", pj.Streams[0].ColorTransfer)
	require.Equal(t, "bt2020nc", pj.Streams[0].ColorSpace)
	require.Equal(t, "High 10", pj.Streams[0].Profile)
}

// TestRenderNVENCFallsBack asks for NVENC on a machine without a GPU: the
// render completes on libx264.
func TestRenderNVENCFallsBack(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	job := smallJob(t, template.LayoutSquare, 128, 128)
	job.Encoding.Encoder = EncoderNVENC
	core, logs := observer.New(zap.WarnLevel)
	r := NewRenderer(zap.New(core), nil)
	reg := prometheus.NewRegistry()
	r.metrics, r.pool = bus.NewMetrics(reg), "gpu"
	res, err := r.Render(context.Background(), job, nil)
	require.NoError(t, err)
	if res.Encoder == EncoderNVENC {
		t.Log("this machine has a working NVENC")
	} else {
		require.Equal(t, EncoderX264, res.Encoder)
		require.Equal(t, 1.0, testenv.Counter(t, reg, "backbeat_nvenc_fallbacks_total", "gpu"), "operators see the fallback")
		// The fallback is logged with ffmpeg's reason.
		warn := logs.FilterMessage("nvenc unavailable, falling back to libx264").All()
		require.Len(t, warn, 1)
		require.NotEmpty(t, warn[0].ContextMap()["reason"])
	}
	probeVideo(t, job.OutPath, 128, 128, 12, job.Duration)
}

// TestRenderCancelKillsFFmpeg cancels a render mid-way, with one compose
// worker (frames composed and written inline) and with two (a pipeline of
// goroutines): Render returns the cause within a second and ffmpeg is gone.
func TestRenderCancelKillsFFmpeg(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			t.Parallel()
			job := smallJob(t, template.LayoutSquare, 128, 128)
			job.Encoding.Concurrency = workers
			reached := make(chan struct{})
			r := NewRenderer(zaptest.NewLogger(t), blockAtFrame(5, reached))
			pids := make(chan int, 1)
			r.ffmpegStarted = func(pid int) { pids <- pid }
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := r.Render(ctx, job, nil)
				done <- err
			}()
			pid := <-pids
			<-reached
			cancelled := time.Now()
			errStop := errors.New("run superseded")
			cancel(errStop)
			select {
			case err := <-done:
				require.Less(t, time.Since(cancelled), time.Second)
				require.ErrorIs(t, err, errStop)
			case <-time.After(3 * time.Second):
				t.Fatal("Render did not return after cancel")
			}
			requireGone(t, pid)
		})
	}
}

// TestRenderFrameFailure fails one frame, with one and with two workers:
// ffmpeg is killed, the error surfaces.
func TestRenderFrameFailure(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			t.Parallel()
			job := smallJob(t, template.LayoutSquare, 128, 128)
			job.Encoding.Concurrency = workers
			boom := errors.New("boom")
			r := NewRenderer(zaptest.NewLogger(t), func(_ context.Context, n int) error {
				if n == 7 {
					return boom
				}
				return nil
			})
			var last int
			_, err := r.Render(context.Background(), job, func(d int) { last = d })
			require.ErrorIs(t, err, boom)
			require.False(t, IsInvalid(err))
			require.Less(t, last, 8, "no frame after the failed one was written")
		})
	}
}

func TestRenderInvalidInput(t *testing.T) {
	t.Parallel()
	job := Job{Scene: SceneInput{Template: builtin(t, "spectrum"), Layout: "circle", Analysis: testAnalysis(1, 10, 8)},
		Encoding: Encoding{FPS: 10}, Duration: 1, AudioPath: "a.m4a", OutPath: "o.mp4"}
	_, err := NewRenderer(nil, nil).Render(context.Background(), job, nil)
	require.ErrorIs(t, err, template.ErrUnknownFormat)
	require.True(t, IsInvalid(err))

	job.Scene.Layout = template.LayoutSquare
	job.Encoding.Preset = "ludicrous"
	_, err = NewRenderer(nil, nil).Render(context.Background(), job, nil)
	require.True(t, IsInvalid(err))

	job.Encoding.Preset = ""
	job.Scene.Settings = map[string]string{template.SettingBarColor: "not-a-colour"}
	_, err = NewRenderer(nil, nil).Render(context.Background(), job, nil)
	require.True(t, IsInvalid(err))
}
