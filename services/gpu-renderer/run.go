package renderer

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backbeat/backbeat/pkg/bus"
)

// Run serves this instance's pool until ctx is done: it pulls from
// render-<pool>-high, -normal and -low, in that priority order (see
// bus.FetchOrder), runs at most Config.Concurrency renders at once, and waits
// for them before returning. A render cut short by shutdown is nakked for
// another replica.
func (s *Service) Run(ctx context.Context, js jetstream.JetStream) error {
	durables := make([]string, len(bus.Priorities))
	for i, prio := range bus.Priorities {
		durables[i] = bus.RenderConsumer(s.cfg.Pool, prio)
	}
	return s.step.Run(ctx, js, s.cfg.Concurrency, durables...)
}
