package renderer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // cover art formats
	_ "image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	_ "golang.org/x/image/webp"

	"github.com/backbeat/backbeat/pkg/analysis"
	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// maxCoverPixels bounds a cover's decoded size, so a hostile image cannot
// exhaust the renderer's memory (a 8000×8000 RGBA is 256 MB).
const maxCoverPixels = 50_000_000

// maxCoverBytes bounds the cover file read into memory.
const maxCoverBytes = 32 << 20

// Config is the renderer's own configuration; main fills it from the
// environment. Zero values get the defaults documented per field.
type Config struct {
	// Pool this instance serves (gpu, cpu, …); it reads render-<pool>-<prio>.
	Pool string
	// Worker names this instance in progress and RenderDone: New sets it to
	// Deps.Name (the replica name), and a value set here is ignored.
	Worker string
	// Concurrency is the number of renders at once (default 1); each render
	// uses Encoding.Concurrency frame workers.
	Concurrency int
	// TempDir holds per-render working files (default os.TempDir()).
	TempDir string
	// ProgressInterval between RenderProgress messages (default and maximum 2s).
	ProgressInterval time.Duration
	// StarveEvery makes every Nth fetch start from the low priority, so a
	// steady stream of high jobs cannot starve low ones forever (default
	// bus.DefaultStarveEvery; see bus.FetchOrder).
	StarveEvery int
	// PollInterval bounds the wait, when no consumer has a job, for a job
	// that comes back without a doorbell (bus.Worker.PollInterval; default
	// bus.DefaultRecheck).
	PollInterval time.Duration
	// Scale shrinks every frame size (tests); 0 means 1. Sizes stay even.
	Scale float64
	// BeforeFrame is a test seam called before each frame is drawn: return an
	// error to fail the render there, or block on ctx to hang it.
	BeforeFrame func(ctx context.Context, frame int) error
	// TemplateDir holds users' templates (*.json, plus the images they
	// name), added to the built-in ones at start; an invalid file stops New.
	TemplateDir string
	// Templates to render from (default: built-in plus TemplateDir).
	Templates *template.Templates
}

