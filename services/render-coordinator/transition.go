package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/store"
)

// errNoChange says an event found its run in another state: it is
// acknowledged and ignored.
var errNoChange = errors.New("no change")

// advance moves a run from one of the statuses `from` (and stage, when not
// empty) with a conditional update, then mirrors status and reason onto the
// video if the run is still the video's current run. It returns errNoChange
// when the run was not in a state the event applies to.
func advance(tx *gorm.DB, run *store.Run, from []string, stage string, upd map[string]any) error {
	q := tx.Model(&store.Run{}).Where("id = ? AND status IN ?", run.ID, from)
	if stage != "" {
		q = q.Where("stage = ?", stage)
	}
	res := q.Updates(upd)
	if res.Error != nil {
		return fmt.Errorf("update run %s: %w", run.ID, res.Error)
	}
	if res.RowsAffected != 1 {
		return errNoChange
	}
	if err := tx.Where("id = ?", run.ID).First(run).Error; err != nil {
		return fmt.Errorf("reload run %s: %w", run.ID, err)
	}
	vupd := map[string]any{"status": run.Status, "reason": run.Reason}
	if err := tx.Model(&store.Video{}).Where("id = ? AND run_id = ?", run.VideoID, run.ID).Updates(vupd).Error; err != nil {
		return fmt.Errorf("update video %s: %w", run.VideoID, err)
	}
	return nil
}

// finish ends an in-flight run as error or cancelled: refunds its hold (once),
// closes its open steps, records the reason. It reports whether credits moved.
func (s *Service) finish(tx *gorm.DB, run *store.Run, status, reason string, now time.Time) (bool, error) {
	err := advance(tx, run, store.InFlight, "", map[string]any{
		"status": status, "stage": store.StageDone, "reason": truncate(reason, 1000), "finished_at": now,
	})
	if err != nil {
		return false, err
	}
	refunded, err := store.Refund(tx, run.ID)
	if err != nil {
		return false, err
	}
	res := tx.Model(&store.Step{}).Where("run_id = ? AND ended_at IS NULL", run.ID).
		Updates(map[string]any{"ended_at": now, "error": truncate(status+": "+reason, 2000)})
	if res.Error != nil {
		return false, fmt.Errorf("close steps: %w", res.Error)
	}
	out := ""
	if refunded {
		out = fmt.Sprintf("refunded %d units", run.Units)
	}
	if err := instantStep(tx, *run, status, out, reason, now); err != nil {
		return false, err
	}
	if status == store.StatusError {
		if err := startStep(tx, *run, "notify", 0, "", now); err != nil {
			return false, err
		}
	}
	return refunded, nil
}

// loadRun reads a run and checks it belongs to the video; a missing run or
// a mismatch is errNoChange (a stale or forged event).
func (s *Service) loadRun(ctx context.Context, tx *gorm.DB, videoID, runID string) (store.Run, error) {
	var run store.Run
	if ids.ValidateVideoID(videoID) != nil || runID == "" {
		return run, errNoChange
	}
	err := tx.WithContext(ctx).Where("id = ?", runID).First(&run).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && run.VideoID != videoID) {
		return run, errNoChange
	}
	if err != nil {
		return run, fmt.Errorf("load run %s: %w", runID, err)
	}
	return run, nil
}

// apply runs fn in a transaction on the run named by an event, and emits the
// effects of the state it leaves the run in. When the event no longer applies
// (errNoChange) but the run already sits in the state the event leads to, the
// effects are emitted again: the earlier handling may have crashed after its
// commit. target reports whether a run is in that state.
func (s *Service) apply(ctx context.Context, videoID, runID string, fn func(tx *gorm.DB, run *store.Run) error, target func(store.Run) bool) (changed bool, run store.Run, err error) {
	err = s.db.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.loadRun(ctx, tx, videoID, runID)
		if err != nil {
			return err
		}
		var v store.Video
		if err := s.db.ForUpdate(tx).Where("id = ?", videoID).First(&v).Error; err != nil {
			return fmt.Errorf("lock video: %w", err)
		}
		if err := fn(tx, &r); err != nil {
			run = r
			return err
		}
		run = r
		return nil
	})
	switch {
	case err == nil:
		return true, run, s.emit(ctx, run)
	case errors.Is(err, errNoChange):
		if run.ID != "" && target != nil && target(run) {
			return false, run, s.emit(ctx, run)
		}
		return false, run, nil
	default:
		return false, run, err
	}
}
