// Package api is Backbeat's app-facing HTTP gateway: apps upload a track and a
// cover, ask for a video, cancel it and follow it. It turns requests into
// events on the bus and reads state from the coordinator's database; it never
// changes a video itself, so the coordinator stays the single writer of state.
// Its only writes are API keys, the claim of an unused video id by its first
// upload or create (claims.go: an insert the coordinator's create would make
// anyway) and the body behind each create's request id (idempotency.go).
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/telemetry"
)

// Default upload limits: a long lossless track fits in 100 MiB, a cover in 10.
const (
	DefaultMaxAudioBytes = 100 << 20
	DefaultMaxCoverBytes = 10 << 20
)

// Config is what the API is told by its environment.
type Config struct {
	// AdminKey authenticates operators (user creation, recover). Empty
	// disables the admin endpoints.
	AdminKey string
	// MaxAudioBytes and MaxCoverBytes bound uploads (413 beyond); zero means
	// the defaults.
	MaxAudioBytes int64
	MaxCoverBytes int64
	// OwnersMayRecover lets users recover their own stalled videos, not only
	// operators: for `backbeat dev`, where the dev user is the operator.
	OwnersMayRecover bool
	// RequestTimeout bounds the work of one non-upload request, reading its
	// body included.
	RequestTimeout time.Duration
	// SpoolDir holds uploads while they arrive (see spoolUpload); empty
	// means os.TempDir(). It needs room for MaxAudioBytes per upload in flight.
	SpoolDir string
	// ReadHeaderTimeout and IdleTimeout are the server's connection timeouts
	// (telemetry.Server); zero means the telemetry defaults.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// UploadGrace and UploadMinRate bound how long a client may hold an
	// upload (see paceReader): a body that stops for UploadGrace, or falls
	// behind UploadMinRate bytes/s on average once UploadGrace is spent, is
	// cut off with a 408. Zero means the defaults.
	UploadGrace   time.Duration
	UploadMinRate int64
	// Pools are the render pools whose JOBS consumers the dashboard's pools
	// page shows (BACKBEAT_POOLS).
	Pools []string
}

func (c *Config) setDefaults() {
	if c.MaxAudioBytes == 0 {
		c.MaxAudioBytes = DefaultMaxAudioBytes
	}
	if c.MaxCoverBytes == 0 {
		c.MaxCoverBytes = DefaultMaxCoverBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 15 * time.Second
	}
	if c.SpoolDir == "" {
		c.SpoolDir = os.TempDir()
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = telemetry.DefaultReadHeaderTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = telemetry.DefaultIdleTimeout
	}
	if c.UploadGrace == 0 {
		c.UploadGrace = DefaultUploadGrace
	}
	if c.UploadMinRate == 0 {
		c.UploadMinRate = DefaultUploadMinRate
	}
}

func (c Config) validate() error {
	if c.AdminKey != "" && len(c.AdminKey) < 16 {
		return errors.New("api: admin key must be at least 16 characters")
	}
	if c.MaxAudioBytes < 0 || c.MaxCoverBytes < 0 {
		return errors.New("api: upload limits must not be negative")
	}
	for _, p := range c.Pools {
		if !poolRE.MatchString(p) {
			return fmt.Errorf("api: %q is not a pool name", p)
		}
	}
	if c.RequestTimeout < 0 || c.ReadHeaderTimeout < 0 || c.IdleTimeout < 0 || c.UploadGrace < 0 || c.UploadMinRate < 0 {
		return errors.New("api: timeouts and the upload rate must not be negative")
	}
	return nil
}

// Deps are the parts the API talks to.
type Deps struct {
	Store *store.Store
	Blob  blob.Store
	Pub   *bus.Publisher
	// JS reads the PROGRESS stream; defaults to Pub.JetStream().
	JS  jetstream.JetStream
	Log *zap.Logger
	// Telemetry is the mux the routes are mounted on; New makes one when nil.
	Telemetry *telemetry.Server
}

// Service is the HTTP gateway.
type Service struct {
	cfg      Config
	store    *store.Store
	blob     blob.Store
	pub      *bus.Publisher
	js       jetstream.JetStream
	log      *zap.Logger
	tel      *telemetry.Server
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	progress *bus.ProgressReader
	// dash is the operators' dashboard, nil without an admin key.
	dash *dashboard
}

