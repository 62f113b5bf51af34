// Command gpu-renderer renders the video jobs of one pool: it pulls
// render-<pool>-high|normal|low, streams frames into ffmpeg (NVENC where a GPU
// answers, libx264 otherwise) and serves /healthz, /readyz and /metrics.
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
	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/pkg/telemetry"
	renderer "github.com/backbeat/backbeat/services/gpu-renderer"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gpu-renderer:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	env := config.NewEnv("BACKBEAT_")
	common := config.LoadCommon(env)
	cfg := renderer.Config{
		Pool:        env.String("RENDER_POOL", "cpu"),
		Worker:      env.String("WORKER_NAME", os.Getenv("HOSTNAME")),
		Concurrency: env.Int("RENDER_CONCURRENCY", 1),
		TempDir:     env.String("RENDER_TEMP_DIR", ""),
		TemplateDir: env.String("RENDER_TEMPLATE_DIR", ""),
	}
	if err := env.Err(); err != nil {
		return err
	}
	log, err := logging.New("gpu-renderer", common.LogLevel)
	if err != nil {
		return err
	}
	if err := media.Available(); err != nil {
		return err
	}
	nc, js, err := bus.Connect(common.NATSURL, common.NATSCreds, "gpu-renderer", log)
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
	runs, err := bus.OpenRuns(ctx, js)
	if err != nil {
		return err
	}
	tel := telemetry.New("gpu-renderer", log)
	svc, err := renderer.New(cfg, renderer.Deps{Blob: store, Pub: bus.NewPublisher(js, topo.Subjects), Runs: runs,
		Log: log, Policy: topo.Policy(bus.StepRender), Metrics: bus.NewMetrics(tel.Registry)})
	if err != nil {
		return err
	}
	tel.AddCheck("nats", bus.Ready(nc, js))
	tel.AddCheck("blob", store.Ping)
	if err := tel.Listen(common.HTTPAddr); err != nil {
		return err
	}
	go func() { _ = tel.Serve(ctx) }()
	log.Info("gpu-renderer started", zap.String("addr", tel.Addr()), zap.String("pool", cfg.Pool))
	return svc.Run(ctx, js)
}
