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
	"github.com/backbeat/backbeat/pkg/ids"
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
	// Policy is the thumbnail consumer's delivery policy.
	Policy bus.Policy
	// WorkerName identifies this replica in StepFailed events.
	WorkerName string
}

func (c *Config) defaults() {
	if c.Frames == 0 {
		c.Frames = DefaultFrames
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.Policy.AckWait == 0 {
		c.Policy = bus.DefaultTopology(bus.DefaultPrefix, nil).Policy(bus.StepThumbnail)
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

// Deps are what the service talks to.
type Deps struct {
	// Store holds the MP4 and receives the JPEGs.
	Store blob.Store
	// Runs lets a job of a superseded run be dropped, and kills ffmpeg when
	// the run stops being current mid-job.
	Runs *bus.Runs
	// Pub publishes ThumbnailDone (and StepFailed through the worker).
	Pub *bus.Publisher
	// Log is the service logger.
	Log *zap.Logger
	// Metrics, when set, counts job outcomes.
	Metrics *bus.Metrics
}

// Service handles ThumbnailJobs.
type Service struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
}

// New validates the configuration and dependencies.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Runs == nil || deps.Pub == nil {
		return nil, errors.New("thumbnail: Store, Runs and Pub are required")
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	return &Service{cfg: cfg, deps: deps, log: deps.Log}, nil
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
	vid, run := job.GetVideoId(), job.GetRunId()
	if err := ids.ValidateVideoID(vid); err != nil {
		return bus.Permanent(fmt.Errorf("thumbnail job: %w", err))
	}
	if err := ids.ValidateRunID(run); err != nil {
		return bus.Permanent(fmt.Errorf("thumbnail job: %w", err))
	}
	videoKey, fullKey, squareKey, err := jobKeys(job)
	if err != nil {
		return bus.Permanent(fmt.Errorf("thumbnail job: %w", err))
	}
	gctx, cancel, err := s.deps.Runs.Guard(ctx, vid, run, 0)
	if err != nil {
		return fmt.Errorf("thumbnail job: %w", err)
	}
	defer cancel()
	log := bus.Logger(ctx, s.log.With(zap.String("video_id", vid), zap.String("run_id", run), zap.String("step", bus.StepThumbnail)))
	start := time.Now()

	dir, err := os.MkdirTemp(s.cfg.TempDir, "thumbnail-"+vid+"-")
	if err != nil {
		return fmt.Errorf("thumbnail temp dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	videoPath := filepath.Join(dir, "video.mp4")
	fullPath := filepath.Join(dir, "full.jpg")
	squarePath := filepath.Join(dir, "square.jpg")

	if _, err := s.deps.Store.GetFile(gctx, videoKey, videoPath); err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return bus.Permanent(fmt.Errorf("download video: %w", err))
		}
		return bus.Cause(gctx, fmt.Errorf("download video: %w", err))
	}
	res, err := Generate(gctx, videoPath, fullPath, squarePath, s.cfg.Frames)
	if err != nil {
		return bus.Cause(gctx, err)
	}
	if _, err := s.deps.Store.PutFile(gctx, fullKey, fullPath, "image/jpeg"); err != nil {
		return bus.Cause(gctx, fmt.Errorf("upload thumbnail: %w", err))
	}
	if _, err := s.deps.Store.PutFile(gctx, squareKey, squarePath, "image/jpeg"); err != nil {
		return bus.Cause(gctx, fmt.Errorf("upload square thumbnail: %w", err))
	}
	done := &backbeatv1.ThumbnailDone{VideoId: vid, RunId: run, ThumbnailKey: fullKey, SquareThumbnailKey: squareKey}
	subj := s.deps.Pub.Subjects().Event(vid, bus.KindThumbnailDone)
	if err := s.deps.Pub.Publish(gctx, subj, done, bus.MsgID(run, bus.StepThumbnail, 0, bus.KindThumbnailDone)); err != nil {
		return bus.Cause(gctx, fmt.Errorf("publish thumbnail done: %w", err))
	}
	log.Info("thumbnails written", zap.String("thumbnail_key", fullKey), zap.String("square_thumbnail_key", squareKey),
		zap.Int("width", res.Video.Width), zap.Int("height", res.Video.Height), zap.Duration("took", time.Since(start)))
	return nil
}

// Run consumes ThumbnailJobs until ctx is done.
func (s *Service) Run(ctx context.Context, js jetstream.JetStream) error {
	cons, err := bus.Consumer(ctx, js, bus.StreamJobs, bus.StepThumbnail)
	if err != nil {
		return err
	}
	w := &bus.Worker[*backbeatv1.ThumbnailJob]{
		Step:    bus.StepThumbnail,
		New:     func() *backbeatv1.ThumbnailJob { return &backbeatv1.ThumbnailJob{} },
		Handle:  s.Handle,
		Pub:     s.deps.Pub,
		Log:     s.log,
		Policy:  s.cfg.Policy,
		Name:    s.cfg.WorkerName,
		Metrics: s.deps.Metrics,
	}
	if err := w.Run(ctx, cons, s.cfg.Concurrency); err != nil {
		return fmt.Errorf("thumbnail: %w", err)
	}
	return nil
}
