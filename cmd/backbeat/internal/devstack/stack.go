package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/alert"
	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/telemetry"
	"github.com/backbeat/backbeat/pkg/tracing"
	"github.com/backbeat/backbeat/services/api"
	renderer "github.com/backbeat/backbeat/services/gpu-renderer"
	coordinator "github.com/backbeat/backbeat/services/render-coordinator"
)

// Options configure a stack; zero values are the `backbeat dev` defaults.
type Options struct {
	// Dir holds NATS data, the SQLite database and the blob folder.
	Dir string
	// NATSPort of the embedded server; -1 picks a free port.
	NATSPort int
	// HTTPAddr serves the API and the edge.
	HTTPAddr string
	// DatabaseURL overrides the SQLite database (e.g. Postgres in tests).
	DatabaseURL string
	// Blob overrides the local blob folder (e.g. MinIO in tests).
	Blob blob.Store
	// Pools get one renderer each.
	Pools []string
	// Bundles override the coordinator's defaults.
	Bundles map[string]coordinator.Bundle
	// StallTimeout of the coordinator's watchdog (0: the coordinator's default).
	StallTimeout time.Duration
	// AlertWebhook receives alerts.
	AlertWebhook string
	// Renderer adjusts a pool's renderer config (tests inject faults here).
	Renderer func(pool string, cfg *renderer.Config)
	// Policies override delivery policies per step (tests shorten them).
	Policies map[string]bus.Policy
	// Log receives every service's JSON logs. It must not carry a
	// "service" field (logging.NewRoot): the stack adds one per service.
	Log *zap.Logger
	// APIKey for the dev user; read from Dir/api-key or minted when empty.
	APIKey string
	// AdminKey is the operators' key (the dashboard's login, the admin
	// endpoints); read from Dir/admin-key or minted when empty.
	AdminKey string
	// NATSURL, when set, is a NATS server the stack uses instead of
	// embedding one (tests run the shipped nats.conf this way).
	NATSURL string
	// Users, when set, connects every service as its own NATS user, keyed by
	// bus.Service* name, and provisions the topology as Users["admin"];
	// unset, everything shares one unauthenticated connection.
	Users map[string]bus.Credentials
	// DevBalance and DevBundle of the seeded dev user.
	DevBalance int64
	DevBundle  string
	// Spans, when set, receives every service's ended spans (tests record
	// them with tracetest.NewSpanRecorder); unset, the environment's
	// processor (tracing.EnvProcessor: OTLP/HTTP when
	// OTEL_EXPORTER_OTLP_ENDPOINT or …_TRACES_ENDPOINT is set, else none).
	// Each service has its own tracer provider naming it (service.name).
	Spans sdktrace.SpanProcessor
	// GCPercent, when not 0, is the GOGC Start gives this process
	// (debug.SetGCPercent) unless the environment sets GOGC; `backbeat dev`
	// passes DevGCPercent.
	GCPercent int
}

// DevGCPercent is the GOGC of `backbeat dev`. Its heap is every service's
// at once, about 21 MB live during a 1080x1080 render, and it allocates
// slowly (about 1 MB/s). With Go's 100 the heap grows to twice the live
// size between collections, 42 MB; with 10 it stays near 24 MB, for 23
// collections per 30 s video instead of 3: 0.2 s more CPU beside the
// encoder's 24 (docs/benchmarks.md, "Pipeline: memory of the dev stack").
const DevGCPercent = 10

// DevUser is the user the dev stack seeds.
const DevUser = "dev"

// Stack is every Backbeat service running in one process.
type Stack struct {
	Opts        Options
	NATS        *server.Server
	NC          *nats.Conn
	JS          jetstream.JetStream
	Topo        bus.Topology
	Store       *store.Store
	Blob        blob.Store
	Coordinator *coordinator.Service
	// BaseURL serves the API (/v1/…) and the edge (/videos/…, /thumbnails/…).
	BaseURL string
	APIKey  string
	// AdminKey logs an operator into BaseURL/dashboard.
	AdminKey string
	// Health maps each service to the base URL of its /healthz, /readyz, /metrics.
	Health map[string]string

	log    *zap.Logger
	alerts *alert.Sender
	traces *tracing.Providers
	// tracers holds each service's provider, made once (a renderer that
	// restarts keeps its own).
	tracers map[string]trace.TracerProvider
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	svcs    map[string]*running
	wg      sync.WaitGroup
	conns   map[string]*conn
}

