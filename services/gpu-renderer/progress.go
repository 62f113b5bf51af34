package renderer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// progressReporter publishes RenderProgress on a timer rather than per frame
// count, so the coordinator's stall detector hears from a slow render (a long
// first frame, a slow encoder) as often as from a fast one.
type progressReporter struct {
	s     *Service
	job   *backbeatv1.RenderJob
	total int64
	done  atomic.Int64
	log   *zap.Logger
}

func newProgressReporter(s *Service, job *backbeatv1.RenderJob, total int64, log *zap.Logger) *progressReporter {
	return &progressReporter{s: s, job: job, total: total, log: log}
}

// set records frames written; Render calls it from its writer goroutine.
func (p *progressReporter) set(done int) { p.done.Store(int64(done)) }

// start publishes 0% at once and then every ProgressInterval until stop,
// which publishes 100% when the render succeeded.
func (p *progressReporter) start(ctx context.Context) (stop func(ok bool)) {
	p.publish(ctx, 0)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.s.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				p.publish(ctx, p.done.Load())
			}
		}
	}()
	return func(ok bool) {
		close(quit)
		wg.Wait()
		if ok {
			p.publish(ctx, p.total)
		}
	}
}

// publish sends one progress message. Failures are logged, never fatal: a
// lost progress message costs nothing the next one does not repair.
func (p *progressReporter) publish(ctx context.Context, done int64) {
	if ctx.Err() != nil {
		return
	}
	pct := 0.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	m := &backbeatv1.RenderProgress{
		VideoId: p.job.GetVideoId(), RunId: p.job.GetRunId(), Attempt: p.job.GetAttempt(),
		FramesDone: done, FramesTotal: p.total, Percent: pct,
		Worker: p.s.cfg.Worker, Pool: p.s.cfg.Pool,
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// No message id: progress is a last-value signal, and a re-run of the same
	// attempt must not have its early values dropped as duplicates.
	if err := p.s.deps.Pub.Publish(pctx, p.s.deps.Pub.Subjects().Progress(p.job.GetVideoId()), m, ""); err != nil {
		p.log.Warn("publish progress failed", zap.Error(err), zap.Int64("frames_done", done))
	}
}
