// Command api is the gateway for apps: uploads, create, cancel, recover and
// status, authenticated by API key; see package api.
package main

import (
	"context"
	"strings"

	"github.com/backbeat/backbeat/pkg/boot"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/services/api"
)

func main() {
	boot.Main("api", func(ctx context.Context, p *boot.Process) (func(context.Context) error, error) {
		cfg := api.Config{
			AdminKey:      p.Env.String("API_ADMIN_KEY", ""),
			MaxAudioBytes: int64(p.Env.Int("API_MAX_AUDIO_BYTES", api.DefaultMaxAudioBytes)),
			MaxCoverBytes: int64(p.Env.Int("API_MAX_COVER_BYTES", api.DefaultMaxCoverBytes)),
			// Uploads are spooled here while they arrive (default os.TempDir()).
			SpoolDir: p.Env.String("API_SPOOL_DIR", ""),
			// Dev setups only: users may recover their own stalled videos.
			OwnersMayRecover: p.Env.Bool("API_OWNERS_MAY_RECOVER", false),
			// The dashboard's pools page shows these pools' JOBS consumers.
			Pools: strings.Split(p.Env.String("BACKBEAT_POOLS", "gpu,cpu"), ","),
		}
		st, err := store.Open(ctx, p.Env.Required("DATABASE_URL"))
		if err != nil {
			return nil, err
		}
		if _, err := api.New(cfg, api.Deps{Store: st, Blob: p.Blob, Pub: p.Pub, JS: p.JS, Log: p.Log, Telemetry: p.HTTP}); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			<-ctx.Done()
			return st.Close()
		}, nil
	})
}