// conn is one service's NATS connection and what is built on it (pub is
// the service's own, set by connFor).
type conn struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	pub  *bus.Publisher
	runs *bus.Runs
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (o *Options) defaults() {
	if o.Dir == "" {
		o.Dir = ".data/dev"
	}
	if o.NATSPort == 0 {
		o.NATSPort = 4222
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:8080"
	}
	if o.DatabaseURL == "" {
		o.DatabaseURL = "sqlite://" + filepath.Join(o.Dir, "backbeat.db")
	}
	if len(o.Pools) == 0 {
		o.Pools = []string{"gpu", "cpu"}
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.DevBalance == 0 {
		o.DevBalance = 1000
	}
	if o.DevBundle == "" {
		o.DevBundle = "pro"
	}
}

// Start brings up NATS, the database, storage and every service.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	opts.defaults()
	if opts.GCPercent != 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(opts.GCPercent)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	s := &Stack{Opts: opts, log: opts.Log, svcs: map[string]*running{}, Health: map[string]string{},
		conns: map[string]*conn{}, tracers: map[string]trace.TracerProvider{}}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	spans := opts.Spans
	if spans == nil {
		if spans, err = tracing.EnvProcessor(ctx); err != nil {
			return nil, err
		}
		if spans != nil {
			s.logger("backbeat-dev").Info("traces exported over OTLP/HTTP")
		}
	}
	tracing.LogErrors(s.logger("backbeat-dev"))
	s.traces = tracing.NewProviders(spans)
	if err := s.startNATS(); err != nil {
		return nil, err
	}
	s.Topo = bus.DefaultTopology(bus.DefaultPrefix, opts.Pools)
	for k, p := range opts.Policies {
		s.Topo.Policies[k] = p
	}
	if err := s.Topo.Ensure(ctx, s.JS); err != nil {
		return nil, err
	}
	if s.Store, err = store.Open(ctx, opts.DatabaseURL); err != nil {
		return nil, err
	}
	s.Blob = opts.Blob
	if s.Blob == nil {
		if s.Blob, err = blob.NewLocal(filepath.Join(opts.Dir, "blob")); err != nil {
			return nil, err
		}
	}
	if err := s.seed(ctx); err != nil {
		return nil, err
	}
	s.alerts = alert.New(opts.AlertWebhook, opts.Log.With(zap.String("service", "render-coordinator")))
	if err := s.startServices(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Stack) startNATS() error {
	if s.Opts.NATSURL != "" {
		var err error
		s.NC, s.JS, err = bus.Connect(s.Opts.NATSURL, s.Opts.Users["admin"], "backbeat-dev", s.logger("backbeat-dev"))
		return err
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "backbeat-dev", Host: "127.0.0.1", Port: s.Opts.NATSPort, JetStream: true,
		StoreDir: filepath.Join(s.Opts.Dir, "nats"), NoLog: true, NoSigs: true,
	})
	if err != nil {
		return fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return errors.New("embedded nats-server not ready after 15s")
	}
	s.NATS = ns
	s.NC, err = nats.Connect(ns.ClientURL(), nats.Name("backbeat-dev"))
	if err != nil {
		return fmt.Errorf("connect embedded nats: %w", err)
	}
	s.JS, err = jetstream.New(s.NC)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

// seed creates the dev user and its API key, and the operators' admin key.
func (s *Stack) seed(ctx context.Context) error {
	if err := s.Store.UpsertUser(ctx, store.User{ID: DevUser, Balance: s.Opts.DevBalance, Bundle: s.Opts.DevBundle}); err != nil {
		return err
	}
	key, err := s.keyFile("api-key", s.Opts.APIKey)
	if err != nil {
		return err
	}
	if err := api.AddAPIKey(ctx, s.Store, DevUser, "dev", key); err != nil {
		return err
	}
	if s.AdminKey, err = s.keyFile("admin-key", s.Opts.AdminKey); err != nil {
		return err
	}
	s.APIKey = key
	return nil
}

// keyFile returns key, else the key kept in Dir/name, else a new one, and
// keeps it there (0600) so it survives restarts.
func (s *Stack) keyFile(name, key string) (string, error) {
	path := filepath.Join(s.Opts.Dir, name)
	if key == "" {
		if b, err := os.ReadFile(path); err == nil {
			key = strings.TrimSpace(string(b))
		}
	}
	if key == "" {
		key = api.NewKey()
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return key, nil
}

// Stop stops every service, then NATS.
func (s *Stack) Stop() {
	s.cancel()
	s.wg.Wait()
	if s.alerts != nil {
		s.alerts.Close()
	}
	for _, c := range s.conns {
		c.nc.Close()
	}
	if s.NC != nil {
		s.NC.Close()
	}
	if s.NATS != nil {
		s.NATS.Shutdown()
		s.NATS.WaitForShutdown()
	}
	if s.Store != nil {
		_ = s.Store.Close()
	}
	if s.traces != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.traces.Shutdown(ctx); err != nil {
			s.logger("backbeat-dev").Warn("traces not flushed", zap.Error(err))
		}
		cancel()
	}
}

// tracerFor is the tracer provider of one service of the stack.
func (s *Stack) tracerFor(service string) trace.TracerProvider {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := s.tracers[service]
	if tp == nil {
		tp = s.traces.For(service)
		s.tracers[service] = tp
	}
	return tp
}

// logger returns the shared logger tagged with a service name.
func (s *Stack) logger(name string) *zap.Logger { return s.log.With(zap.String("service", name)) }

// spawn runs a service loop under its own cancel, so tests can stop one
// service (a renderer that "dies") while the rest go on.
func (s *Stack) spawn(name string, run func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(s.ctx)
	r := &running{cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.svcs[name] = r
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		if err := run(ctx); err != nil && ctx.Err() == nil {
			s.logger(name).Error("service stopped with an error", zap.Error(err))
		}
	}()
}

// StopService stops one service loop and waits for it to leave.
func (s *Stack) StopService(name string) {
	s.mu.Lock()
	r := s.svcs[name]
	delete(s.svcs, name)
	s.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

// connFor returns the NATS connection of a service (its own user's when
// Options.Users names one, else the stack's shared one) with a publisher of
// its own, whose spans name the service.
func (s *Stack) connFor(ctx context.Context, service string) (*conn, error) {
	base, err := s.natsFor(ctx, service)
	if err != nil {
		return nil, err
	}
	c := *base
	c.pub = bus.NewPublisher(c.js, s.Topo.Subjects, bus.WithTracerProvider(s.tracerFor(service)))
	return &c, nil
}

// natsFor is connFor's connection, made once per NATS user.
func (s *Stack) natsFor(ctx context.Context, service string) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := service
	cr, own := s.Opts.Users[service]
	if !own {
		key = ""
	}
	if c := s.conns[key]; c != nil {
		return c, nil
	}
	c := &conn{nc: s.NC, js: s.JS}
	if own {
		var err error
		if c.nc, c.js, err = bus.Connect(s.Opts.NATSURL, cr, service, s.logger(service)); err != nil {
			return nil, err
		}
		if _, err := s.Topo.Check(ctx, c.js, service); err != nil {
			c.nc.Close()
			return nil, err
		}
	}
	runs, err := bus.OpenRuns(ctx, c.js)
	if err != nil {
		if own {
			c.nc.Close()
		}
		return nil, err
	}
	c.runs = runs
	s.conns[key] = c
	return c, nil
}

// telemetryFor starts a service's own /healthz, /readyz, /metrics server.
func (s *Stack) telemetryFor(name string) (*telemetry.Server, error) {
	tel := telemetry.New(name, s.logger(name))
	tel.AddCheck("nats", bus.Ready(s.NC, s.JS))
	tel.AddCheck("blob", s.Blob.Ping)
	if err := tel.Listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	s.Health[name] = "http://" + tel.Addr()
	s.spawn(name+"-http", tel.Serve)
	return tel, nil
}
