// Command audio runs one audio worker: it crops and converts the tracks of
// AudioJobs, writes their analysis and publishes audio.done, serving
// /healthz, /readyz and /metrics on HTTP_ADDR.
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
	"github.com/backbeat/backbeat/services/audio"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "audio:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	env := config.NewEnv("BACKBEAT_")
	common := config.LoadCommon(env)
	cfg := audio.Config{
		AllowHosts:     env.List("AUDIO_ALLOW_HOSTS", nil),
		WorkDir:        env.String("AUDIO_WORK_DIR", os.TempDir()),
		MaxSourceBytes: int64(env.Int("AUDIO_MAX_SOURCE_MB", 200)) << 20,
		FetchTimeout:   env.Duration("AUDIO_FETCH_TIMEOUT", 0),
		Concurrency:    env.Int("AUDIO_CONCURRENCY", 2),
		Name:           env.String("WORKER_NAME", os.Getenv("HOSTNAME")),
	}
	if err := env.Err(); err != nil {
		return err
	}
	log, err := logging.New("audio", common.LogLevel)
	if err != nil {
		return err
	}
	nc, js, err := bus.Connect(common.NATSURL, common.NATSCreds, "audio", log)
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
	tel := telemetry.New("audio", log)
	cfg.Policy = topo.Policy(bus.StepAudio)
	svc, err := audio.New(cfg, audio.Deps{Blob: store, Pub: bus.NewPublisher(js, topo.Subjects), Runs: runs,
		Log: log, Metrics: bus.NewMetrics(tel.Registry)})
	if err != nil {
		return err
	}
	tel.AddCheck("nats", bus.Ready(nc, js))
	tel.AddCheck("blob", store.Ping)
	tel.AddCheck("ffmpeg", func(context.Context) error { return media.Available() })
	if err := tel.Listen(common.HTTPAddr); err != nil {
		return err
	}
	go func() { _ = tel.Serve(ctx) }()
	log.Info("audio started", zap.String("addr", tel.Addr()))
	return svc.Run(ctx, js)
}