// New checks the configuration, mounts the routes on the telemetry mux, sets
// the telemetry server's connection timeouts and registers the readiness
// checks of the database, NATS and storage.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Blob == nil || deps.Pub == nil {
		return nil, errors.New("api: Store, Blob and Pub are required")
	}
	if deps.JS == nil {
		deps.JS = deps.Pub.JetStream()
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	if deps.Telemetry == nil {
		deps.Telemetry = telemetry.New("api", deps.Log)
	}
	s := &Service{
		cfg: cfg, store: deps.Store, blob: deps.Blob, pub: deps.Pub, js: deps.JS,
		log: deps.Log, tel: deps.Telemetry,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backbeat_api_requests_total",
			Help: "HTTP API requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backbeat_api_request_duration_seconds",
			Help: "HTTP API request time, from the request to the last byte of the answer, by route.",
			// 1 ms to about 65 s: a status read is milliseconds, an upload minutes.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 17),
		}, []string{"route"}),
	}
	// The API takes requests from the Internet: its server must not let a
	// client hold a connection by sending its headers slowly or by idling.
	s.tel.ReadHeaderTimeout, s.tel.IdleTimeout = cfg.ReadHeaderTimeout, cfg.IdleTimeout
	s.progress = bus.NewProgressReader(deps.JS, deps.Pub.Subjects())
	var err error
	if s.requests, err = register(s.tel.Registry, s.requests); err != nil {
		return nil, err
	}
	if s.latency, err = register(s.tel.Registry, s.latency); err != nil {
		return nil, err
	}
	s.tel.AddCheck("database", s.store.Ping)
	s.tel.AddCheck("blob", s.blob.Ping)
	s.tel.AddCheck("nats", func(ctx context.Context) error {
		if _, err := s.js.AccountInfo(ctx); err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		return nil
	})
	s.routes()
	if err := s.dashboardRoutes(); err != nil {
		return nil, err
	}
	return s, nil
}

// routes mounts every /v1 endpoint; the telemetry routes are already there.
func (s *Service) routes() {
	m := s.tel.Mux
	m.Handle("POST /v1/uploads", s.wrap("upload", false, s.upload))
	m.Handle("POST /v1/videos", s.wrap("create", true, s.createVideo))
	m.Handle("GET /v1/videos/{id}", s.wrap("status", true, s.getVideo))
	m.Handle("POST /v1/videos/{id}/cancel", s.wrap("cancel", true, s.cancelVideo))
	m.Handle("POST /v1/videos/{id}/recover", s.wrap("recover", true, s.recoverVideo))
	m.Handle("GET /v1/me", s.wrap("me", true, s.me))
	m.Handle("POST /v1/admin/users", s.wrap("admin_users", true, s.createUser))
	s.adminRoutes()
}

// Handler serves the API, /healthz, /readyz and /metrics.
func (s *Service) Handler() http.Handler { return s.tel.Mux }

// Serve listens on addr and serves until ctx is done, then drains.
func (s *Service) Serve(ctx context.Context, addr string) error {
	if err := s.tel.Listen(addr); err != nil {
		return err
	}
	s.log.Info("api listening", zap.String("addr", s.tel.Addr()))
	return s.tel.Serve(ctx)
}

// handlerFunc is an endpoint that knows its caller; it returns an error to
// be written as JSON (see httpError) or nil after writing its own response.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

// register registers c on reg, or returns the collector already registered
// under its name (a second API on the same telemetry server).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return c, fmt.Errorf("api: register metrics: %w", err)
		}
		return are.ExistingCollector.(C), nil
	}
	return c, nil
}

// wrap authenticates, bounds the request's time when timed is set (uploads
// run as long as the body takes, at the pace paceReader allows), recovers
// panics, counts and logs. A timed request's body must also arrive within
// RequestTimeout: the context does not interrupt a blocked body read, the
// connection's read deadline does.
//
// Each request is a server span, the root of a new trace (a traceparent the
// client sends is not followed: the API faces the Internet), so a create's
// trace starts here and follows the video through every step. The request's
// context carries the span and a logger with its trace_id and span_id
// (bus.Logger), which its log lines use.
func (s *Service) wrap(route string, timed bool, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		name := r.Pattern
		if name == "" {
			name = r.Method + " " + route
		}
		ctx, span := bus.Tracer(s.pub).Start(r.Context(), name, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", r.Pattern),
				attribute.String("url.path", r.URL.Path), attribute.String("backbeat.route", route)))
		log := s.log.With(logging.TraceFields(ctx)...)
		r = r.WithContext(bus.WithLogger(ctx, log))
		defer func() {
			if p := recover(); p != nil {
				log.Error("api panic", zap.String("route", route), zap.Any("panic", p), zap.Stack("stack"))
				writeError(rec, errorf(http.StatusInternalServerError, "internal error"))
				span.SetStatus(codes.Error, fmt.Sprintf("panic: %v", p))
			}
			span.SetAttributes(attribute.Int("http.response.status_code", rec.code))
			if rec.code >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rec.code))
			}
			span.End()
			s.requests.WithLabelValues(route, fmt.Sprint(rec.code)).Inc()
			s.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
			log.Debug("api request", zap.String("route", route), zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.Int("code", rec.code), zap.Duration("took", time.Since(start)))
		}()
		if timed {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
			err := http.NewResponseController(w).SetReadDeadline(start.Add(s.cfg.RequestTimeout))
			if err != nil && !errors.Is(err, http.ErrNotSupported) {
				log.Warn("set read deadline", zap.String("route", route), zap.Error(err))
			}
		}
		c, err := s.authenticate(r)
		if err == nil {
			err = h(rec, r, c)
		}
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.code >= 500 {
				log.Error("api request failed", zap.String("route", route), zap.String("path", r.URL.Path), zap.Error(err))
				bus.Fail(span, err)
			}
			writeError(rec, err)
		}
	})
}

// statusRecorder remembers the status code for metrics and logs.
type statusRecorder struct {
	http.ResponseWriter
	code    int
	written bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.written {
		r.code, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (read deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.written = true
	return r.ResponseWriter.Write(b)
}
