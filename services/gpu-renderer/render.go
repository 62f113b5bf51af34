package renderer

import (
	"context"
	"errors"
	"fmt"
	"github.com/backbeat/backbeat/pkg/bus"
	"io"
	"os"
	"runtime"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/services/gpu-renderer/internal/yuv"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// Job is one render on local files: NATS-free, so it is testable and usable
// from the CLI. Scene.FPS and Scene.Frames are set from Encoding and Duration.
type Job struct {
	Scene     SceneInput
	Encoding  Encoding
	Duration  float64 // seconds of video; frames = round(Duration × FPS)
	AudioPath string  // AAC (or anything MP4 can carry) muxed by copy
	OutPath   string  // the MP4 written
}

// Result describes a finished render.
type Result struct {
	Frames  int
	Encoder string
	Elapsed time.Duration
}

// Renderer turns Jobs into MP4s. It is safe for concurrent use; it holds only
// the encoder probe cache and hooks.
type Renderer struct {
	log *zap.Logger
	// beforeFrame runs before each frame is drawn (test seam: fail or hang).
	beforeFrame func(ctx context.Context, frame int) error
	// ffmpegStarted is told ffmpeg's pid (tests check it is gone after a cancel).
	ffmpegStarted func(pid int)
	probe         encoderProbe
	// metrics, when set, counts renders that asked for NVENC and ran on
	// libx264, under the renderer's pool.
	metrics *bus.Metrics
	pool    string
}

// NewRenderer returns a renderer; beforeFrame may be nil.
func NewRenderer(log *zap.Logger, beforeFrame func(ctx context.Context, frame int) error) *Renderer {
	if log == nil {
		log = zap.NewNop()
	}
	return &Renderer{log: log, beforeFrame: beforeFrame}
}

// FrameCount is the number of frames of a video of duration seconds, rounded
// so the video ends within half a frame of the audio.
func FrameCount(duration float64, fps int) int {
	return int(duration*float64(fps) + 0.5)
}

// frame is a converted frame on its way to the writer.
type frame struct {
	n   int
	buf *yuvFrame
}

// prepare checks a job and builds its scene.
func (r *Renderer) prepare(job Job) (*Scene, Encoding, error) {
	enc, err := job.Encoding.withDefaults()
	if err != nil {
		return nil, enc, fmt.Errorf("encoding: %w", errInvalid(err))
	}
	frames := FrameCount(job.Duration, enc.FPS)
	if frames < 1 {
		return nil, enc, errInvalid(fmt.Errorf("duration %.3fs gives no frames at %d fps", job.Duration, enc.FPS))
	}
	in := job.Scene
	in.FPS, in.Frames = enc.FPS, frames
	scene, err := NewScene(in)
	if err != nil {
		return nil, enc, errInvalid(err)
	}
	return scene, enc, nil
}

// Render draws every frame on Encoding.Concurrency workers, converts them to
// YUV, writes them to ffmpeg in order and waits for the MP4. progress, if not
// nil, is called from one goroutine with the number of frames written. When
// ctx ends (or a frame fails) ffmpeg's process group is killed before Render
// returns.
func (r *Renderer) Render(ctx context.Context, job Job, progress func(done int)) (Result, error) {
	start := time.Now()
	enc, err := job.Encoding.withDefaults()
	if err != nil {
		return Result{}, fmt.Errorf("encoding: %w", errInvalid(err))
	}
	w, h, err := template.FrameSize(job.Scene.Layout)
	if err != nil {
		return Result{}, errInvalid(err)
	}
	if job.Scene.Width != 0 || job.Scene.Height != 0 {
		w, h = job.Scene.Width, job.Scene.Height
	}
	// The scene (scaled covers, blurred backdrop, lookup tables) is built
	// while ffmpeg and the encoder start: both are part of the wall time.
	type built struct {
		scene *Scene
		err   error
	}
	sceneC := make(chan built, 1)
	go func() {
		s, _, err := r.prepare(job)
		sceneC <- built{s, err}
	}()
	waitScene := func() (*Scene, error) { b := <-sceneC; return b.scene, b.err }
	encoder, err := r.probe.chooseEncoder(ctx, enc, r.log)
	if err != nil {
		_, _ = waitScene()
		return Result{}, err
	}
	if enc.Encoder == EncoderNVENC && encoder != EncoderNVENC {
		r.metrics.NVENCFallback(r.pool)
	}
	if job.Encoding.Concurrency <= 0 {
		enc.Concurrency = composeWorkers(encoder)
	}
	// A bundle may ask for more workers than the process has cores for
	// (pro asks for 4): they cannot compose at once, and each one more adds
	// an RGBA scratch frame and two frames in flight, 9 MB at 1080x1080.
	enc.Concurrency = min(enc.Concurrency, runtime.GOMAXPROCS(0))
	args, err := ffmpegArgs(enc, encoder, w, h, job.AudioPath, job.OutPath)
	if err != nil {
		_, _ = waitScene()
		return Result{}, err
	}

	// ffmpeg gets its own context so a failed frame kills it as surely as a
	// cancelled job does.
	fctx, fcancel := context.WithCancelCause(ctx)
	defer fcancel(nil)
	cmd := media.FFmpeg(fctx, args...)
	pipeR, stdin, err := r.stdinPipe()
	if err != nil {
		_, _ = waitScene()
		return Result{}, err
	}
	cmd.Stdin = pipeR
	if err := cmd.Start(); err != nil {
		_ = stdin.Close()
		_ = pipeR.Close()
		_, _ = waitScene()
		return Result{}, fmt.Errorf("start ffmpeg: %w", err)
	}
	// Only ffmpeg may hold the read end: a write must fail with EPIPE, not
	// block forever, when ffmpeg dies.
	_ = pipeR.Close()
	scene, err := waitScene()
	if err != nil {
		fcancel(err)
		_ = stdin.Close()
		_ = cmd.Wait()
		return Result{}, err
	}
	frames := scene.Frames()
	if r.ffmpegStarted != nil {
		r.ffmpegStarted(cmd.Pid())
	}
	r.log.Debug("ffmpeg started", zap.Strings("args", args), zap.Int("frames", frames))

	sink := newFrameSink(stdin, yuv.FrameSize(w, h, enc.HDR))
	ferr := r.produce(fctx, scene, enc, 0, frames, sink, true, progress)
	if ferr != nil {
		fcancel(ferr)
	}
	_ = stdin.Close()
	werr := cmd.Wait()
	// The pipe may have referred to the sink's last buffers until ffmpeg
	// read them; only now may they be unmapped (or, on the heap, collected:
	// this call also keeps the sink alive until here).
	sink.release()
	switch {
	case ferr != nil && ctx.Err() != nil:
		return Result{}, fmt.Errorf("render cancelled: %w", context.Cause(ctx))
	case ferr != nil && werr != nil && errors.Is(ferr, errPipe):
		// ffmpeg died first; its stderr says why.
		return Result{}, fmt.Errorf("ffmpeg %s: %w", encoder, werr)
	case ferr != nil:
		return Result{}, ferr
	case werr != nil:
		return Result{}, fmt.Errorf("ffmpeg %s: %w", encoder, werr)
	}
	return Result{Frames: frames, Encoder: encoder, Elapsed: time.Since(start)}, nil
}

// RenderRaw writes frames [from, to) of a job as raw planar YUV (yuv420p, or
// yuv420p10le for HDR) to out, exactly the bytes Render feeds ffmpeg; to <= 0
// means the last frame. It is how a range of frames is checked against a
// full render, and how the benchmark separates drawing from encoding.
func (r *Renderer) RenderRaw(ctx context.Context, job Job, from, to int, out io.Writer) (Result, error) {
	start := time.Now()
	scene, enc, err := r.prepare(job)
	if err != nil {
		return Result{}, err
	}
	if to <= 0 || to > scene.Frames() {
		to = scene.Frames()
	}
	if from < 0 || from >= to {
		return Result{}, errInvalid(fmt.Errorf("frame range %d..%d outside 0..%d", from, to, scene.Frames()))
	}
	if err := r.produce(ctx, scene, enc, from, to, writeSink{out}, false, nil); err != nil {
		return Result{}, err
	}
	return Result{Frames: to - from, Elapsed: time.Since(start)}, nil
}

// pipeSize is the stdin pipe buffer Render asks for: 1 MiB, the default
// /proc/sys/fs/pipe-max-size, so a frame crosses in two pieces, not ~27.
const pipeSize = 1 << 20

// stdinPipe makes the pipe that carries frames to ffmpeg, with a large
// buffer. The caller passes the read end to ffmpeg as stdin and closes it
// after Start, and closes the write end when the frames are done.
func (r *Renderer) stdinPipe() (read, write *os.File, err error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("ffmpeg stdin pipe: %w", err)
	}
	if got, err := setPipeSize(pw, pipeSize); err != nil {
		r.log.Debug("keeping the default pipe size", zap.Error(err))
	} else {
		r.log.Debug("ffmpeg stdin pipe", zap.Int("pipe_bytes", got))
	}
	return pr, pw, nil
}

