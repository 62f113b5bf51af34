// Command audio crops and converts the source track of each video and writes
// the per-frame analysis the renderer draws from; see package audio.
package main

import (
	"context"

	"github.com/backbeat/backbeat/pkg/boot"
	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/services/audio"
)

func main() {
	boot.Main("audio", func(ctx context.Context, p *boot.Process) (func(context.Context) error, error) {
		// Unset variables stay zero: audio.Config holds the defaults.
		cfg := audio.Config{
			AllowHosts:     p.Env.List("AUDIO_ALLOW_HOSTS", nil),
			WorkDir:        p.Env.String("AUDIO_WORK_DIR", ""),
			MaxSourceBytes: int64(p.Env.Int("AUDIO_MAX_SOURCE_MB", 0)) << 20,
			FetchTimeout:   p.Env.Duration("AUDIO_FETCH_TIMEOUT", 0),
			Concurrency:    p.Env.Int("AUDIO_CONCURRENCY", 0),
		}
		svc, err := audio.New(cfg, p.Deps())
		if err != nil {
			return nil, err
		}
		p.HTTP.AddCheck("ffmpeg", func(context.Context) error { return media.Available() })
		return func(ctx context.Context) error { return svc.Run(ctx, p.JS) }, nil
	})
}
