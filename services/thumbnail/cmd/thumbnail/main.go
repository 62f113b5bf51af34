// Command thumbnail handles ThumbnailJobs: it picks a representative frame
// of each ready video and writes it full-size and as a centre-cropped square.
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
	"github.com/backbeat/backbeat/services/thumbnail"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "thumbnail:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	env := config.NewEnv("BACKBEAT_")
	common := config.LoadCommon(env)
	cfg := thumbnail.Config{
		Frames:      env.Int("THUMBNAIL_FRAMES", thumbnail.DefaultFrames),
		TempDir:     env.String("THUMBNAIL_TEMP_DIR", ""),
		Concurrency: env.Int("THUMBNAIL_CONCURRENCY", 1),
		WorkerName:  env.String("WORKER_NAME", os.Getenv("HOSTNAME")),
	}
	if err := env.Err(); err != nil {
		return err
	}
	if err := media.Available(); err != nil {
		return err
	}
	log, err := logging.New("thumbnail", common.LogLevel)
	if err != nil {
		return err
	}
	nc, js, err := bus.Connect(common.NATSURL, common.NATSCreds, "thumbnail", log)
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
	tel := telemetry.New("thumbnail", log)
	cfg.Policy = topo.Policy(bus.StepThumbnail)
	svc, err := thumbnail.New(cfg, thumbnail.Deps{Store: store, Runs: runs, Log: log,
		Pub: bus.NewPublisher(js, topo.Subjects), Metrics: bus.NewMetrics(tel.Registry)})
	if err != nil {
		return err
	}
	tel.AddCheck("nats", bus.Ready(nc, js))
	tel.AddCheck("blob", store.Ping)
	if err := tel.Listen(common.HTTPAddr); err != nil {
		return err
	}
	go func() { _ = tel.Serve(ctx) }()
	log.Info("thumbnail started", zap.String("addr", tel.Addr()))
	return svc.Run(ctx, js)
}
