package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/store"
)

// errNoChange says an event found its run in another state: it is
// acknowledged and ignored.
var errNoChange = errors.New("no change")

// advance makes transition t on a run, with a conditional update (the run
// must be in one of t.From, in t.Stage), setting the columns in upd (each
// must be one t declares), the new status and stage (and stage_at when the
// stage changes), and t's ledger action. It then mirrors status and reason
// onto the video if the run is still the video's current run (ready is
// mirrored by the promotion, with the URLs). It returns
// errNoChange when the run was not in a state t applies to, and whether
// credits were refunded.
func (s *Service) advance(tx repoTx, run *store.Run, t Transition, upd map[string]any) (refunded bool, err error) {
	set := make(map[string]any, len(upd)+3)
	for col, v := range upd {
		if !t.sets(col) {
			return false, fmt.Errorf("transition %s does not set %s", t.Name, col)
		}
		set[col] = v
	}
	if t.To != "" {
		set["status"] = t.To
	}
	if t.ToStage != "" {
		set["stage"] = t.ToStage
		set["stage_at"] = s.now()
		set["job_at"] = nil
	}
	r, ok, err := tx.UpdateRun(runWhere{ID: run.ID, Status: t.From, Stage: t.Stage}, set)
	if err != nil {
		return false, fmt.Errorf("%s: update run %s: %w", t.Name, run.ID, err)
	}
	if !ok {
		return false, errNoChange
	}
	*run = r
	// A video shows ready only with its URL: the promotion sets both.
	if t.To != store.StatusReady {
		vupd := map[string]any{"status": run.Status, "reason": run.Reason}
		if err := tx.UpdateVideoOfRun(run.VideoID, run.ID, vupd); err != nil {
			return false, fmt.Errorf("update video %s: %w", run.VideoID, err)
		}
	}
	if t.Ledger == LedgerRefund {
		return tx.Refund(run.ID)
	}
	return false, nil
}

// finish ends an in-flight run with one of the ending transitions (TFail,
// TCancel, TSupersede): refunds its hold (once), closes its open steps,
// records the reason. It reports whether credits moved.
func (s *Service) finish(tx repoTx, run *store.Run, t Transition, reason string, now time.Time) (bool, error) {
	refunded, err := s.advance(tx, run, t, map[string]any{"reason": truncate(reason, 1000), "finished_at": now})
	if err != nil {
		return false, err
	}
	status := string(t.To)
	if err := tx.CloseSteps(run.ID, now, truncate(status+": "+reason, 2000)); err != nil {
		return false, fmt.Errorf("close steps: %w", err)
	}
	out := ""
	if refunded {
		out = fmt.Sprintf("refunded %d units", run.Units)
	}
	if err := instantStep(tx, *run, status, out, reason, now); err != nil {
		return false, err
	}
	if t.To == store.StatusError {
		if err := startStep(tx, *run, "notify", 0, "", now); err != nil {
			return false, err
		}
	}
	return refunded, nil
}

// loadRun reads a run and checks it belongs to the video; a missing run or
// a mismatch is errNoChange (a stale or forged event).
func (s *Service) loadRun(tx repoTx, videoID, runID string) (store.Run, error) {
	if ids.ValidateVideoID(videoID) != nil || runID == "" {
		return store.Run{}, errNoChange
	}
	run, ok, err := tx.Run(runID)
	if err != nil {
		return store.Run{}, fmt.Errorf("load run %s: %w", runID, err)
	}
	if !ok || run.VideoID != videoID {
		return store.Run{}, errNoChange
	}
	return run, nil
}

// lockVideo takes the per-video lock of a transaction.
func lockVideo(tx repoTx, videoID string) (store.Video, error) {
	v, ok, err := tx.LockVideo(videoID)
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	if err != nil {
		return v, fmt.Errorf("lock video: %w", err)
	}
	return v, nil
}

// apply runs fn in a transaction on the run named by an event, and emits the
// effects of the state it leaves the run in. When the event no longer applies
// (errNoChange) but the run already sits in the state the event leads to, the
// effects are emitted again: the earlier handling may have crashed after its
// commit. target reports whether a run is in that state.
func (s *Service) apply(ctx context.Context, videoID, runID string, fn func(tx repoTx, run *store.Run) error, target func(store.Run) bool) (changed bool, run store.Run, err error) {
	err = s.repo.Tx(ctx, func(tx repoTx) error {
		r, err := s.loadRun(tx, videoID, runID)
		if err != nil {
			return err
		}
		if _, err := lockVideo(tx, videoID); err != nil {
			return err
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
