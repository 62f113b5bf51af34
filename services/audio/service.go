// Package audio is the audio step of Backbeat: it takes an AudioJob, fetches
// the track, crops the chosen region, writes the AAC for muxing, the MP3 for
// download and the per-frame analysis the renderer draws from under the run's
// private keys (keys.RunKey), and publishes audio.done. The work itself (Convert, Analyze) runs on local files and is
// testable without NATS; Handle adds the bus around it.
package audio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/media"
)

// Config is the audio service's configuration, loaded from the environment
// in main. Zero values get the defaults below.
type Config struct {
	// AllowHosts lists the hosts source URLs may name ("*.example.com" allows
	// subdomains). Empty: no URL sources at all.
	AllowHosts []string
	// WorkDir holds each job's scratch directory; default os.TempDir().
	WorkDir string
	// MaxSourceBytes bounds a downloaded source; default 200 MiB.
	MaxSourceBytes int64
	// FetchTimeout bounds a URL download; default 2 minutes.
	FetchTimeout time.Duration
	// Concurrency is the number of jobs run at once; default 2.
	Concurrency int
	// Policy is the audio consumer's delivery policy; default the topology's.
	Policy bus.Policy
	// Name identifies this replica in StepFailed events (hostname, pod).
	Name string
}

func (c Config) withDefaults() Config {
	if c.WorkDir == "" {
		c.WorkDir = os.TempDir()
	}
	if c.MaxSourceBytes <= 0 {
		c.MaxSourceBytes = 200 << 20
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = 2 * time.Minute
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.Policy.AckWait == 0 {
		c.Policy = bus.DefaultTopology(bus.DefaultPrefix, nil).Policy(bus.StepAudio)
	}
	return c
}

// Deps are the service's collaborators, built in main (or a test).
type Deps struct {
	// Blob holds uploads and receives the outputs.
	Blob blob.Store
	// Pub publishes audio.done (and StepFailed through the worker).
	Pub *bus.Publisher
	// Runs tells whether a job's run is still current.
	Runs *bus.Runs
	// Log is the service logger.
	Log *zap.Logger
	// Metrics, optional, counts job outcomes.
	Metrics *bus.Metrics
	// HTTP fetches URL sources; nil builds one that refuses private addresses.
	HTTP *http.Client
}

// Service handles AudioJobs.
type Service struct {
	cfg  Config
	blob blob.Store
	pub  *bus.Publisher
	runs *bus.Runs
	log  *zap.Logger // with step
	base *zap.Logger // without: the worker adds step itself
	met  *bus.Metrics
	http *http.Client
}

// New checks the dependencies and ffmpeg, and returns the service.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.withDefaults()
	switch {
	case deps.Blob == nil:
		return nil, errors.New("audio: Deps.Blob is required")
	case deps.Pub == nil:
		return nil, errors.New("audio: Deps.Pub is required")
	case deps.Runs == nil:
		return nil, errors.New("audio: Deps.Runs is required")
	}
	if err := media.Available(); err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("audio: work dir: %w", err)
	}
	log := deps.Log
	if log == nil {
		log = zap.NewNop()
	}
	client := deps.HTTP
	if client == nil {
		client = newHTTPClient(cfg.AllowHosts, cfg.FetchTimeout)
	}
	return &Service{cfg: cfg, blob: deps.Blob, pub: deps.Pub, runs: deps.Runs,
		log: log.With(zap.String("step", bus.StepAudio)), base: log, met: deps.Metrics, http: client}, nil
}

