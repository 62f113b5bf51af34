package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

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
	runs, err := s.repo.Auto(ctx).Runs(runWhere{Status: store.InFlight})
	if err != nil {
		return fmt.Errorf("list runs in flight: %w", err)
	}
	for _, run := range runs {
		rctx, span := s.startRoot(ctx, TriggerSweep, run)
		err := s.emit(rctx, run)
		endSpan(span, err)
		if err != nil {
			return fmt.Errorf("sweep run %s: %w", run.ID, err)
		}
	}
	return nil
}

// CheckStalls runs one pass of the watchdog. Over every render in flight:
//   - a worker has claimed the attempt (its progress names it): when the
//     frame count has not moved for StallTimeout, the run is stalled;
//   - no worker has claimed it for QueueTimeout: it moves to the bundle's
//     next pool, if there is a different one and attempts remain.
//
// The stall clock starts at the claim, not when the job was queued. Then the
// other stages' deadlines (checkDeadlines).
func (s *Service) CheckStalls(ctx context.Context) error {
	runs, err := s.repo.Auto(ctx).Runs(runWhere{Status: processing, Stage: store.StageRender, Rendering: true})
	if err != nil {
		return fmt.Errorf("list renders: %w", err)
	}
	// One video's failure (its progress unreadable, a database error) is
	// reported but does not keep the others, or the deadlines, from being
	// checked.
	var errs []error
	for _, run := range runs {
		if err := s.checkRender(ctx, run); err != nil {
			errs = append(errs, fmt.Errorf("video %s: %w", run.VideoID, err))
		}
	}
	if err := s.checkDeadlines(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkRender is CheckStalls for one render in flight.
func (s *Service) checkRender(ctx context.Context, run store.Run) error {
	p, _, err := s.progress.Last(ctx, run.VideoID)
	if err != nil {
		return err
	}
	now := s.now()
	claimed := p != nil && p.RunId == run.ID && p.Attempt == run.Attempt
	if !claimed && run.ProgressAttempt != run.Attempt {
		if now.Sub(*run.RenderStartedAt) >= s.cfg.QueueTimeout {
			return s.moveQueued(ctx, run, now.Sub(*run.RenderStartedAt))
		}
		return nil
	}
	frames := run.ProgressFrames
	if claimed {
		frames = p.FramesDone
	}
	if run.ProgressAttempt != run.Attempt || frames != run.ProgressFrames || run.ProgressAt == nil {
		attempt := run.Attempt
		_, err := s.repo.Auto(ctx).UpdateRuns(runWhere{ID: run.ID, Attempt: &attempt, Status: processing, Stage: store.StageRender},
			map[string]any{"progress_attempt": run.Attempt, "progress_frames": frames, "progress_at": now})
		if err != nil {
			return fmt.Errorf("mark progress of %s: %w", run.ID, err)
		}
		return nil
	}
	if idle := now.Sub(*run.ProgressAt); idle >= s.cfg.StallTimeout {
		reason := fmt.Sprintf("no render progress for %s on the %s pool (attempt %d)", idle.Round(time.Second), run.Pool, run.Attempt)
		return s.stall(ctx, run, TStallRender, reason)
	}
	return nil
}

// moveQueued moves a render attempt nobody claimed to the next pool, in a
// new trace (TriggerWatchdog).
func (s *Service) moveQueued(ctx context.Context, run store.Run, waited time.Duration) (err error) {
	b := s.bundle(run.Bundle)
	next := run.Attempt + 1
	if next > b.Attempts() || b.PoolFor(next) == run.Pool {
		return nil // nowhere else to go: it keeps its place in the queue
	}
	ctx, span := s.startRoot(ctx, TriggerWatchdog, run)
	defer func() { endSpan(span, err) }()
	attempt := run.Attempt
	changed, r, err := s.apply(ctx, run.VideoID, run.ID, func(tx repoTx, r *store.Run) error {
		if r.Attempt != attempt || r.ProgressAttempt == attempt {
			return errNoChange
		}
		now := s.now()
		why := fmt.Sprintf("no %s worker took it in %s; moved to the %s pool", r.Pool, waited.Round(time.Second), b.PoolFor(next))
		if err := endStep(tx, r.ID, bus.StepRender, attempt, "", why, now); err != nil {
			return err
		}
		_, err := s.advance(tx, r, TQueueMove, map[string]any{
			"attempt": next, "pool": b.PoolFor(next), "render_started_at": now,
		})
		if err != nil {
			return err
		}
		return startStep(tx, *r, bus.StepRender, next, r.Pool, now)
	}, nil)
	if changed {
		s.logFor(ctx).Warn("render moved to the next pool after waiting in its queue", zap.String("video_id", r.VideoID),
			zap.String("run_id", r.ID), zap.Int32("attempt", r.Attempt), zap.String("pool", r.Pool))
	}
	return err
}

// stall marks a run that stopped moving in its stage as stalled: held, not
// refunded, its worker stopped by the runs KV, an operator alerted; `backbeat
// recover` resumes it. It is a new trace (TriggerWatchdog).
func (s *Service) stall(ctx context.Context, run store.Run, t Transition, reason string) (err error) {
	ctx, span := s.startRoot(ctx, TriggerWatchdog, run)
	defer func() { endSpan(span, err) }()
	attempt := run.Attempt
	changed, r, err := s.apply(ctx, run.VideoID, run.ID, func(tx repoTx, r *store.Run) error {
		if r.Attempt != attempt {
			return errNoChange
		}
		if _, err := s.advance(tx, r, t, map[string]any{"reason": reason}); err != nil {
			return err
		}
		step, stepAttempt := string(r.Stage), int32(0)
		if r.Stage == store.StageRender {
			stepAttempt = attempt
		}
		return endStep(tx, r.ID, step, stepAttempt, "", "stalled: "+reason, s.now())
	}, nil)
	if changed {
		s.met.Stalled(string(r.Stage), r.Pool)
		s.logFor(ctx).Warn("run stalled", zap.String("video_id", r.VideoID), zap.String("run_id", r.ID), zap.String("reason", reason))
		s.sendAlert(ctx, alert.Alert{Kind: "run_stalled", VideoID: r.VideoID, RunID: r.ID, Step: string(r.Stage), Reason: reason})
	}
	return err
}

// checkDeadlines stalls runs whose audio or cdn job was published longer
// than the stage's deadline ago (a worker hung on the job keeps it heartbeated forever), and
// closes, with an error and an alert, the thumbnail steps of ready runs that
// never ended.
func (s *Service) checkDeadlines(ctx context.Context) error {
	now := s.now()
	for _, d := range []struct {
		t     Transition
		limit time.Duration
	}{{TStallAudio, s.cfg.AudioDeadline}, {TStallCDN, s.cfg.CDNDeadline}} {
		runs, err := s.repo.Auto(ctx).Runs(runWhere{Status: d.t.From, Stage: d.t.Stage, JobBefore: now.Add(-d.limit)})
		if err != nil {
			return fmt.Errorf("list runs in stage %s: %w", d.t.Stage, err)
		}
		for _, run := range runs {
			reason := fmt.Sprintf("the %s job did not end in %s", run.Stage, now.Sub(*run.JobAt).Round(time.Second))
			if err := s.stall(ctx, run, d.t, reason); err != nil {
				return err
			}
		}
	}
	steps, err := s.repo.Auto(ctx).OpenSteps(bus.StepThumbnail, now.Add(-s.cfg.ThumbnailDeadline))
	if err != nil {
		return fmt.Errorf("list thumbnail steps: %w", err)
	}
	for _, st := range steps {
		reason := fmt.Sprintf("no thumbnails in %s", now.Sub(st.StartedAt).Round(time.Second))
		sctx, span := s.startRootOf(ctx, TriggerWatchdog, st.VideoID, st.RunID)
		err := endStep(s.repo.Auto(sctx), st.RunID, bus.StepThumbnail, 0, "", reason, now)
		endSpan(span, err)
		if err != nil {
			return err
		}
		s.sendAlert(sctx, alert.Alert{Kind: "step_failed", VideoID: st.VideoID, RunID: st.RunID, Step: bus.StepThumbnail, Reason: reason})
	}
	return nil
}
