package thumbnail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// Config configures one thumbnail replica.
type Config struct {
	// Frames is how many frames the thumbnail filter compares (DefaultFrames).
	Frames int
	// TempDir holds the downloaded MP4 and the JPEGs of a job; "" is os.TempDir().
	TempDir string
	// Concurrency is how many jobs one replica handles at once; each is one
	// ffmpeg holding Frames decoded frames, so keep it small.
	Concurrency int
}

func (c *Config) defaults() {
	if c.Frames == 0 {
		c.Frames = DefaultFrames
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
}

func (c Config) validate() error {
	var errs []error
	if c.Frames < 1 || c.Frames > 1000 {
		errs = append(errs, fmt.Errorf("thumbnail: frames %d out of 1..1000", c.Frames))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("thumbnail: concurrency must be at least 1"))
	}
	return errors.Join(errs...)
}

// Service handles ThumbnailJobs.
type Service struct {
	cfg  Config
	blob blob.Store
	step *bus.Step[*backbeatv1.ThumbnailJob, *backbeatv1.ThumbnailDone]
}

// New validates the configuration and dependencies (Blob holds the MP4 and
// receives the JPEGs; Pub, Runs). Its main and `backbeat dev` both build the
// service here, so every default is the one of Config.
func New(cfg Config, deps bus.Deps) (*Service, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := deps.Require(bus.StepThumbnail, true); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, blob: deps.Blob}
	s.step = &bus.Step[*backbeatv1.ThumbnailJob, *backbeatv1.ThumbnailDone]{
		Name: bus.StepThumbnail, Done: bus.KindThumbnailDone, Deps: deps, Work: s.work,
		Check: func(job *backbeatv1.ThumbnailJob) error { _, _, _, err := jobKeys(job); return err },
	}
	return s, nil
}

// jobKeys returns the job's three keys after checking that each is a private
// key of the job's own run (keys.IsRunKey) and that they are distinct. The
// coordinator names them; there is no default, since a key computed here
// could only be a guess at its layout. The thumbnails are written beside the
// run's video, never where the edge serves: the coordinator promotes them.
func jobKeys(job *backbeatv1.ThumbnailJob) (video, full, square string, err error) {
	vid, run := job.GetVideoId(), job.GetRunId()
	video, full, square = job.GetVideoKey(), job.GetThumbnailKey(), job.GetSquareThumbnailKey()
	for _, k := range []struct{ field, key string }{{"video_key", video}, {"thumbnail_key", full}, {"square_thumbnail_key", square}} {
		if !keys.IsRunKey(k.key, vid, run) {
			return "", "", "", fmt.Errorf("%s %q is not a key of run %s of video %s (want %s<name>)", k.field, k.key, run, vid, keys.RunPrefix(vid, run))
		}
	}
	if full == square || full == video || square == video {
		return "", "", "", fmt.Errorf("video, thumbnail and square thumbnail keys must differ: %q, %q, %q", video, full, square)
	}
	return video, full, square, nil
}

// Handle downloads the video, extracts both thumbnails, uploads them and
// publishes ThumbnailDone. A missing or undecodable video is permanent; a
// store or bus failure is retried; a run that stops being current kills
// ffmpeg and drops the job.
func (s *Service) Handle(ctx context.Context, job *backbeatv1.ThumbnailJob) error {
	return s.step.Handle(ctx, job)
}

// work makes and uploads the thumbnails of a checked job under its run's
// guard, and returns the event to publish.
func (s *Service) work(ctx context.Context, job *backbeatv1.ThumbnailJob) (*backbeatv1.ThumbnailDone, error) {
	vid, run := job.GetVideoId(), job.GetRunId()
	videoKey, fullKey, squareKey, err := jobKeys(job)
	if err != nil {
		return nil, bus.Permanent(fmt.Errorf("thumbnail job: %w", err))
	}
	start := time.Now()
	dir, err := os.MkdirTemp(s.cfg.TempDir, "thumbnail-"+vid+"-")
	if err != nil {
		return nil, fmt.Errorf("thumbnail temp dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	videoPath := filepath.Join(dir, "video.mp4")
	fullPath := filepath.Join(dir, "full.jpg")
	squarePath := filepath.Join(dir, "square.jpg")

	if _, err := s.blob.GetFile(ctx, videoKey, videoPath); err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, bus.Permanent(fmt.Errorf("download video: %w", err))
		}
		return nil, fmt.Errorf("download video: %w", err)
	}
	res, err := Generate(ctx, videoPath, fullPath, squarePath, s.cfg.Frames)
	if err != nil {
		return nil, err
	}
	if _, err := s.blob.PutFile(ctx, fullKey, fullPath, "image/jpeg"); err != nil {
		return nil, fmt.Errorf("upload thumbnail: %w", err)
	}
	if _, err := s.blob.PutFile(ctx, squareKey, squarePath, "image/jpeg"); err != nil {
		return nil, fmt.Errorf("upload square thumbnail: %w", err)
	}
	bus.Logger(ctx, nil).Info("thumbnails written", zap.String("thumbnail_key", fullKey), zap.String("square_thumbnail_key", squareKey),
		zap.Int("width", res.Video.Width), zap.Int("height", res.Video.Height), zap.Duration("took", time.Since(start)))
	return &backbeatv1.ThumbnailDone{VideoId: vid, RunId: run, ThumbnailKey: fullKey, SquareThumbnailKey: squareKey}, nil
}

// Run consumes ThumbnailJobs until ctx is done.
func (s *Service) Run(ctx context.Context, js jetstream.JetStream) error {
	return s.step.Run(ctx, js, s.cfg.Concurrency)
}
