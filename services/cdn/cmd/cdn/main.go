// Command cdn runs one edge replica: it serves public objects on HTTP_ADDR
// (beside /healthz, /readyz, /metrics), watches the purges bucket and
// handles CdnJobs; see package cdn.
package main

import (
	"context"

	"github.com/backbeat/backbeat/pkg/boot"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/services/cdn"
)

func main() {
	boot.Main("cdn", func(ctx context.Context, p *boot.Process) (func(context.Context) error, error) {
		purges, err := bus.KV(ctx, p.JS, bus.BucketPurges)
		if err != nil {
			return nil, err
		}
		// Unset variables stay zero: cdn.Config holds the defaults.
		cfg := cdn.Config{
			Edge: cdn.EdgeConfig{
				CacheDir:      p.Env.String("CDN_CACHE_DIR", ""),
				CacheMaxBytes: int64(p.Env.Int("CDN_CACHE_MAX_MB", 0)) << 20,
			},
			PublicBaseURL:      p.Env.String("CDN_PUBLIC_BASE_URL", ""),
			ExternalPurgeURL:   p.Env.String("CDN_EXTERNAL_PURGE_URL", ""),
			ExternalPurgeToken: p.Env.String("CDN_EXTERNAL_PURGE_TOKEN", ""),
			Concurrency:        p.Env.Int("CDN_CONCURRENCY", 0),
			Purges:             purges,
		}
		svc, err := cdn.New(cfg, p.Deps())
		if err != nil {
			return nil, err
		}
		for _, prefix := range cdn.PublicPrefixes {
			p.HTTP.Mux.Handle("/"+prefix, svc.Edge())
		}
		return func(ctx context.Context) error { return svc.Run(ctx, p.JS) }, nil
	})
}
