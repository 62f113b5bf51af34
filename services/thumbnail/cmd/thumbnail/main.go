// Command thumbnail picks a representative frame of each ready video and
// writes it full size and centre-cropped square; see package thumbnail.
package main

import (
	"context"
	"os"

	"github.com/backbeat/backbeat/pkg/boot"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/services/thumbnail"
)

func main() {
	boot.Main("thumbnail", func(ctx context.Context, p *boot.Process) (func(context.Context) error, error) {
		cfg := thumbnail.Config{
			Frames:      p.Env.Int("THUMBNAIL_FRAMES", thumbnail.DefaultFrames),
			TempDir:     p.Env.String("THUMBNAIL_TEMP_DIR", ""),
			Concurrency: p.Env.Int("THUMBNAIL_CONCURRENCY", 1),
			WorkerName:  p.Env.String("WORKER_NAME", os.Getenv("HOSTNAME")),
			Policy:      p.Topo.Policy(bus.StepThumbnail),
		}
		if err := media.Available(); err != nil {
			return nil, err
		}
		svc, err := thumbnail.New(cfg, thumbnail.Deps{Store: p.Blob, Runs: p.Runs, Pub: p.Pub, Log: p.Log, Metrics: p.Metrics})
		if err != nil {
			return nil, err
		}
		p.HTTP.AddCheck("ffmpeg", func(context.Context) error { return media.Available() })
		return func(ctx context.Context) error { return svc.Run(ctx, p.JS) }, nil
	})
}
