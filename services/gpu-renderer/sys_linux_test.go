//go:build linux

package renderer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// TestSpliceSinkReusesBuffersOnlyAfterTheyAreRead splices frames into a
// 1 MiB pipe whose reader is slow, and scribbles over every buffer the sink
// frees, as the renderer's next frame would. If the sink freed a buffer
// while the pipe still referred to its pages, the reader would see the
// scribble instead of the frame.
func TestSpliceSinkReusesBuffersOnlyAfterTheyAreRead(t *testing.T) {
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = pr.Close() })
	_, err = setPipeSize(pw, pipeSize)
	require.NoError(t, err)
	const frameBytes, frames = 1555200, 12 // 960×1080 yuv420p, bigger than the pipe
	sink := newFrameSink(pw, frameBytes)
	require.IsType(t, &spliceSink{}, sink, "a pipe no larger than a frame gets vmsplice")

	want := make([][]byte, frames)
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(slowReader{pr})
		got <- all
	}()
	bufs := []*yuvFrame{{b: sink.buffer(frameBytes)}, {b: sink.buffer(frameBytes)}, {b: sink.buffer(frameBytes)}}
	free := append([]*yuvFrame(nil), bufs...)
	freed := 0
	for n := range frames {
		require.NotEmpty(t, free, "frame %d: the sink holds every buffer back", n)
		f := free[0]
		free = free[1:]
		for i := range f.b {
			f.b[i] = byte(n*31 + i%251)
		}
		want[n] = append([]byte(nil), f.b...)
		require.NoError(t, sink.send(f, func(b *yuvFrame) {
			for i := range b.b {
				b.b[i] = 0xEE // what a reused buffer would hold
			}
			freed++
			free = append(free, b)
		}))
	}
	require.NoError(t, pw.Close())
	all := <-got
	require.Len(t, all, frames*frameBytes)
	for n := range frames {
		require.True(t, bytes.Equal(want[n], all[n*frameBytes:(n+1)*frameBytes]), "frame %d read back changed", n)
	}
	require.GreaterOrEqual(t, freed, frames-1, "all but the last frame are freed once later ones are in the pipe")
	sink.release()
}

// TestSpliceSinkBuffersAreHugePageAlignedAndReleased: the sink's buffers
// are zeroed, start on a 2 MiB boundary (where the kernel can back them
// with huge pages), do not overlap, and are unmapped by release.
func TestSpliceSinkBuffersAreHugePageAlignedAndReleased(t *testing.T) {
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = pr.Close(); _ = pw.Close() })
	_, err = setPipeSize(pw, pipeSize)
	require.NoError(t, err)
	const frameBytes = 1749600 // 1080×1080 yuv420p
	sink := newFrameSink(pw, frameBytes)
	require.IsType(t, &spliceSink{}, sink)
	a, b := sink.buffer(frameBytes), sink.buffer(frameBytes)
	require.Len(t, a, frameBytes)
	require.Zero(t, uintptr(unsafe.Pointer(&a[0]))%hugePage)
	require.Zero(t, uintptr(unsafe.Pointer(&b[0]))%hugePage)
	require.Equal(t, -1, bytes.IndexFunc(a, func(r rune) bool { return r != 0 }), "fresh buffers are zeroed")
	a[0], a[frameBytes-1], b[0] = 1, 2, 3
	require.Equal(t, byte(1), a[0], "buffers do not overlap")
	mapped := func(p *byte) bool {
		maps, err := os.ReadFile("/proc/self/maps")
		require.NoError(t, err)
		addr := uintptr(unsafe.Pointer(p))
		for _, line := range strings.Split(string(maps), "\n") {
			var lo, hi uintptr
			if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil && addr >= lo && addr < hi {
				return true
			}
		}
		return false
	}
	pa := &a[0]
	require.True(t, mapped(pa))
	sink.release()
	require.False(t, mapped(pa), "release unmaps the buffers")
}

// slowReader reads in small pieces with pauses, so the writer often finds
// the pipe full.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(200 * time.Microsecond)
	return s.r.Read(p[:min(len(p), 300_000)])
}

