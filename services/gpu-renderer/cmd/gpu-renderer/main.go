// Command gpu-renderer renders the videos of one pool (BACKBEAT_RENDER_POOL):
// templates drawn from the audio analysis, streamed into ffmpeg; see package
// renderer.
package main

import (
	"context"

	"github.com/backbeat/backbeat/pkg/boot"
	"github.com/backbeat/backbeat/pkg/media"
	renderer "github.com/backbeat/backbeat/services/gpu-renderer"
)

func main() {
	boot.Main("gpu-renderer", func(ctx context.Context, p *boot.Process) (func(context.Context) error, error) {
		// Unset variables stay zero: renderer.Config holds the defaults.
		cfg := renderer.Config{
			Pool:        p.Env.String("RENDER_POOL", ""),
			Concurrency: p.Env.Int("RENDER_CONCURRENCY", 0),
			TempDir:     p.Env.String("RENDER_TEMP_DIR", ""),
			TemplateDir: p.Env.String("RENDER_TEMPLATE_DIR", ""),
		}
		if err := media.Available(); err != nil {
			return nil, err
		}
		svc, err := renderer.New(cfg, p.Deps())
		if err != nil {
			return nil, err
		}
		p.HTTP.AddCheck("ffmpeg", func(context.Context) error { return media.Available() })
		return func(ctx context.Context) error { return svc.Run(ctx, p.JS) }, nil
	})
}
