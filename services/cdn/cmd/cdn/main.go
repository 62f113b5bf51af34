// Command cdn runs one edge replica: it serves public objects on HTTP_ADDR
// (beside /healthz, /readyz, /metrics), watches the purges bucket and
// handles CdnJobs.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/config"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/telemetry"
	"github.com/backbeat/backbeat/services/cdn"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cdn:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	env := config.NewEnv("BACKBEAT_")
	common := config.LoadCommon(env)
	cfg := cdn.Config{
		Edge:               cdn.EdgeConfig{CacheDir: env.String("CDN_CACHE_DIR", "./.data/edge-cache"), CacheMaxBytes: int64(env.Int("CDN_CACHE_MAX_MB", 10240)) << 20},
		PublicBaseURL:      env.String("CDN_PUBLIC_BASE_URL", ""),
		ExternalPurgeURL:   env.String("CDN_EXTERNAL_PURGE_URL", ""),
		ExternalPurgeToken: env.String("CDN_EXTERNAL_PURGE_TOKEN", ""),
		Concurrency:        env.Int("CDN_CONCURRENCY", 4),
		WorkerName:         env.String("WORKER_NAME", os.Getenv("HOSTNAME")),
	}
	if err := env.Err(); err != nil {
		return err
	}
	log, err := logging.New("cdn", common.LogLevel)
	if err != nil {
		return err
	}
	nc, js, err := bus.Connect(common.NATSURL, common.NATSCreds, "cdn", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	topo := bus.DefaultTopology(common.Prefix, common.Pools)
	topo.Replicas = common.Replicas
	if err := topo.Ensure(ctx, js); err != nil {
		return err
	}
	store, err := blob.Open(ctx, common.BlobURL)
	if err != nil {
		return err
	}
	purges, err := bus.KV(ctx, js, bus.BucketPurges)
	if err != nil {
		return err
	}
	runs, err := bus.OpenRuns(ctx, js)
	if err != nil {
		return err
	}
	tel := telemetry.New("cdn", log)
	cfg.Policy = topo.Policy(bus.StepCDN)
	svc, err := cdn.New(cfg, cdn.Deps{Store: store, Purges: purges, Runs: runs, Log: log,
		Pub: bus.NewPublisher(js, topo.Subjects), Metrics: bus.NewMetrics(tel.Registry)})
	if err != nil {
		return err
	}
	for _, p := range cdn.PublicPrefixes {
		tel.Mux.Handle("/"+p, svc.Edge())
	}
	tel.AddCheck("nats", bus.Ready(nc, js))
	tel.AddCheck("blob", store.Ping)
	if err := tel.Listen(common.HTTPAddr); err != nil {
		return err
	}
	go func() { _ = tel.Serve(ctx) }()
	log.Info("cdn started", zap.String("addr", tel.Addr()))
	return svc.Run(ctx, js)
}
