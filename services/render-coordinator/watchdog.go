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

// watchdog marks renders without progress for StallTimeout as stalled. The
// last progress of a video is the last message on its PROGRESS subject, so
// nothing is written per progress tick.
func (s *Service) watchdog(ctx context.Context) {
	t := time.NewTicker(s.cfg.StallCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.CheckStalls(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("stall check failed", zap.Error(err))
			}
		}
	}
}

// progressMark is the last frame count seen for a render attempt and when it
// was first seen: a renderer that keeps publishing the same count is stuck.
type progressMark struct {
	frames int64
	since  time.Time
}

// CheckStalls runs one pass of the watchdog: a render attempt whose frame
// count has not moved for StallTimeout (or that has reported nothing since it
// was queued) is stalled.
func (s *Service) CheckStalls(ctx context.Context) error {
	var runs []store.Run
	// Every render in flight is looked at, so frame counts are tracked from
	// the start rather than from the first timeout.
	err := s.db.DB.WithContext(ctx).Where("status = ? AND stage = ? AND render_started_at IS NOT NULL",
		store.StatusProcessing, store.StageRender).Find(&runs).Error
	if err != nil {
		return fmt.Errorf("list renders: %w", err)
	}
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	live := map[string]bool{}
	for _, run := range runs {
		key := fmt.Sprintf("%s/%d", run.ID, run.Attempt)
		live[key] = true
		last := *run.RenderStartedAt
		p, at, err := s.progress.Last(ctx, run.VideoID)
		if err != nil {
			return err
		}
		if p != nil && p.RunId == run.ID && p.Attempt == run.Attempt {
			m, ok := s.marks[key]
			if !ok || p.FramesDone != m.frames {
				m = progressMark{frames: p.FramesDone, since: at}
				if ok {
					m.since = s.now()
				}
				s.marks[key] = m
			}
			if m.since.After(last) {
				last = m.since
			}
		}
		idle := s.now().Sub(last)
		if idle < s.cfg.StallTimeout {
			continue
		}
		if err := s.stall(ctx, run, idle); err != nil {
			return err
		}
		delete(s.marks, key)
	}
	for k := range s.marks {
		if !live[k] {
			delete(s.marks, k)
		}
	}
	return nil
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