// frameSink takes the frames of a render in order.
type frameSink interface {
	// send writes f's bytes and calls free for every buffer, f or an
	// earlier one, that may now be rewritten.
	send(f *yuvFrame, free func(*yuvFrame)) error
	// buffer returns n zeroed bytes for a frame buffer to send; compose
	// workers may call it at once.
	buffer(n int) []byte
	// release frees what buffer returned. It is called once, when no
	// frame is composed or sent any more and the reader is gone.
	release()
}

// writeSink copies each frame with one Write: with the 1 MiB pipe the
// kernel moves it in two pieces.
type writeSink struct{ w io.Writer }

func (writeSink) buffer(n int) []byte { return make([]byte, n) }

func (writeSink) release() {}

func (s writeSink) send(f *yuvFrame, free func(*yuvFrame)) error {
	if _, err := s.w.Write(f.b); err != nil {
		return err
	}
	free(f)
	return nil
}

// errPipe marks a failed write to ffmpeg's stdin: the real error is ffmpeg's.
var errPipe = errors.New("write to ffmpeg")

// produce draws frames [from, to) on enc.Concurrency workers and writes them
// in order. At most 2×workers+1 frames are in flight and their buffers are
// recycled, so memory does not grow with the video's length.
//
// A buffer gets the static base's YUV once, when it is made; after that a
// worker's composer rewrites only the row spans this frame's layers drew in,
// and gives back the base where the buffer's older frame had drawn (see
// frames.go). So a frame costs the pixels its moving layers actually cover.
//
// With yield, the workers run at a low CPU priority (see yieldToEncoder):
// the encoder, not composing, bounds a render, so composing should take the
// cores only when the encoder leaves them idle.
func (r *Renderer) produce(ctx context.Context, scene *Scene, enc Encoding, from, to int, out frameSink, yield bool, progress func(int)) error {
	scene.staticYUV(enc.HDR) // convert the base once, before the workers race for it
	workers := max(1, min(enc.Concurrency, to-from))
	if workers == 1 {
		return r.produceInline(ctx, scene, enc, from, to, out, yield, progress)
	}
	// Frames in flight, counting one a sink may hold back: bounds memory
	// and keeps the workers busy.
	window := 2*workers + 1

	tokens := make(chan struct{}, window)
	jobs := make(chan int)
	results := make(chan frame, window)
	// A token is held from dispatch until the sink frees the buffer, so at
	// most window buffers exist and putting one back never blocks.
	free := make(chan *yuvFrame, window)
	release := func(b *yuvFrame) {
		free <- b
		<-tokens
	}
	getBuf := func() *yuvFrame {
		select {
		case b := <-free:
			return b
		default:
			return scene.newYUVFrameIn(out.buffer(yuv.FrameSize(scene.w, scene.h, enc.HDR)), enc.HDR)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		for n := from; n < to; n++ {
			select {
			case tokens <- struct{}{}:
			case <-gctx.Done():
				return context.Cause(gctx)
			}
			select {
			case jobs <- n:
			case <-gctx.Done():
				return context.Cause(gctx)
			}
		}
		return nil
	})
	for range workers {
		g.Go(func() error {
			if yield {
				// This goroutine keeps its thread, at a low priority, to
				// its end; Go then ends the thread rather than reuse it.
				runtime.LockOSThread()
				if err := yieldToEncoder(); err != nil {
					r.log.Debug("compose worker keeps its priority", zap.Error(err))
				}
			}
			c := scene.newComposer()
			for n := range jobs {
				if err := r.beforeDraw(gctx, n); err != nil {
					return err
				}
				buf := getBuf()
				c.compose(buf, n, enc.HDR)
				select {
				case results <- frame{n: n, buf: buf}:
				case <-gctx.Done():
					return context.Cause(gctx)
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		pending := make(map[int]*yuvFrame, window)
		for next := from; next < to; {
			select {
			case f := <-results:
				pending[f.n] = f.buf
			case <-gctx.Done():
				return context.Cause(gctx)
			}
			for buf, ok := pending[next]; ok; buf, ok = pending[next] {
				delete(pending, next)
				if err := out.send(buf, release); err != nil {
					return fmt.Errorf("%w: frame %d: %v", errPipe, next, err)
				}
				next++
				if progress != nil {
					progress(next - from)
				}
			}
		}
		return nil
	})
	return g.Wait()
}

// produceInline is produce with one worker: this goroutine composes the
// frames, ahead of ffmpeg, into a queue that one writer goroutine hands to
// the sink.
//
// It composes in bursts: when the queue is full it waits until the writer
// has taken it down to a quarter, then fills it again. In a render the
// encoder has just filled the caches of the core this thread gets, and a
// frame composed right after another one finds the scene's data still
// there (measured in docs/benchmarks.md, round 5, step 6). The queue holds
// at most queueBytes of frames, so memory does not grow with the video's
// length.
func (r *Renderer) produceInline(ctx context.Context, scene *Scene, enc Encoding, from, to int, out frameSink, yield bool, progress func(int)) error {
	if yield {
		// As in produce: the thread stays low-priority until it ends.
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if err := yieldToEncoder(); err != nil {
				r.log.Debug("compose worker keeps its priority", zap.Error(err))
			}
			done <- r.produceInline(ctx, scene, enc, from, to, out, false, progress)
		}()
		return <-done
	}
	size := yuv.FrameSize(scene.w, scene.h, enc.HDR)
	depth := min(max(queueBytes/size, 4), 32)
	low := depth / 4
	ready := make(chan frame, depth)
	drained := make(chan struct{}, 1) // the writer took the queue down to low
	// Buffers exist only in ready, the composer, the writer and the sink
	// (which holds back at most a pipe's worth): fewer than the room here,
	// so giving one back never blocks.
	free := make(chan *yuvFrame, 2*depth+8)
	release := func(b *yuvFrame) { free <- b }

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for f := range ready {
			if err := out.send(f.buf, release); err != nil {
				return fmt.Errorf("%w: frame %d: %v", errPipe, f.n, err)
			}
			if len(ready) <= low {
				select {
				case drained <- struct{}{}:
				default:
				}
			}
			if progress != nil {
				progress(f.n + 1 - from)
			}
		}
		return nil
	})
	// Composing stays on this goroutine, whose thread the caller may have
	// locked and lowered.
	cerr := func() error {
		defer close(ready)
		c := scene.newComposer()
		for n := from; n < to; n++ {
			if err := r.beforeDraw(gctx, n); err != nil {
				return err
			}
			if len(ready) == cap(ready) {
				// Full: wait for the writer to take it down to low.
				for len(ready) > low {
					select {
					case <-drained:
					case <-gctx.Done():
						return context.Cause(gctx)
					}
				}
			}
			var buf *yuvFrame
			select {
			case buf = <-free:
			default:
				buf = scene.newYUVFrameIn(out.buffer(size), enc.HDR)
			}
			c.compose(buf, n, enc.HDR)
			select {
			case ready <- frame{n: n, buf: buf}:
			case <-gctx.Done():
				return context.Cause(gctx)
			}
		}
		return nil
	}()
	if err := g.Wait(); err != nil {
		return err
	}
	return cerr
}

// queueBytes bounds the frames produceInline composes ahead: 18 square
// 8-bit frames, 10 portrait or landscape ones (at least 4, at most 32).
const queueBytes = 32 << 20

// beforeDraw runs the test seam and stops on a cancelled context.
func (r *Renderer) beforeDraw(ctx context.Context, n int) error {
	if r.beforeFrame != nil {
		if err := r.beforeFrame(ctx, n); err != nil {
			return fmt.Errorf("frame %d: %w", n, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	return nil
}

// invalidError marks errors in the job itself (template, format, settings,
// encoding); the service turns them into permanent failures.
type invalidError struct{ err error }

func (e *invalidError) Error() string { return e.err.Error() }
func (e *invalidError) Unwrap() error { return e.err }

func errInvalid(err error) error { return &invalidError{err: err} }

// IsInvalid reports whether err is a problem with the job's input that no
// retry can fix.
func IsInvalid(err error) bool {
	var ie *invalidError
	return errors.As(err, &ie)
}
