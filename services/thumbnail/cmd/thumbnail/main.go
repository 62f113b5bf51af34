// Command thumbnail picks a representative frame of each ready video and
// writes it full size and centre-cropped square; see package thumbnail.
package main

import (
	"context"

	"github.com/backbeat/backbeat/pkg/boot"
	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/services/thumbnail"
)

func main() {
	boot.Main("thumbnail", func(ctx context.Context, p *boot.Process) (func(context.Context) error, error) {
		// Unset variables stay zero: thumbnail.Config holds the defaults.
		cfg := thumbnail.Config{
			Frames:      p.Env.Int("THUMBNAIL_FRAMES", 0),
			TempDir:     p.Env.String("THUMBNAIL_TEMP_DIR", ""),
			Concurrency: p.Env.Int("THUMBNAIL_CONCURRENCY", 0),
		}
		if err := media.Available(); err != nil {
			return nil, err
		}
		svc, err := thumbnail.New(cfg, p.Deps())
		if err != nil {
			return nil, err
		}
		p.HTTP.AddCheck("ffmpeg", func(context.Context) error { return media.Available() })
		return func(ctx context.Context) error { return svc.Run(ctx, p.JS) }, nil
	})
}
