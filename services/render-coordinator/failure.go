package coordinator

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/alert"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// onStepFailed decides what a failed step means for its run: a render moves
// to the next pool while attempts remain; audio and permanent render failures
// end the run with a refund; cdn failures still make the video ready;
// thumbnail and notify failures are recorded and alerted only.
func (s *Service) onStepFailed(ctx context.Context, m *backbeatv1.StepFailed) error {
	log := s.logFor(ctx)
	if m.RunId == "" {
		// An undecodable message: nobody can say which run it belonged to.
		s.alert.Send(alert.Alert{Kind: "message_rejected", VideoID: m.VideoId, Step: m.Step, Reason: m.Reason})
		return nil
	}
	switch m.Step {
	case bus.StepCDN:
		return s.ready(ctx, m.VideoId, m.RunId, "", "purge failed: "+m.Reason)
	case bus.StepThumbnail, bus.StepNotify:
		s.alert.Send(alert.Alert{Kind: "step_failed", VideoID: m.VideoId, RunID: m.RunId, Step: m.Step, Reason: m.Reason})
		return s.endAfterReady(ctx, m.VideoId, m.RunId, m.Step, "", m.Reason)
	case bus.StepRender:
		return s.renderFailed(ctx, m)
	}
	reason := fmt.Sprintf("%s failed: %s", m.Step, m.Reason)
	changed, run, err := s.apply(ctx, m.VideoId, m.RunId, func(tx repoTx, run *store.Run) error {
		if m.Step == bus.StepAudio && run.Stage != store.StageAudio {
			return errNoChange
		}
		_, err := s.finish(tx, run, TFail, reason, s.now())
		return err
	}, nil)
	if changed {
		log.Warn("run failed", zap.String("reason", reason))
		s.alert.Send(alert.Alert{Kind: "run_failed", VideoID: run.VideoID, RunID: run.ID, Step: m.Step, Reason: reason})
	}
	return err
}

// renderFailed retries a render on the next pool of the bundle, or ends the
// run when the error is permanent or the attempts are spent.
func (s *Service) renderFailed(ctx context.Context, m *backbeatv1.StepFailed) error {
	var (
		retried bool
		reason  string
	)
	changed, run, err := s.apply(ctx, m.VideoId, m.RunId, func(tx repoTx, run *store.Run) error {
		if run.Stage != store.StageRender || run.Attempt != m.Attempt || run.Status != store.StatusProcessing {
			return errNoChange
		}
		now := s.now()
		b := s.bundle(run.Bundle)
		by := bus.ReportOf(ctx)
		if by.Worker == "" {
			by.Worker = m.Worker
		}
		if err := endStepBy(tx, run.ID, bus.StepRender, run.Attempt, "", m.Reason, now, by); err != nil {
			return err
		}
		if !m.Permanent && run.Attempt < b.Attempts() {
			next := run.Attempt + 1
			_, err := s.advance(tx, run, TRenderRetry, map[string]any{
				"attempt": next, "pool": b.PoolFor(next), "render_started_at": now,
			})
			if err != nil {
				return err
			}
			retried = true
			return startStep(tx, *run, bus.StepRender, next, run.Pool, now)
		}
		reason = fmt.Sprintf("render failed on attempt %d (%s pool): %s", run.Attempt, run.Pool, m.Reason)
		if !m.Permanent {
			reason = fmt.Sprintf("render failed after %d attempts; last on the %s pool: %s", run.Attempt, run.Pool, m.Reason)
		}
		_, err := s.finish(tx, run, TFail, reason, now)
		return err
	}, func(r store.Run) bool {
		return r.Status == store.StatusProcessing && r.Stage == store.StageRender && r.Attempt == m.Attempt+1
	})
	if changed && retried {
		s.logFor(ctx).Warn("render retried on the next pool", zap.Int32("attempt", run.Attempt), zap.String("pool", run.Pool), zap.String("cause", m.Reason))
	} else if changed {
		s.alert.Send(alert.Alert{Kind: "run_failed", VideoID: run.VideoID, RunID: run.ID, Step: bus.StepRender, Reason: reason})
	}
	return err
}

// onCancel cancels the run it names and refunds it. A cancel names its run
// (the API puts in the run it saw): handled after a newer create, it must
// not cancel the newer run. Nothing of an unfinished run is public, so there
// is nothing to take down.
func (s *Service) onCancel(ctx context.Context, m *backbeatv1.VideoCancel) error {
	if err := ids.ValidateVideoID(m.VideoId); err != nil {
		return bus.Permanent(err)
	}
	if !s.commandApplies(ctx, "cancel", m.RunId) {
		return nil
	}
	reason := "cancelled"
	if m.Reason != "" {
		reason = "cancelled: " + m.Reason
	}
	changed, run, err := s.apply(ctx, m.VideoId, m.RunId, func(tx repoTx, run *store.Run) error {
		_, err := s.finish(tx, run, TCancel, reason, s.now())
		return err
	}, func(r store.Run) bool { return r.Status == store.StatusCancelled })
	if changed {
		s.logFor(ctx).Info("run cancelled", zap.String("cancelled_run_id", run.ID))
	}
	return err
}

// onRecover resumes the stalled run it names where it stalled: a render as
// a new attempt on the bundle's pool for that attempt, audio and cdn by
// publishing their job again.
func (s *Service) onRecover(ctx context.Context, m *backbeatv1.VideoRecover) error {
	if err := ids.ValidateVideoID(m.VideoId); err != nil {
		return bus.Permanent(err)
	}
	if !s.commandApplies(ctx, "recover", m.RunId) {
		return nil
	}
	changed, run, err := s.apply(ctx, m.VideoId, m.RunId, func(tx repoTx, run *store.Run) error {
		now := s.now()
		if run.Status != store.StatusStalled {
			return errNoChange
		}
		if run.Stage != store.StageRender {
			t := TRecoverAudio
			if run.Stage == store.StageCDN {
				t = TRecoverCDN
			}
			if _, err := s.advance(tx, run, t, map[string]any{"reason": ""}); err != nil {
				return err
			}
			return instantStep(tx, *run, "recovered", fmt.Sprintf("%s job published again", run.Stage), "", now)
		}
		b := s.bundle(run.Bundle)
		next := run.Attempt + 1
		_, err := s.advance(tx, run, TRecoverRender, map[string]any{
			"attempt": next, "pool": b.PoolFor(next), "render_started_at": now, "reason": "",
		})
		if err != nil {
			return err
		}
		if err := instantStep(tx, *run, "recovered", fmt.Sprintf("requeued as attempt %d on %s", next, run.Pool), "", now); err != nil {
			return err
		}
		return startStep(tx, *run, bus.StepRender, next, run.Pool, now)
	}, nil)
	if changed {
		s.logFor(ctx).Info("stalled run resumed", zap.String("stage", string(run.Stage)), zap.Int32("attempt", run.Attempt))
	}
	return err
}

// commandApplies says whether an app's or operator's command is acted on: it
// must name its run, and a replayed one never is (replaying a history must
// not cancel or requeue the run in flight now).
func (s *Service) commandApplies(ctx context.Context, what, runID string) bool {
	switch {
	case isReplay(ctx):
		s.logFor(ctx).Info(what + " replayed: ignored, a replay never changes a run")
		return false
	case runID == "":
		s.logFor(ctx).Warn(what + " names no run: ignored (the API names the run it saw)")
		return false
	}
	return true
}

func (s *Service) alertStep(run store.Run, step, reason string) {
	s.alert.Send(alert.Alert{Kind: "step_failed", VideoID: run.VideoID, RunID: run.ID, Step: step, Reason: reason})
}
