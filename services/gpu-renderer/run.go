package renderer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// Run serves this instance's pool until ctx is done: it pulls from
// render-<pool>-high, -normal and -low (high first; see fetchOrder), runs at
// most Config.Concurrency renders at once, and waits for them before
// returning. A render cut short by shutdown is nakked for another replica.
func (s *Service) Run(ctx context.Context, js jetstream.JetStream) error {
	cons := make([]jetstream.Consumer, len(bus.Priorities))
	for i, prio := range bus.Priorities {
		c, err := bus.Consumer(ctx, js, bus.StreamJobs, bus.RenderConsumer(s.cfg.Pool, prio))
		if err != nil {
			return fmt.Errorf("render consumers of pool %s: %w", s.cfg.Pool, err)
		}
		cons[i] = c
	}
	w := &bus.Worker[*backbeatv1.RenderJob]{
		Step:   bus.StepRender,
		New:    func() *backbeatv1.RenderJob { return &backbeatv1.RenderJob{} },
		Handle: s.Handle,
		Pub:    s.deps.Pub,
		Log:    s.deps.Log.With(zap.String("pool", s.cfg.Pool)), // the runner adds step
		Policy: s.deps.Policy,
		// A failed render moves to the next pool instead of retrying here.
		Escalate: true,
		Name:     s.cfg.Worker,
		Metrics:  s.deps.Metrics,
	}
	s.log.Info("renderer serving", zap.String("worker", s.cfg.Worker), zap.Int("concurrency", s.cfg.Concurrency))
	slots := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for fetches := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case slots <- struct{}{}:
		}
		msg := s.fetchNext(ctx, cons, fetches)
		fetches++
		if msg == nil {
			<-slots
			sleep(ctx, s.cfg.PollInterval)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			w.Process(ctx, msg)
		}()
	}
}

// fetchOrder is the order the priority consumers are tried on the n-th fetch:
// high, normal, low; but every StarveEvery-th fetch starts from low, so low
// jobs progress even while high ones keep arriving.
func (s *Service) fetchOrder(n int) []int {
	if (n+1)%s.cfg.StarveEvery == 0 {
		return []int{2, 0, 1}
	}
	return []int{0, 1, 2}
}

// fetchNext takes one available message, trying the consumers in priority
// order without waiting; nil when all are empty.
func (s *Service) fetchNext(ctx context.Context, cons []jetstream.Consumer, n int) jetstream.Msg {
	for _, i := range s.fetchOrder(n) {
		if ctx.Err() != nil {
			return nil
		}
		batch, err := cons[i].FetchNoWait(1)
		if err != nil {
			s.log.Warn("fetch failed", zap.String("priority", bus.Priorities[i]), zap.Error(err))
			continue
		}
		for m := range batch.Messages() {
			return m
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
