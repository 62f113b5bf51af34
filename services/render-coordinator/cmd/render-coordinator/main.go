// Command render-coordinator owns the state of videos and runs, the credits
// ledger and the steps timeline; see package coordinator.
package main

import (
	"context"

	"github.com/backbeat/backbeat/pkg/alert"
	"github.com/backbeat/backbeat/pkg/boot"
	"github.com/backbeat/backbeat/pkg/store"
	coordinator "github.com/backbeat/backbeat/services/render-coordinator"
)

func main() {
	boot.Main("render-coordinator", func(ctx context.Context, p *boot.Process) (func(context.Context) error, error) {
		// Unset variables stay zero: coordinator.New holds every default.
		cfg := coordinator.Config{
			StallTimeout:  p.Env.Duration("STALL_TIMEOUT", 0),
			EdgeBaseURL:   p.Env.String("EDGE_BASE_URL", ""),
			NotifyWebhook: p.Env.String("NOTIFY_WEBHOOK", ""),
			Concurrency:   p.Env.Int("COORDINATOR_CONCURRENCY", 0),
		}
		if path := p.Env.String("BUNDLES_FILE", ""); path != "" {
			b, err := coordinator.LoadBundles(path)
			if err != nil {
				return nil, err
			}
			cfg.Bundles = b
		}
		db, err := store.Open(ctx, p.Env.Required("DATABASE_URL"))
		if err != nil {
			return nil, err
		}
		p.HTTP.AddCheck("database", db.Ping)
		alerts := alert.New(p.Env.String("ALERT_WEBHOOK", ""), p.Log)
		svc, err := coordinator.New(cfg, coordinator.Deps{Store: db, Pub: p.Pub, Runs: p.Runs, Blob: p.Blob,
			Alerts: alerts, Log: p.Log, Topo: p.Topo, Metrics: p.Metrics, Name: p.Deps().Name})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			defer alerts.Close()
			return svc.Run(ctx, p.JS)
		}, nil
	})
}
