// Package coordinator is Backbeat's render-coordinator: it owns the state of
// every video and run, the credits ledger and the steps timeline, turns events
// into jobs, moves failed renders to the next pool, refunds what fails or is
// cancelled, and marks renders that stop making progress as stalled.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/alert"
	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// Config is the coordinator's behaviour; zero values get defaults in New.
type Config struct {
	// Bundles by name; DefaultBundles() when nil.
	Bundles map[string]Bundle
	// StallTimeout: a render with no progress for this long is stalled.
	StallTimeout time.Duration
	// StallCheckEvery is the watchdog's period (default StallTimeout/4).
	StallCheckEvery time.Duration
	// QueueTimeout: a render no worker has claimed for this long moves to
	// the bundle's next pool (default 5 minutes).
	QueueTimeout time.Duration
	// AudioDeadline, CDNDeadline: a run still in that stage after this long
	// is stalled (defaults 15 and 5 minutes). ThumbnailDeadline: a ready
	// run's thumbnail step still open after this long is closed with an
	// error (default 10 minutes).
	AudioDeadline, CDNDeadline, ThumbnailDeadline time.Duration
	// SweepEvery is how often the effects of every run in flight are
	// derived again (default 10 minutes; also once at start).
	SweepEvery time.Duration
	// EdgeBaseURL prefixes public object keys in the URLs given to users.
	EdgeBaseURL string
	// NotifyWebhook receives the user notifications (optional: log only).
	NotifyWebhook string
	// Concurrency of event handling (default DefaultConcurrency).
	Concurrency int
}

// Publisher publishes a message with a deterministic id; *bus.Publisher in
// production, the simulation's bus in tests.
type Publisher interface {
	Publish(ctx context.Context, subject string, m proto.Message, msgID string) error
	Subjects() bus.Subjects
}

// RunsKV is the runs bucket as the coordinator uses it (*bus.Runs): read
// with the revision, write compare-and-set.
type RunsKV interface {
	GetRevision(ctx context.Context, videoID string) (bus.RunState, uint64, bool, error)
	CompareAndSet(ctx context.Context, videoID string, s bus.RunState, rev uint64) error
}

// ProgressSource returns the last render progress of a video and when it was
// published (*bus.ProgressReader).
type ProgressSource interface {
	Last(ctx context.Context, videoID string) (*backbeatv1.RenderProgress, time.Time, error)
}

// Deps are the parts the coordinator talks to.
type Deps struct {
	Store *store.Store
	Pub   Publisher
	Runs  RunsKV
	Blob  blob.Store
	// Progress is where render progress is read; by default the PROGRESS
	// stream of Pub's JetStream (Pub must then be a *bus.Publisher).
	Progress ProgressSource
	Alerts   *alert.Sender
	Log      *zap.Logger
	Topo     bus.Topology
	Metrics  *bus.Metrics
	// Name identifies this replica in step.failed (bus.Deps.Name: the same
	// BACKBEAT_WORKER_NAME as every worker's).
	Name string
	// Now is the clock (time.Now by default); the simulation drives its own.
	Now func() time.Time
	// NewRunID mints run ids (ids.NewRunID by default).
	NewRunID func() string

	// repo replaces Store's repository (the simulation's memRepo).
	repo repo
}

// Service is the coordinator.
type Service struct {
	cfg   Config
	name  string
	repo  repo
	pub   Publisher
	subj  bus.Subjects
	runs  RunsKV
	blob  blob.Store
	alert *alert.Sender
	log   *zap.Logger
	topo  bus.Topology
	met   *bus.Metrics

	progress ProgressSource
	now      func() time.Time
	newRunID func() string
}

// DefaultConcurrency is how many events the coordinator handles at once.
// An event is a few milliseconds of round trips and a commit; with 16 at
// once Postgres flushes many commits with one fsync, and the pool
// (store.PostgresConns) still has room for the watchdog and the notifier.
const DefaultConcurrency = 16

// DefaultEdgeBaseURL is where `backbeat dev` serves the edge, the default
// base of the URLs given to users.
const DefaultEdgeBaseURL = "http://127.0.0.1:8080"

