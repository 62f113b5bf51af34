package cdn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// Config configures one cdn replica: its edge cache and the purge worker.
type Config struct {
	// Edge sizes the disk cache.
	Edge EdgeConfig
	// PublicBaseURL is where the public objects are served from (the external
	// CDN's host, or this edge's), used to build the URLs an external CDN purges.
	PublicBaseURL string
	// ExternalPurgeURL, when set, receives POST {"files": [urls]} per job.
	ExternalPurgeURL string
	// ExternalPurgeToken is sent as "Authorization: Bearer <token>".
	ExternalPurgeToken string
	// ExternalPurgeTimeout bounds one call to the external CDN.
	ExternalPurgeTimeout time.Duration
	// ExternalPurgeRetryDelays are the pauses before each retry of a
	// transient external failure; their count is the number of retries.
	ExternalPurgeRetryDelays []time.Duration
	// Concurrency is how many purge jobs one replica handles at once.
	Concurrency int
	// Purges is the KV bucket every edge watches (bus.BucketPurges).
	Purges jetstream.KeyValue
	// HTTPClient calls the external CDN; nil means a default client.
	HTTPClient *http.Client
}

func (c *Config) defaults() {
	if c.Edge.CacheDir == "" {
		c.Edge.CacheDir = "./.data/edge-cache"
	}
	if c.ExternalPurgeTimeout == 0 {
		c.ExternalPurgeTimeout = 10 * time.Second
	}
	if c.ExternalPurgeRetryDelays == nil {
		c.ExternalPurgeRetryDelays = []time.Duration{250 * time.Millisecond, time.Second}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
}

func (c Config) validate() error {
	var errs []error
	if c.ExternalPurgeURL != "" {
		if u, err := url.Parse(c.ExternalPurgeURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("cdn: external purge URL %q is not an http(s) URL", c.ExternalPurgeURL))
		}
		if c.PublicBaseURL == "" {
			errs = append(errs, errors.New("cdn: public base URL is required to purge an external CDN"))
		}
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("cdn: concurrency must be at least 1"))
	}
	if c.Purges == nil {
		errs = append(errs, errors.New("cdn: the purges bucket is required"))
	}
	return errors.Join(errs...)
}

// Service is one cdn replica: an edge (serve with Edge()) and a purge worker.
type Service struct {
	cfg      Config
	edge     *Edge
	external *externalPurger
	step     *bus.Step[*backbeatv1.CdnJob, *backbeatv1.CdnDone]
}

// New validates the configuration and dependencies (Blob, read by the edge;
// Pub, Runs) and prepares the edge cache. Its main and `backbeat dev` both
// build the service here, so every default is the one of Config.
func New(cfg Config, deps bus.Deps) (*Service, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := deps.Require(bus.StepCDN, true); err != nil {
		return nil, err
	}
	deps = deps.WithDefaults()
	edge, err := NewEdge(cfg.Edge, deps.Blob, deps.Log)
	if err != nil {
		return nil, err
	}
	edge.metrics = deps.Metrics
	s := &Service{cfg: cfg, edge: edge}
	if cfg.ExternalPurgeURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{}
		}
		s.external = &externalPurger{
			endpoint: cfg.ExternalPurgeURL, token: cfg.ExternalPurgeToken, baseURL: cfg.PublicBaseURL,
			client: client, timeout: cfg.ExternalPurgeTimeout, delays: cfg.ExternalPurgeRetryDelays,
		}
	}
	// No run guard: purging is idempotent and always safe, and the purge
	// that follows a cancel belongs to a run that is, by then, not current.
	s.step = &bus.Step[*backbeatv1.CdnJob, *backbeatv1.CdnDone]{
		Name: bus.StepCDN, Done: bus.KindCDNDone, Unguarded: true, Work: s.purge, Deps: deps,
	}
	return s, nil
}

// Edge is the replica's HTTP handler for public objects.
func (s *Service) Edge() *Edge { return s.edge }

// Handle purges the paths of a CdnJob on every edge (through the purges
// bucket) and on the external CDN, then publishes CdnDone. Purge failures are
// recorded in CdnDone.errors and never returned: a stale cache must not fail
// a video that rendered. Only a job that cannot even be reported (bad video
// id) is permanent, and only a failure to publish CdnDone is retried. Jobs of
// runs that are no longer current are purged too: their bytes must go.
func (s *Service) Handle(ctx context.Context, job *backbeatv1.CdnJob) error {
	return s.step.Handle(ctx, job)
}

// purge purges the paths of a job and returns the event to publish.
func (s *Service) purge(ctx context.Context, job *backbeatv1.CdnJob) (*backbeatv1.CdnDone, error) {
	vid, run := job.GetVideoId(), job.GetRunId()
	log := bus.Logger(ctx, nil)

	done := &backbeatv1.CdnDone{VideoId: vid, RunId: run}
	paths := make([]string, 0, len(job.GetPaths()))
	for _, p := range job.GetPaths() {
		key := strings.TrimPrefix(p, "/")
		if err := keys.ValidKey(key); err != nil {
			done.Errors = append(done.Errors, fmt.Sprintf("path %q: %v", p, err))
			continue
		}
		paths = append(paths, key)
	}
	rec, err := PurgeRecord{RunID: run, At: time.Now().UTC()}.Encode()
	if err != nil {
		return nil, fmt.Errorf("purge record: %w", err)
	}
	for _, key := range paths {
		if _, err := s.cfg.Purges.Put(ctx, key, rec); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("purge %s: %w", key, err)
			}
			done.Errors = append(done.Errors, fmt.Sprintf("edge purge %s: %v", key, err))
			continue
		}
		done.PurgedPaths = append(done.PurgedPaths, key)
	}
	if s.external != nil && len(paths) > 0 {
		if err := s.external.purge(ctx, paths); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			done.Errors = append(done.Errors, err.Error())
		}
	}
	for _, e := range done.Errors {
		log.Warn("purge failed; the video is not affected", zap.String("error", e))
	}

	log.Info("paths purged", zap.Strings("paths", done.PurgedPaths), zap.Int("errors", len(done.Errors)))
	return done, nil
}

// Run consumes CdnJobs and watches the purges bucket until ctx is done.
func (s *Service) Run(ctx context.Context, js jetstream.JetStream) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.edge.WatchPurges(gctx, s.cfg.Purges) })
	g.Go(func() error { return s.step.Run(gctx, js, s.cfg.Concurrency) })
	if err := g.Wait(); err != nil {
		return fmt.Errorf("cdn: %w", err)
	}
	return nil
}
