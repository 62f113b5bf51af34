// Package telemetry gives every service the same operational surface:
// /healthz (the process is alive), /readyz (its dependencies answer) and
// /metrics (Prometheus), on one mux the service may add its own routes to,
// and optionally on a separate operations port (ListenOps) so that a public
// Service in front of the main port never exposes /metrics.
package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Check reports whether one dependency is usable; nil means ready.
type Check func(ctx context.Context) error

// Server is a service's HTTP surface.
type Server struct {
	Mux      *http.ServeMux
	Registry *prometheus.Registry
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request line and headers, and IdleTimeout how long a keep-alive
	// connection may wait for its next request; without them a client that
	// connects and goes quiet holds a connection and a goroutine for good.
	// New sets DefaultReadHeaderTimeout and DefaultIdleTimeout; a service
	// that faces the Internet (the API) may change them before Serve.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	log               *zap.Logger

	mu     sync.Mutex
	checks map[string]Check
	srv    *http.Server
	ln     net.Listener
	// ops serves /healthz, /readyz and /metrics on opsLn when ListenOps
	// was called; the main mux then answers /metrics with 404.
	ops   *http.ServeMux
	opsLn net.Listener
}

// Defaults of Server's connection timeouts.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
)

// New builds the mux with the three standard routes and a registry holding
// the Go and process collectors.
func New(service string, log *zap.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{Mux: http.NewServeMux(), ops: http.NewServeMux(), Registry: reg, log: log, checks: map[string]Check{},
		ReadHeaderTimeout: DefaultReadHeaderTimeout, IdleTimeout: DefaultIdleTimeout}
	healthz := func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": service})
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	for _, m := range []*http.ServeMux{s.Mux, s.ops} {
		m.HandleFunc("GET /healthz", healthz)
		m.HandleFunc("GET /readyz", s.readyz)
	}
	s.ops.Handle("GET /metrics", metrics)
	s.Mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.opsLn != nil {
			http.NotFound(w, r) // served on the operations port only
			return
		}
		metrics.ServeHTTP(w, r)
	})
	return s
}

// AddCheck registers a readiness check under name.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	out := map[string]string{}
	code := http.StatusOK
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			out[n] = err.Error()
			code = http.StatusServiceUnavailable
		} else {
			out[n] = "ok"
		}
	}
	writeJSON(w, code, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Listen binds addr (":0" picks a port) without serving yet.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	s.ln = ln
	return nil
}

// ListenOps binds the operations port: /healthz, /readyz and /metrics are
// served there, and the main port stops serving /metrics. Call it before
// Serve.
func (s *Server) ListenOps(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen ops %s: %w", addr, err)
	}
	s.opsLn = ln
	return nil
}

// OpsAddr is the bound operations address, after ListenOps ("" without).
func (s *Server) OpsAddr() string {
	if s.opsLn == nil {
		return ""
	}
	return s.opsLn.Addr().String()
}

// Addr is the bound address, after Listen.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// HTTPServer is the http.Server that Serve runs: the mux with the
// connection timeouts. Tests that serve the mux on an httptest server use it
// as the server's Config, so they run under the same timeouts.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{Handler: s.Mux, ReadHeaderTimeout: s.ReadHeaderTimeout, IdleTimeout: s.IdleTimeout}
}

// Serve serves until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("telemetry: Serve before Listen")
	}
	s.srv = s.HTTPServer()
	errc := make(chan error, 2)
	go func() { errc <- s.srv.Serve(s.ln) }()
	if s.opsLn != nil {
		ops := &http.Server{Handler: s.ops, ReadHeaderTimeout: s.ReadHeaderTimeout, IdleTimeout: s.IdleTimeout}
		go func() { errc <- ops.Serve(s.opsLn) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = ops.Shutdown(sctx)
		}()
	}
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
		return nil
	}
}
