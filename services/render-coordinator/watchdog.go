package coordinator

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"gorm.io/gorm"

	"github.com/backbeat/backbeat/pkg/alert"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
)

// watchdog marks renders without progress for StallTimeout as stalled, moves
// renders that wait too long in a queue to the next pool, and periodically
// re-derives the effects of every run in flight (Sweep). The last progress of
// a video is the last message on its PROGRESS subject; the marks it leaves
// are persisted on the run, so a restart does not reset a stall clock.
func (s *Service) watchdog(ctx context.Context) {
	if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("sweep on start failed", zap.Error(err))
	}
	t := time.NewTicker(s.cfg.StallCheckEvery)
	defer t.Stop()
	lastSweep := s.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.CheckStalls(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("stall check failed", zap.Error(err))
			}
			if s.now().Sub(lastSweep) >= s.cfg.SweepEvery {
				lastSweep = s.now()
				if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("sweep failed", zap.Error(err))
				}
			}
		}
	}
}

// Sweep re-derives the effects (runs-KV entry, job) of every run in flight,
// as a redelivered event would. Messages lost outside the coordinator's
// control (a job deleted by hand, a stream restored from an old snapshot)
// are published again; ids are deterministic, so within the duplicate window
// this publishes nothing new.
func (s *Service) Sweep(ctx context.Context) error {
	var runs []store.Run
	err := s.db.DB.WithContext(ctx).Where("status IN ?", store.InFlight).Order("id").Find(&runs).Error
	if err != nil {
		return fmt.Errorf("list runs in flight: %w", err)
	}
	for _, run := range runs {
		if err := s.emit(ctx, run); err != nil {
			return fmt.Errorf("sweep run %s: %w", run.ID, err)
		}
	}
	return nil
}

// CheckStalls runs one pass of the watchdog over every render in flight:
//   - a worker has claimed the attempt (its progress names it): when the
//     frame count has not moved for StallTimeout, the run is stalled;
//   - no worker has claimed it for QueueTimeout: it moves to the bundle's
//     next pool, if there is a different one and attempts remain.
//
// The stall clock starts at the claim, not when the job was queued.
func (s *Service) CheckStalls(ctx context.Context) error {
	var runs []store.Run
	err := s.db.DB.WithContext(ctx).Where("status = ? AND stage = ? AND render_started_at IS NOT NULL",
		store.StatusProcessing, store.StageRender).Order("id").Find(&runs).Error
	if err != nil {
		return fmt.Errorf("list renders: %w", err)
	}
	for _, run := range runs {
		p, _, err := s.progress.Last(ctx, run.VideoID)
		if err != nil {
			return err
		}
		now := s.now()
		claimed := p != nil && p.RunId == run.ID && p.Attempt == run.Attempt
		if !claimed && run.ProgressAttempt != run.Attempt {
			if now.Sub(*run.RenderStartedAt) >= s.cfg.QueueTimeout {
				if err := s.moveQueued(ctx, run, now.Sub(*run.RenderStartedAt)); err != nil {
					return err
				}
			}
			continue
		}
		frames := run.ProgressFrames
		if claimed {
			frames = p.FramesDone
		}
		if run.ProgressAttempt != run.Attempt || frames != run.ProgressFrames || run.ProgressAt == nil {
			err := s.db.DB.WithContext(ctx).Model(&store.Run{}).
				Where("id = ? AND attempt = ? AND status = ? AND stage = ?", run.ID, run.Attempt, store.StatusProcessing, store.StageRender).
				Updates(map[string]any{"progress_attempt": run.Attempt, "progress_frames": frames, "progress_at": now}).Error
			if err != nil {
				return fmt.Errorf("mark progress of %s: %w", run.ID, err)
			}
			continue
		}
		if idle := now.Sub(*run.ProgressAt); idle >= s.cfg.StallTimeout {
			if err := s.stall(ctx, run, idle); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveQueued moves a render attempt nobody claimed to the next pool.
func (s *Service) moveQueued(ctx context.Context, run store.Run, waited time.Duration) error {
	b := s.bundle(run.Bundle)
	next := run.Attempt + 1
	if next > b.Attempts() || b.PoolFor(next) == run.Pool {
		return nil // nowhere else to go: it keeps its place in the queue
	}
	attempt := run.Attempt
	changed, r, err := s.apply(ctx, run.VideoID, run.ID, func(tx *gorm.DB, r *store.Run) error {
		if r.Attempt != attempt || r.ProgressAttempt == attempt {
			return errNoChange
		}
		now := s.now()
		why := fmt.Sprintf("no %s worker took it in %s; moved to the %s pool", r.Pool, waited.Round(time.Second), b.PoolFor(next))
		if err := endStep(tx, r.ID, bus.StepRender, attempt, "", why, now); err != nil {
			return err
		}
		err := advance(tx, r, []string{store.StatusProcessing}, store.StageRender, map[string]any{
			"attempt": next, "pool": b.PoolFor(next), "render_started_at": now,
		})
		if err != nil {
			return err
		}
		return startStep(tx, *r, bus.StepRender, next, r.Pool, now)
	}, nil)
	if changed {
		s.log.Warn("render moved to the next pool after waiting in its queue", zap.String("video_id", r.VideoID),
			zap.String("run_id", r.ID), zap.Int32("attempt", r.Attempt), zap.String("pool", r.Pool))
	}
	return err
}

func (s *Service) stall(ctx context.Context, run store.Run, idle time.Duration) error {
	reason := fmt.Sprintf("no render progress for %s on the %s pool (attempt %d)", idle.Round(time.Second), run.Pool, run.Attempt)
	attempt := run.Attempt
	changed, r, err := s.apply(ctx, run.VideoID, run.ID, func(tx *gorm.DB, r *store.Run) error {
		if r.Attempt != attempt {
			return errNoChange
		}
		now := s.now()
		err := advance(tx, r, []string{store.StatusProcessing}, store.StageRender, map[string]any{
			"status": store.StatusStalled, "reason": reason,
		})
		if err != nil {
			return err
		}
		return endStep(tx, r.ID, bus.StepRender, attempt, "", "stalled: "+reason, now)
	}, nil)
	if changed {
		s.log.Warn("render stalled", zap.String("video_id", r.VideoID), zap.String("run_id", r.ID), zap.String("reason", reason))
		s.alert.Send(alert.Alert{Kind: "run_stalled", VideoID: r.VideoID, RunID: r.ID, Step: bus.StepRender, Reason: reason})
	}
	return err
}
