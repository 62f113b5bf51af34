package renderer

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/backbeat/backbeat/pkg/media"
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
	buf []byte
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
	frames := FrameCount(job.Duration, enc.FPS)
	if frames < 1 {
		return Result{}, errInvalid(fmt.Errorf("duration %.3fs gives no frames at %d fps", job.Duration, enc.FPS))
	}
	in := job.Scene
	in.FPS, in.Frames = enc.FPS, frames
	scene, err := NewScene(in)
	if err != nil {
		return Result{}, errInvalid(err)
	}
	encoder, err := r.probe.chooseEncoder(ctx, enc, r.log)
	if err != nil {
		return Result{}, err
	}
	w, h := scene.Size()
	args, err := ffmpegArgs(enc, encoder, w, h, job.AudioPath, job.OutPath)
	if err != nil {
		return Result{}, err
	}

	// ffmpeg gets its own context so a failed frame kills it as surely as a
	// cancelled job does.
	fctx, fcancel := context.WithCancelCause(ctx)
	defer fcancel(nil)
	cmd := media.FFmpeg(fctx, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("start ffmpeg: %w", err)
	}
	if r.ffmpegStarted != nil {
		r.ffmpegStarted(cmd.Pid())
	}
	r.log.Debug("ffmpeg started", zap.Strings("args", args), zap.Int("frames", frames))

	ferr := r.produce(fctx, scene, enc, stdin, progress)
	if ferr != nil {
		fcancel(ferr)
	}
	_ = stdin.Close()
	werr := cmd.Wait()
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

// errPipe marks a failed write to ffmpeg's stdin: the real error is ffmpeg's.
var errPipe = errors.New("write to ffmpeg")

// produce runs the frame workers and the ordered writer.
func (r *Renderer) produce(ctx context.Context, scene *Scene, enc Encoding, out io.Writer, progress func(int)) error {
	frames := scene.Frames()
	w, h := scene.Size()
	size := yuvFrameSize(w, h, enc.HDR)
	convert := toYUV420
	if enc.HDR {
		convert = toYUV420P10
	}
	workers := min(enc.Concurrency, frames)
	window := 2 * workers // frames in flight: bounds memory and keeps workers busy
	tokens := make(chan struct{}, window)
	jobs := make(chan int)
	results := make(chan frame, window)
	free := make(chan []byte, window)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		for n := 0; n < frames; n++ {
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
			img := scene.NewFrame()
			for n := range jobs {
				if err := r.drawFrame(gctx, scene, img, n); err != nil {
					return err
				}
				var buf []byte
				select {
				case buf = <-free:
				default:
					buf = make([]byte, size)
				}
				convert(buf, img)
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
		pending := make(map[int][]byte, window)
		for next := 0; next < frames; {
			select {
			case f := <-results:
				pending[f.n] = f.buf
			case <-gctx.Done():
				return context.Cause(gctx)
			}
			for buf, ok := pending[next]; ok; buf, ok = pending[next] {
				delete(pending, next)
				if _, err := out.Write(buf); err != nil {
					return fmt.Errorf("%w: frame %d: %v", errPipe, next, err)
				}
				select {
				case free <- buf:
				default:
				}
				<-tokens
				next++
				if progress != nil {
					progress(next)
				}
			}
		}
		return nil
	})
	return g.Wait()
}

// drawFrame runs the test seam then composes frame n.
func (r *Renderer) drawFrame(ctx context.Context, scene *Scene, img *image.RGBA, n int) error {
	if r.beforeFrame != nil {
		if err := r.beforeFrame(ctx, n); err != nil {
			return fmt.Errorf("frame %d: %w", n, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	scene.Compose(img, n)
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