func (c *Config) setDefaults() error {
	if c.Pool == "" {
		c.Pool = DefaultPool
	}
	if err := ids.ValidateVideoID(c.Pool); err != nil { // same charset rules as a subject token
		return fmt.Errorf("renderer config: pool: %w", err)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.ProgressInterval <= 0 || c.ProgressInterval > 2*time.Second {
		c.ProgressInterval = 2 * time.Second
	}
	if c.Scale == 0 {
		c.Scale = 1
	}
	if c.Scale < 0 || c.Scale > 1 {
		return fmt.Errorf("renderer config: scale %v out of (0,1]", c.Scale)
	}
	if c.Templates == nil {
		ts, err := template.LoadTemplates(c.TemplateDir)
		if err != nil {
			return fmt.Errorf("renderer config: templates: %w", err)
		}
		c.Templates = ts
	}
	return nil
}

// DefaultPool is the pool of a renderer whose Config names none.
const DefaultPool = "cpu"

// Service renders RenderJobs of one pool.
type Service struct {
	cfg  Config
	deps bus.Deps
	r    *Renderer
	log  *zap.Logger
	step *bus.Step[*backbeatv1.RenderJob, *backbeatv1.RenderDone]
}

// New checks the configuration and dependencies (Blob, Pub, Runs). Its main
// and `backbeat dev` both build the service here, so every default is the
// one of Config.
func New(cfg Config, deps bus.Deps) (*Service, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := deps.Require(bus.StepRender, true); err != nil {
		return nil, err
	}
	deps = deps.WithDefaults()
	cfg.Worker = deps.Name
	deps.Log = deps.Log.With(zap.String("pool", cfg.Pool)) // the worker adds step
	log := deps.Log.With(zap.String("step", bus.StepRender))
	s := &Service{cfg: cfg, deps: deps, r: NewRenderer(log, cfg.BeforeFrame), log: log}
	s.r.metrics, s.r.pool = deps.Metrics, cfg.Pool
	s.step = &bus.Step[*backbeatv1.RenderJob, *backbeatv1.RenderDone]{
		Name: bus.StepRender, Done: bus.KindRenderDone, Deps: deps, Work: s.work,
		Check: func(job *backbeatv1.RenderJob) error { _, _, err := s.checkJob(job); return err },
		// A failed render moves to the next pool instead of retrying here.
		Escalate:    true,
		StarveEvery: cfg.StarveEvery, PollInterval: cfg.PollInterval,
	}
	return s, nil
}

// layoutOf maps the proto format to a layout name.
func layoutOf(f backbeatv1.Format) (string, error) {
	switch f {
	case backbeatv1.Format_FORMAT_SQUARE:
		return template.LayoutSquare, nil
	case backbeatv1.Format_FORMAT_PORTRAIT:
		return template.LayoutPortrait, nil
	case backbeatv1.Format_FORMAT_LANDSCAPE:
		return template.LayoutLandscape, nil
	}
	return "", fmt.Errorf("%w %v", template.ErrUnknownFormat, f)
}

// checkJob refuses what no retry can fix, before any download. The audio,
// the analysis and the output must be private keys of the job's own run
// (keys.IsRunKey): a render reads only what its run's audio step wrote, and
// writes where the edge never serves and no other run reads; the coordinator
// promotes the MP4 once the run is ready. The cover must be an upload of the
// same video.
func (s *Service) checkJob(job *backbeatv1.RenderJob) (*template.Template, string, error) {
	vid, run := job.GetVideoId(), job.GetRunId()
	if err := ids.ValidateVideoID(vid); err != nil {
		return nil, "", err
	}
	if err := ids.ValidateRunID(run); err != nil {
		return nil, "", err
	}
	for _, k := range []struct{ what, key string }{{"audio", job.GetAudioKey()}, {"analysis", job.GetAnalysisKey()}, {"output", job.GetOutputKey()}} {
		if !keys.IsRunKey(k.key, vid, run) {
			return nil, "", fmt.Errorf("%s key %q is not a key of run %s of video %s (want %s<name>)", k.what, k.key, run, vid, keys.RunPrefix(vid, run))
		}
	}
	if out := job.GetOutputKey(); out == job.GetAudioKey() || out == job.GetAnalysisKey() {
		return nil, "", fmt.Errorf("output key %q would overwrite an input", out)
	}
	if k := job.GetCoverKey(); k != "" && !keys.IsUploadKey(k, vid) {
		return nil, "", fmt.Errorf("cover key %q is not an upload of video %s (want %s…)", k, vid, keys.UploadPrefix(vid))
	}
	tpl, err := s.cfg.Templates.Lookup(job.GetTemplate())
	if err != nil {
		return nil, "", err
	}
	layout, err := layoutOf(job.GetFormat())
	if err != nil {
		return nil, "", err
	}
	return tpl, layout, nil
}

// Handle renders one attempt: it guards the run, downloads the inputs,
// renders with progress, uploads the MP4 and publishes RenderDone. Errors in
// the job are permanent; a run that stops being current kills ffmpeg and
// returns an error wrapping bus.ErrNotCurrent within a second.
func (s *Service) Handle(ctx context.Context, job *backbeatv1.RenderJob) error {
	return s.step.Handle(ctx, job)
}

// work renders a checked job under its run's guard and returns the event to
// publish.
func (s *Service) work(ctx context.Context, job *backbeatv1.RenderJob) (*backbeatv1.RenderDone, error) {
	tpl, layout, err := s.checkJob(job)
	if err != nil {
		return nil, bus.Permanent(fmt.Errorf("render job: %w", err))
	}
	log := bus.Logger(ctx, s.log)
	res, err := s.render(ctx, job, tpl, layout, log)
	if err != nil {
		if IsInvalid(err) {
			return nil, bus.Permanent(err)
		}
		return nil, err
	}
	log.Info("render done", zap.Int("frames", res.Frames), zap.String("encoder", res.Encoder),
		zap.Duration("took", res.Elapsed))
	return &backbeatv1.RenderDone{
		VideoId: job.GetVideoId(), RunId: job.GetRunId(), Attempt: job.GetAttempt(), VideoKey: job.GetOutputKey(),
		RenderSeconds: res.Elapsed.Seconds(), Frames: int64(res.Frames), Encoder: res.Encoder,
		Pool: s.cfg.Pool, Worker: s.cfg.Worker,
	}, nil
}

// render downloads, renders and uploads; the caller publishes the result.
func (s *Service) render(ctx context.Context, job *backbeatv1.RenderJob, tpl *template.Template, layout string, log *zap.Logger) (Result, error) {
	dir, err := os.MkdirTemp(s.cfg.TempDir, "render-"+job.GetVideoId()+"-")
	if err != nil {
		return Result{}, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	in, err := s.fetchInputs(ctx, job, dir)
	if err != nil {
		return Result{}, err
	}
	enc := job.GetEncoding()
	e := Encoding{
		CRF: int(enc.GetCrf()), Preset: enc.GetPreset(), FPS: int(enc.GetFps()), HDR: enc.GetHdr(),
		Encoder: enc.GetEncoder(), Concurrency: int(enc.GetConcurrency()),
	}
	if e.FPS == 0 {
		e.FPS = in.an.FPS
	}
	dur := job.GetDurationSeconds()
	if dur <= 0 {
		dur = in.an.Duration
	}
	w, h, err := template.FrameSize(layout)
	if err != nil {
		return Result{}, errInvalid(err)
	}
	rj := Job{
		Scene: SceneInput{
			Template: tpl, Layout: layout, Width: evenScale(w, s.cfg.Scale), Height: evenScale(h, s.cfg.Scale),
			Analysis: in.an, Cover: in.cover, Title: job.GetTitle(), Artist: job.GetArtist(),
			Settings: job.GetTemplateSettings(), Watermark: job.GetWatermark(),
		},
		Encoding: e, Duration: dur, AudioPath: in.audio, OutPath: filepath.Join(dir, "out.mp4"),
	}
	total := int64(FrameCount(dur, max(e.FPS, 1)))
	prog := newProgressReporter(s, job, total, log)
	stop := prog.start(ctx)
	res, err := s.r.Render(ctx, rj, prog.set)
	stop(err == nil)
	if err != nil {
		return Result{}, fmt.Errorf("render: %w", err)
	}
	if _, err := s.deps.Blob.PutFile(ctx, job.GetOutputKey(), rj.OutPath, "video/mp4"); err != nil {
		return Result{}, fmt.Errorf("upload %s: %w", job.GetOutputKey(), err)
	}
	return res, nil
}

// evenScale scales a full frame dimension and keeps it even for 4:2:0.
func evenScale(v int, scale float64) int {
	if scale == 1 {
		return v
	}
	return max(16, int(math.Round(float64(v)*scale/2))*2)
}

type inputs struct {
	audio string
	an    *analysis.Analysis
	cover image.Image
}

// fetchInputs downloads the audio, analysis and cover. A missing or broken
// object is permanent: the audio step's outputs do not appear later.
func (s *Service) fetchInputs(ctx context.Context, job *backbeatv1.RenderJob, dir string) (inputs, error) {
	var in inputs
	in.audio = filepath.Join(dir, "audio"+filepath.Ext(job.GetAudioKey()))
	if _, err := s.deps.Blob.GetFile(ctx, job.GetAudioKey(), in.audio); err != nil {
		return in, blobErr("audio", err)
	}
	rc, _, err := s.deps.Blob.Get(ctx, job.GetAnalysisKey())
	if err != nil {
		return in, blobErr("analysis", err)
	}
	in.an, err = analysis.Decode(rc)
	_ = rc.Close()
	if err != nil {
		return in, errInvalid(err)
	}
	if key := job.GetCoverKey(); key != "" {
		rc, _, err := s.deps.Blob.Get(ctx, key)
		if err != nil {
			return in, blobErr("cover", err)
		}
		in.cover, err = decodeCover(rc)
		_ = rc.Close()
		if err != nil {
			return in, errInvalid(err)
		}
	}
	return in, nil
}

func blobErr(what string, err error) error {
	err = fmt.Errorf("download %s: %w", what, err)
	if errors.Is(err, blob.ErrNotFound) {
		return errInvalid(err)
	}
	return err
}

// decodeCover reads a JPEG, PNG or WebP (at most maxCoverBytes), refusing
// absurd dimensions before decoding.
func decodeCover(r io.Reader) (image.Image, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxCoverBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cover: read: %w", err)
	}
	if len(data) > maxCoverBytes {
		return nil, fmt.Errorf("cover: larger than %d bytes", maxCoverBytes)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("cover: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxCoverPixels {
		return nil, fmt.Errorf("cover: %dx%d is too large", cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("cover: %w", err)
	}
	return img, nil
}