// New builds the coordinator; a zero field of cfg takes its default here,
// so the service's main and `backbeat dev` share every default.
func New(cfg Config, d Deps) (*Service, error) {
	if (d.Store == nil && d.repo == nil) || d.Pub == nil || d.Runs == nil || d.Blob == nil {
		return nil, errors.New("coordinator: store, publisher, runs and blob are required")
	}
	if cfg.Bundles == nil {
		cfg.Bundles = DefaultBundles()
	}
	for name, b := range cfg.Bundles {
		if err := b.Validate(); err != nil {
			return nil, fmt.Errorf("bundle %s: %w", name, err)
		}
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 2 * time.Minute
	}
	if cfg.StallCheckEvery <= 0 {
		cfg.StallCheckEvery = cfg.StallTimeout / 4
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = 5 * time.Minute
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.AudioDeadline, 15 * time.Minute}, {&cfg.CDNDeadline, 5 * time.Minute}, {&cfg.ThumbnailDeadline, 10 * time.Minute}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 10 * time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.EdgeBaseURL == "" {
		cfg.EdgeBaseURL = DefaultEdgeBaseURL
	}
	cfg.EdgeBaseURL = strings.TrimRight(cfg.EdgeBaseURL, "/")
	log := d.Log
	if log == nil {
		log = zap.NewNop()
	}
	al := d.Alerts
	if al == nil {
		al = alert.New("", log)
	}
	prog := d.Progress
	if prog == nil {
		bp, ok := d.Pub.(*bus.Publisher)
		if !ok {
			return nil, errors.New("coordinator: a progress source is required when the publisher is not a *bus.Publisher")
		}
		prog = bus.NewProgressReader(bp.JetStream(), bp.Subjects())
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	newRunID := d.NewRunID
	if newRunID == nil {
		newRunID = ids.NewRunID
	}
	rp := d.repo
	if rp == nil {
		rp = gormRepo{db: d.Store}
	}
	return &Service{cfg: cfg, name: d.Name, repo: rp, pub: d.Pub, subj: d.Pub.Subjects(),
		progress: prog, runs: d.Runs, blob: d.Blob, now: func() time.Time { return now().UTC() }, newRunID: newRunID,
		alert: al, log: log, topo: d.Topo, met: d.Metrics}, nil
}

// Router returns the EVENTS router with a handler per event kind.
func (s *Service) Router() *bus.Router {
	// Infrastructure errors (a database failover, NATS leader election) are
	// retried for as long as they last, with an alert; they never become a
	// user-facing failure. Only bad input (bus.Permanent) and panics fail.
	r := &bus.Router{Step: bus.ConsumerCoordinator, Pub: s.busPublisher(), Log: s.log,
		Policy: s.topo.Policy(bus.ConsumerCoordinator), Name: s.name, Metrics: s.met,
		OnStuck: func(ctx context.Context, subject string, delivered uint64, err error) {
			s.sendAlert(ctx, alert.Alert{Kind: "event_stuck", VideoID: s.subj.VideoIDOf(subject), Step: "coordinator",
				Reason: fmt.Sprintf("delivery %d still failing: %v", delivered, err)})
		}}
	bus.Route(r, bus.KindVideoCreate, func() *backbeatv1.VideoCreate { return &backbeatv1.VideoCreate{} }, s.onCreate)
	bus.Route(r, bus.KindVideoCancel, func() *backbeatv1.VideoCancel { return &backbeatv1.VideoCancel{} }, s.onCancel)
	bus.Route(r, bus.KindVideoRecover, func() *backbeatv1.VideoRecover { return &backbeatv1.VideoRecover{} }, s.onRecover)
	bus.Route(r, bus.KindAudioDone, func() *backbeatv1.AudioDone { return &backbeatv1.AudioDone{} }, s.onAudioDone)
	bus.Route(r, bus.KindRenderDone, func() *backbeatv1.RenderDone { return &backbeatv1.RenderDone{} }, s.onRenderDone)
	bus.Route(r, bus.KindCDNDone, func() *backbeatv1.CdnDone { return &backbeatv1.CdnDone{} }, s.onCDNDone)
	bus.Route(r, bus.KindThumbnailDone, func() *backbeatv1.ThumbnailDone { return &backbeatv1.ThumbnailDone{} }, s.onThumbnailDone)
	bus.Route(r, bus.KindNotifyDone, func() *backbeatv1.NotifyDone { return &backbeatv1.NotifyDone{} }, s.onNotifyDone)
	bus.Route(r, bus.KindStepFailed, func() *backbeatv1.StepFailed { return &backbeatv1.StepFailed{} }, s.onStepFailed)
	return r
}

// Run consumes EVENTS, runs the notifier, the stall watchdog and the watch
// on exhausted jobs until ctx is done.
func (s *Service) Run(ctx context.Context, js jetstream.JetStream) error {
	if err := s.CheckBundles(ctx); err != nil {
		return err
	}
	cons, err := bus.Consumer(ctx, js, bus.StreamEvents, bus.ConsumerCoordinator)
	if err != nil {
		return err
	}
	notifyCons, err := bus.Consumer(ctx, js, bus.StreamJobs, bus.StepNotify)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(4)
	go func() { defer wg.Done(); errc <- s.Router().Run(ctx, cons, s.cfg.Concurrency) }()
	go func() { defer wg.Done(); errc <- s.notifier().Run(ctx, 2, notifyCons) }()
	go func() { defer wg.Done(); s.watchdog(ctx); errc <- nil }()
	go func() { defer wg.Done(); errc <- s.watchExhausted(ctx, js) }()
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckBundles refuses a bundles configuration that drops a bundle still
// referenced by a user or by a run in flight: those would silently fall back
// to another bundle's pools, priority and price.
func (s *Service) CheckBundles(ctx context.Context) error {
	used, err := s.repo.Auto(ctx).BundlesInUse()
	if err != nil {
		return fmt.Errorf("bundles in use: %w", err)
	}
	var missing []string
	for _, name := range used {
		if _, ok := s.cfg.Bundles[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the bundles configuration drops %q, still used by users or runs in flight: add them back", missing)
	}
	return nil
}

// busPublisher is the publisher as the bus runners need it; nil when the
// coordinator runs on the simulation's bus (which drives handlers itself).
func (s *Service) busPublisher() *bus.Publisher {
	bp, _ := s.pub.(*bus.Publisher)
	return bp
}

// url is the public URL of an object key on the edge.
func (s *Service) url(key string) string {
	if key == "" {
		return ""
	}
	return s.cfg.EdgeBaseURL + "/" + key
}

func (s *Service) logFor(ctx context.Context) *zap.Logger { return bus.Logger(ctx, s.log) }
