// Package audio is the audio step of Backbeat: it takes an AudioJob, fetches
// the track, crops the chosen region, writes the AAC for muxing, the MP3 for
// download and the per-frame analysis the renderer draws from under the run's
// private keys (keys.RunKey), and publishes audio.done. The work itself (Convert, Analyze) runs on local files and is
// testable without NATS; Handle adds the bus around it.
package audio

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
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
	// HTTP fetches URL sources; nil builds one that refuses private addresses.
	HTTP *http.Client
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
	return c
}

// Service handles AudioJobs.
type Service struct {
	cfg  Config
	blob blob.Store
	http *http.Client
	step *bus.Step[*backbeatv1.AudioJob, *backbeatv1.AudioDone]
}

// New checks the dependencies (Blob, Pub, Runs) and ffmpeg, and returns the
// service. Its main and `backbeat dev` both build the service here, so every
// default is the one of Config.
func New(cfg Config, deps bus.Deps) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := deps.Require(bus.StepAudio, true); err != nil {
		return nil, err
	}
	if err := media.Available(); err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("audio: work dir: %w", err)
	}
	client := cfg.HTTP
	if client == nil {
		client = newHTTPClient(cfg.AllowHosts, cfg.FetchTimeout)
	}
	s := &Service{cfg: cfg, blob: deps.Blob, http: client}
	s.step = &bus.Step[*backbeatv1.AudioJob, *backbeatv1.AudioDone]{
		Name: bus.StepAudio, Done: bus.KindAudioDone, Work: s.process, Deps: deps,
	}
	return s, nil
}

// Handle processes one AudioJob: nil when audio.done is published, a
// permanent error for bad input, an error wrapping bus.ErrNotCurrent when the
// run stopped being current (ffmpeg is killed within milliseconds), and any
// other error to be retried.
func (s *Service) Handle(ctx context.Context, job *backbeatv1.AudioJob) error {
	return s.step.Handle(ctx, job)
}

// process fetches, converts and uploads, and returns the event to publish.
// The outputs go under the run's private keys (keys.RunKey): the edge never
// serves them, a newer run cannot overwrite them, and the coordinator copies
// the MP3 to its public key only once the run is ready.
func (s *Service) process(ctx context.Context, job *backbeatv1.AudioJob) (*backbeatv1.AudioDone, error) {
	vid, run := job.GetVideoId(), job.GetRunId()
	log := bus.Logger(ctx, nil)
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
	log.Info("audio ready", zap.Float64("duration_seconds", out.Duration),
		zap.Float64("source_duration_seconds", out.SourceDuration))
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
	return s.step.Run(ctx, js, s.cfg.Concurrency)
}