// TestRenderPipesExactlyTheRawFrames renders full-size frames (so the pipe
// uses vmsplice) and checks that the video is exactly what encoding
// RenderRaw's bytes with the same ffmpeg arguments gives: x264 is
// deterministic, so any frame the transport lost, reordered or let a reused
// buffer overwrite would change the decoded picture.
func TestRenderPipesExactlyTheRawFrames(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	dir := t.TempDir()
	const dur, fps = 1.0, 12
	job := Job{
		Scene: SceneInput{Template: builtin(t, "halo"), Layout: template.LayoutSquare,
			Analysis: testAnalysis(dur, fps, 32), Cover: testCover(), Title: "Night Drive", Artist: "The Testers"},
		Encoding:  Encoding{FPS: fps, Preset: "ultrafast", CRF: 30, Concurrency: 2},
		Duration:  dur,
		AudioPath: writeAudio(t, dir, dur),
		OutPath:   filepath.Join(dir, "full.mp4"),
	}
	r := NewRenderer(zaptest.NewLogger(t), nil)
	rawPath := filepath.Join(dir, "frames.yuv")
	f, err := os.Create(rawPath)
	require.NoError(t, err)
	_, err = r.RenderRaw(context.Background(), job, 0, 0, f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	res, err := r.Render(context.Background(), job, nil)
	require.NoError(t, err)
	require.Equal(t, 12, res.Frames)

	encoded := filepath.Join(dir, "encoded.mp4")
	args, err := FFmpegArgs(job.Encoding, 1080, 1080, rawPath, job.AudioPath, encoded)
	require.NoError(t, err)
	require.NoError(t, media.Run(context.Background(), args))
	md5 := func(path string) string {
		out, err := exec.Command("ffmpeg", "-loglevel", "error", "-i", path, "-map", "0:v", "-f", "framemd5", "pipe:1").Output()
		require.NoError(t, err)
		return string(out)
	}
	want, got := md5(encoded), md5(job.OutPath)
	require.Equal(t, 12, strings.Count(want, "\n0,"), "one checksum per frame")
	require.Equal(t, want, got)
}

// TestComposeWorkersYieldToTheEncoder: during Render the compose workers'
// threads run at composeNice, and the thread that called Render keeps its
// priority; RenderRaw (no encoder to yield to) does not lower it.
func TestComposeWorkersYieldToTheEncoder(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	job := smallJob(t, template.LayoutSquare, 64, 64)
	var mu sync.Mutex
	seen := map[int]int{} // thread id → its nice value
	hook := func(_ context.Context, _ int) error {
		tid := unix.Gettid()
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			return err
		}
		mu.Lock()
		seen[tid] = 20 - prio // the raw syscall returns 20 - nice
		mu.Unlock()
		return nil
	}
	for _, workers := range []int{1, 2} { // inline, and a pipeline of goroutines
		job.Encoding.Concurrency = workers
		clear(seen)
		_, err := NewRenderer(zaptest.NewLogger(t), hook).Render(context.Background(), job, nil)
		require.NoError(t, err)
		require.NotEmpty(t, seen)
		for tid, nice := range seen {
			require.Equal(t, composeNice, nice, "%d workers: compose thread %d", workers, tid)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	own, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	require.NoError(t, err)
	require.Equal(t, 0, 20-own, "the caller's thread keeps its priority")

	clear(seen)
	_, err = NewRenderer(zaptest.NewLogger(t), hook).RenderRaw(context.Background(), job, 0, 3, io.Discard)
	require.NoError(t, err)
	for tid, nice := range seen {
		require.Equal(t, 0, nice, "RenderRaw thread %d", tid)
	}
}

// TestDefaultComposeWorkers: an x264 render that sets no concurrency composes
// on DefaultComposeWorkers threads (one on this 2-core machine), each locked
// and lowered for the whole render.
func TestDefaultComposeWorkers(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	job := smallJob(t, template.LayoutSquare, 64, 64)
	job.Encoding.Concurrency = 0
	var mu sync.Mutex
	threads := map[int]bool{}
	_, err := NewRenderer(zaptest.NewLogger(t), func(context.Context, int) error {
		mu.Lock()
		threads[unix.Gettid()] = true
		mu.Unlock()
		return nil
	}).Render(context.Background(), job, nil)
	require.NoError(t, err)
	require.Len(t, threads, DefaultComposeWorkers())
	require.Equal(t, max(1, runtime.GOMAXPROCS(0)/4), DefaultComposeWorkers())
}
