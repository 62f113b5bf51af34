// Package boot wires what every Backbeat service process shares: the
// environment, the JSON logger, NATS and the topology check, object storage, the
// /healthz, /readyz, /metrics server, and the tracer provider (pkg/tracing:
// spans always, exported over OTLP when the environment names a collector).
// A service's main only adds its own part.
package boot

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/config"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/telemetry"
	"github.com/backbeat/backbeat/pkg/tracing"
)

// Process is one running service's shared parts.
type Process struct {
	Name    string
	Env     *config.Env
	Common  config.Common
	Log     *zap.Logger
	NC      *nats.Conn
	JS      jetstream.JetStream
	Topo    bus.Topology
	Pub     *bus.Publisher
	Runs    *bus.Runs
	Blob    blob.Store
	HTTP    *telemetry.Server
	Metrics *bus.Metrics
	// Tracer is the service's tracer provider, also Pub's (so every worker
	// and router on Pub makes its spans with it) and the global one.
	Tracer trace.TracerProvider
	// tracing is flushed and shut down by Serve on exit.
	tracing *tracing.Providers
}

// Start reads the common configuration, connects, checks the topology and
// binds the HTTP server. Service-specific settings are read from p.Env by the
// caller before calling p.Env.Err().
func Start(ctx context.Context, name string) (*Process, error) {
	env := config.NewEnv("BACKBEAT_")
	common := config.LoadCommon(env)
	if err := env.Err(); err != nil {
		return nil, err
	}
	log, err := logging.New(name, common.LogLevel)
	if err != nil {
		return nil, err
	}
	nc, js, err := bus.Connect(common.NATSURL, bus.Credentials{User: common.NATSUser, Password: common.NATSPassword,
		CredsFile: common.NATSCreds}, name, log)
	if err != nil {
		return nil, err
	}
	// The topology is provisioned once by `backbeat provision`; a service
	// only checks that what it uses exists (its NATS user may not change it).
	topo := bus.DefaultTopology(common.Prefix, common.Pools)
	topo.Replicas = common.Replicas
	drift, err := topo.Check(ctx, js, name)
	if err != nil {
		nc.Close()
		return nil, err
	}
	for _, d := range drift {
		log.Warn("topology differs from this build; run `backbeat provision`", zap.String("item", d))
	}
	runs, err := bus.OpenRuns(ctx, js)
	if err != nil {
		nc.Close()
		return nil, err
	}
	store, err := blob.Open(ctx, common.BlobURL)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("object storage: %w", err)
	}
	tel := telemetry.New(name, log)
	tel.AddCheck("nats", bus.Ready(nc, js))
	tel.AddCheck("blob", store.Ping)
	if err := tel.Listen(common.HTTPAddr); err != nil {
		nc.Close()
		return nil, err
	}
	if common.OpsAddr != "" {
		if err := tel.ListenOps(common.OpsAddr); err != nil {
			nc.Close()
			return nil, err
		}
	}
	traces, tp, err := tracing.Setup(ctx, name, log)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Process{Name: name, Env: env, Common: common, Log: log, NC: nc, JS: js, Topo: topo,
		Pub: bus.NewPublisher(js, topo.Subjects, bus.WithTracerProvider(tp)), Runs: runs, Blob: store, HTTP: tel,
		Metrics: bus.NewMetrics(tel.Registry), Tracer: tp, tracing: traces}, nil
}

// Deps are the dependencies of a worker service, for its New: the replica
// name is BACKBEAT_WORKER_NAME (default: the host name, see bus.Deps).
func (p *Process) Deps() bus.Deps {
	return bus.Deps{Blob: p.Blob, Pub: p.Pub, Runs: p.Runs, Topo: p.Topo, Log: p.Log, Metrics: p.Metrics,
		Name: p.Env.String("WORKER_NAME", "")}.WithDefaults()
}

// Serve serves HTTP and runs the service until ctx is done, then drains NATS
// and flushes the spans not yet exported (ShutdownTimeout at most).
func (p *Process) Serve(ctx context.Context, run func(ctx context.Context) error) error {
	go func() { _ = p.HTTP.Serve(ctx) }()
	p.Log.Info("started", zap.String("addr", p.HTTP.Addr()))
	err := run(ctx)
	_ = p.NC.Drain()
	if p.tracing != nil {
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		if terr := p.tracing.Shutdown(sctx); terr != nil {
			p.Log.Warn("traces not flushed", zap.Error(terr))
		}
		cancel()
	}
	p.Log.Info("stopped", zap.Error(err))
	return err
}

// ShutdownTimeout bounds how long Serve waits, on exit, for the last spans
// to reach the collector.
var ShutdownTimeout = 5 * time.Second

// Main runs a service with a context cancelled by SIGINT/SIGTERM and exits
// non-zero on error. It is the whole body of a service's main().
func Main(name string, wire func(ctx context.Context, p *Process) (func(ctx context.Context) error, error)) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := func() error {
		p, err := Start(ctx, name)
		if err != nil {
			return err
		}
		run, err := wire(ctx, p)
		if err != nil {
			return err
		}
		if err := p.Env.Err(); err != nil {
			return err
		}
		return p.Serve(ctx, run)
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
