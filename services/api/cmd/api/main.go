// Command api serves Backbeat's HTTP API: uploads, video creation,
// cancellation and status, with /healthz, /readyz and /metrics beside it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/config"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/services/api"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	env := config.NewEnv("BACKBEAT_")
	common := config.LoadCommon(env)
	dsn := env.Required("DATABASE_URL")
	cfg := api.Config{
		AdminKey:      env.String("API_ADMIN_KEY", ""),
		MaxAudioBytes: int64(env.Int("API_MAX_AUDIO_BYTES", api.DefaultMaxAudioBytes)),
		MaxCoverBytes: int64(env.Int("API_MAX_COVER_BYTES", api.DefaultMaxCoverBytes)),
		// Dev setups only: users may recover their own stalled videos.
		OwnersMayRecover: env.Bool("API_OWNERS_MAY_RECOVER", false),
	}
	if err := env.Err(); err != nil {
		return err
	}
	log, err := logging.New("api", common.LogLevel)
	if err != nil {
		return err
	}
	nc, js, err := bus.Connect(common.NATSURL, common.NATSCreds, "api", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	topo := bus.DefaultTopology(common.Prefix, common.Pools)
	topo.Replicas = common.Replicas
	if err := topo.Ensure(ctx, js); err != nil {
		return err
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	objects, err := blob.Open(ctx, common.BlobURL)
	if err != nil {
		return err
	}
	svc, err := api.New(cfg, api.Deps{Store: st, Blob: objects, Pub: bus.NewPublisher(js, topo.Subjects), JS: js, Log: log})
	if err != nil {
		return err
	}
	return svc.Serve(ctx, common.HTTPAddr)
}