// Handle processes one AudioJob: nil when audio.done is published, a
// permanent error for bad input, an error wrapping bus.ErrNotCurrent when the
// run stopped being current (ffmpeg is killed within milliseconds), and any
// other error to be retried.
func (s *Service) Handle(ctx context.Context, job *backbeatv1.AudioJob) error {
	vid, run := job.GetVideoId(), job.GetRunId()
	if err := ids.ValidateVideoID(vid); err != nil {
		return bus.Permanent(err)
	}
	if err := ids.ValidateRunID(run); err != nil {
		// The run id names the folder the outputs go to (keys.RunKey).
		return bus.Permanent(fmt.Errorf("audio job for %s: %w", vid, err))
	}
	gctx, cancel, err := s.runs.Guard(ctx, vid, run, 0)
	if err != nil {
		return err
	}
	defer cancel()
	// The worker's logger already names the video and run; a direct call does not.
	log := bus.Logger(ctx, s.log.With(zap.String("video_id", vid), zap.String("run_id", run)))

	done, err := s.process(gctx, job, log)
	if err != nil {
		return bus.Cause(gctx, err)
	}
	if err := gctx.Err(); err != nil {
		return bus.Cause(gctx, err)
	}
	msgID := bus.MsgID(run, bus.StepAudio, 0, bus.KindAudioDone)
	if err := s.pub.Publish(gctx, s.pub.Subjects().Event(vid, bus.KindAudioDone), done, msgID); err != nil {
		return bus.Cause(gctx, fmt.Errorf("publish audio.done: %w", err))
	}
	log.Info("audio ready", zap.Float64("duration_seconds", done.GetDurationSeconds()),
		zap.Float64("source_duration_seconds", done.GetSourceDurationSeconds()))
	return nil
}

// process fetches, converts and uploads, and returns the event to publish.
// The outputs go under the run's private keys (keys.RunKey): the edge never
// serves them, a newer run cannot overwrite them, and the coordinator copies
// the MP3 to its public key only once the run is ready.
func (s *Service) process(ctx context.Context, job *backbeatv1.AudioJob, log *zap.Logger) (*backbeatv1.AudioDone, error) {
	vid, run := job.GetVideoId(), job.GetRunId()
	dir, err := os.MkdirTemp(s.cfg.WorkDir, "audio-"+vid+"-")
	if err != nil {
		return nil, fmt.Errorf("scratch dir: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove scratch dir", zap.Error(err))
		}
	}()

	start := time.Now()
	src, err := s.fetchSource(ctx, job, dir)
	if err != nil {
		return nil, err
	}
	fetched := time.Since(start)
	out, err := Convert(ctx, src, dir, Request{
		Start:     job.GetStartSeconds(),
		End:       job.GetEndSeconds(),
		MaxRegion: job.GetMaxRegionSeconds(),
		FPS:       int(job.GetFps()),
	})
	if err != nil {
		return nil, err
	}
	converted := time.Since(start)

	audioKey, mp3Key, analysisKey := keys.RunKey(vid, run, keys.ObjectAudio), keys.RunKey(vid, run, keys.ObjectMP3), keys.RunKey(vid, run, keys.ObjectAnalysis)
	uploads := []struct{ key, path, ct string }{
		{audioKey, out.AudioPath, "audio/mp4"},
		{mp3Key, out.MP3Path, "audio/mpeg"},
		{analysisKey, out.AnalysisPath, "application/json"},
	}
	for _, u := range uploads {
		if _, err := s.blob.PutFile(ctx, u.key, u.path, u.ct); err != nil {
			return nil, fmt.Errorf("upload %s: %w", u.key, err)
		}
	}
	log.Debug("audio converted", zap.Duration("fetch", fetched), zap.Duration("convert", converted-fetched),
		zap.Duration("upload", time.Since(start)-converted), zap.Int("frames", len(out.Analysis.Frames)))
	return &backbeatv1.AudioDone{
		VideoId:               vid,
		RunId:                 run,
		AudioKey:              audioKey,
		Mp3Key:                mp3Key,
		AnalysisKey:           analysisKey,
		DurationSeconds:       out.Duration,
		SourceDurationSeconds: out.SourceDuration,
	}, nil
}

// Run consumes the audio durable until ctx is done, Concurrency jobs at a
// time, then waits for the jobs in flight.
func (s *Service) Run(ctx context.Context, js jetstream.JetStream) error {
	cons, err := bus.Consumer(ctx, js, bus.StreamJobs, bus.StepAudio)
	if err != nil {
		return fmt.Errorf("audio: %w", err)
	}
	w := &bus.Worker[*backbeatv1.AudioJob]{
		Step:    bus.StepAudio,
		New:     func() *backbeatv1.AudioJob { return &backbeatv1.AudioJob{} },
		Handle:  s.Handle,
		Pub:     s.pub,
		Log:     s.base,
		Policy:  s.cfg.Policy,
		Name:    s.cfg.Name,
		Metrics: s.met,
	}
	s.log.Info("audio worker started", zap.Int("concurrency", s.cfg.Concurrency))
	return w.Run(ctx, cons, s.cfg.Concurrency)
}
