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

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
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
	// Policy is the cdn consumer's delivery policy.
	Policy bus.Policy
	// WorkerName identifies this replica in StepFailed events.
	WorkerName string
}

func (c *Config) defaults() {
	if c.ExternalPurgeTimeout == 0 {
		c.ExternalPurgeTimeout = 10 * time.Second
	}
	if c.ExternalPurgeRetryDelays == nil {
		c.ExternalPurgeRetryDelays = []time.Duration{250 * time.Millisecond, time.Second}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.Policy.AckWait == 0 {
		c.Policy = bus.DefaultTopology(bus.DefaultPrefix, nil).Policy(bus.StepCDN)
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
	return errors.Join(errs...)
}

// Deps are what the service talks to.
type Deps struct {
	// Store is read by the edge.
	Store blob.Store
	// Purges is the KV bucket every edge watches.
	Purges jetstream.KeyValue
	// Runs lets a job of a superseded run be dropped.
	Runs *bus.Runs
	// Pub publishes CdnDone (and StepFailed through the worker).
	Pub *bus.Publisher
	// Log is the service logger.
	Log *zap.Logger
	// HTTPClient calls the external CDN; nil means a default client.
	HTTPClient *http.Client
	// Metrics, when set, counts job outcomes.
	Metrics *bus.Metrics
}

// Service is one cdn replica: an edge (serve with Edge()) and a purge worker.
type Service struct {
	cfg      Config
	deps     Deps
	log      *zap.Logger
	edge     *Edge
	external *externalPurger
}

// New validates the configuration and prepares the edge cache.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Purges == nil || deps.Runs == nil || deps.Pub == nil {
		return nil, errors.New("cdn: Purges, Runs and Pub are required")
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	edge, err := NewEdge(cfg.Edge, deps.Store, deps.Log)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, deps: deps, log: deps.Log, edge: edge}
	if cfg.ExternalPurgeURL != "" {
		client := deps.HTTPClient
		if client == nil {
			client = &http.Client{}
		}
		s.external = &externalPurger{
			endpoint: cfg.ExternalPurgeURL, token: cfg.ExternalPurgeToken, baseURL: cfg.PublicBaseURL,
			client: client, timeout: cfg.ExternalPurgeTimeout, delays: cfg.ExternalPurgeRetryDelays,
		}
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
	vid, run := job.GetVideoId(), job.GetRunId()
	if err := ids.ValidateVideoID(vid); err != nil {
		return bus.Permanent(fmt.Errorf("cdn job: %w", err))
	}
	// No run guard: purging is idempotent and always safe, and the purge
	// that follows a cancel belongs to a run that is, by then, not current.
	gctx := ctx
	log := bus.Logger(ctx, s.log.With(zap.String("video_id", vid), zap.String("run_id", run), zap.String("step", bus.StepCDN)))

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
		return err
	}
	for _, key := range paths {
		if _, err := s.deps.Purges.Put(gctx, key, rec); err != nil {
			if gctx.Err() != nil {
				return bus.Cause(gctx, fmt.Errorf("purge %s: %w", key, err))
			}
			done.Errors = append(done.Errors, fmt.Sprintf("edge purge %s: %v", key, err))
			continue
		}
		done.PurgedPaths = append(done.PurgedPaths, key)
	}
	if s.external != nil && len(paths) > 0 {
		if err := s.external.purge(gctx, paths); err != nil {
			if gctx.Err() != nil {
				return bus.Cause(gctx, err)
			}
			done.Errors = append(done.Errors, err.Error())
		}
	}
	for _, e := range done.Errors {
		log.Warn("purge failed; the video is not affected", zap.String("error", e))
	}

	subj := s.deps.Pub.Subjects().Event(vid, bus.KindCDNDone)
	if err := s.deps.Pub.Publish(gctx, subj, done, bus.MsgID(run, bus.StepCDN, 0, bus.KindCDNDone)); err != nil {
		return bus.Cause(gctx, fmt.Errorf("publish cdn done: %w", err))
	}
	log.Info("paths purged", zap.Strings("paths", done.PurgedPaths), zap.Int("errors", len(done.Errors)))
	return nil
}

// Run consumes CdnJobs and watches the purges bucket until ctx is done.
func (s *Service) Run(ctx context.Context, js jetstream.JetStream) error {
	cons, err := bus.Consumer(ctx, js, bus.StreamJobs, bus.StepCDN)
	if err != nil {
		return err
	}
	w := &bus.Worker[*backbeatv1.CdnJob]{
		Step:    bus.StepCDN,
		New:     func() *backbeatv1.CdnJob { return &backbeatv1.CdnJob{} },
		Handle:  s.Handle,
		Pub:     s.deps.Pub,
		Log:     s.log,
		Policy:  s.cfg.Policy,
		Name:    s.cfg.WorkerName,
		Metrics: s.deps.Metrics,
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.edge.WatchPurges(gctx, s.deps.Purges) })
	g.Go(func() error { return w.Run(gctx, cons, s.cfg.Concurrency) })
	if err := g.Wait(); err != nil {
		return fmt.Errorf("cdn: %w", err)
	}
	return nil
}
