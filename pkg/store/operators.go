package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// RunFilter selects runs for operators (the dashboard and the admin API's
// bulk actions). Zero fields select everything.
type RunFilter struct {
	// Statuses keeps runs in any of these statuses.
	Statuses []Status
	UserID   string
	VideoID  string
	Template string
	// Pool keeps runs whose current (or last) render attempt ran on it.
	Pool string
	// Reason keeps runs whose reason contains this text.
	Reason string
	// From and To bound the runs' creation time: From ≤ created_at < To.
	From, To time.Time
	// Limit caps the result (0: DefaultRunLimit; at most MaxRunLimit).
	Limit int
}

// Run list bounds: a page of the dashboard, and the most a bulk action takes
// at once (a bigger outage is replayed in several time ranges).
const (
	DefaultRunLimit = 100
	MaxRunLimit     = 1000
)

func (f RunFilter) apply(db *gorm.DB, withStatus bool) *gorm.DB {
	if withStatus && len(f.Statuses) > 0 {
		db = db.Where("status IN ?", f.Statuses)
	}
	if f.UserID != "" {
		db = db.Where("user_id = ?", f.UserID)
	}
	if f.VideoID != "" {
		db = db.Where("video_id = ?", f.VideoID)
	}
	if f.Template != "" {
		db = db.Where("template = ?", f.Template)
	}
	if f.Pool != "" {
		db = db.Where("pool = ?", f.Pool)
	}
	if f.Reason != "" {
		db = db.Where("reason LIKE ?", "%"+likeEscape(f.Reason)+"%")
	}
	if !f.From.IsZero() {
		db = db.Where("created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		db = db.Where("created_at < ?", f.To)
	}
	return db
}

// likeEscape keeps an operator's text from being a pattern: LIKE's own
// wildcards (and the backslash, Postgres's escape) in it become the
// one-character wildcard, which matches them, the same on Postgres and
// SQLite (which has no default escape character).
func likeEscape(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		switch r {
		case '%', '_', '\\':
			out = append(out, '_')
		default:
			out = append(out, r)
		}
	}
	return string(out)
}

// limit returns the filter's effective limit.
func (f RunFilter) limit() int {
	switch {
	case f.Limit <= 0:
		return DefaultRunLimit
	case f.Limit > MaxRunLimit:
		return MaxRunLimit
	}
	return f.Limit
}

// ListRuns returns the runs the filter selects, newest first.
func (s *Store) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	var runs []Run
	err := f.apply(s.DB.WithContext(ctx).Model(&Run{}), true).
		Order("created_at DESC, id DESC").Limit(f.limit()).Find(&runs).Error
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// CountRunsByStatus counts the runs the filter selects, ignoring its
// statuses, by status: the dashboard's counts stay whole while one status is
// shown.
func (s *Store) CountRunsByStatus(ctx context.Context, f RunFilter) (map[Status]int64, error) {
	var rows []struct {
		Status Status
		N      int64
	}
	err := f.apply(s.DB.WithContext(ctx).Model(&Run{}), false).
		Select("status, COUNT(*) AS n").Group("status").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	out := make(map[Status]int64, len(rows))
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, nil
}

// VideoRuns returns every run of a video, newest first.
func (s *Store) VideoRuns(ctx context.Context, videoID string) ([]Run, error) {
	var runs []Run
	if err := s.DB.WithContext(ctx).Where("video_id = ?", videoID).Order("created_at DESC, id DESC").Find(&runs).Error; err != nil {
		return nil, fmt.Errorf("runs of %s: %w", videoID, err)
	}
	return runs, nil
}

// RunLedger returns the ledger lines of some runs, oldest first.
func (s *Store) RunLedger(ctx context.Context, runIDs []string) ([]LedgerEntry, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	var out []LedgerEntry
	if err := s.DB.WithContext(ctx).Where("run_id IN ?", runIDs).Order("created_at, id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("ledger of %d runs: %w", len(runIDs), err)
	}
	return out, nil
}

// FailedStep is a step that ended with an error, with its run's owner.
type FailedStep struct {
	Step
	UserID    string
	Bundle    string
	Template  string
	RunStatus Status
}

// FailedSteps returns the steps that ended with an error since a time (of
// one video's runs, or of every video when videoID is empty), newest first:
// the dead-letter view (a step's error is the reason its worker or the
// coordinator gave: permanent errors, retries spent, stalls, cdn purges).
func (s *Store) FailedSteps(ctx context.Context, videoID string, since time.Time, limit int) ([]FailedStep, error) {
	if limit <= 0 || limit > MaxRunLimit {
		limit = MaxRunLimit
	}
	var out []FailedStep
	db := s.DB.WithContext(ctx).Table("steps").
		Select("steps.*, runs.user_id AS user_id, runs.bundle AS bundle, runs.template AS template, runs.status AS run_status").
		Joins("JOIN runs ON runs.id = steps.run_id").
		Where("steps.error <> '' AND steps.started_at >= ?", since)
	if videoID != "" {
		db = db.Where("steps.video_id = ?", videoID)
	}
	err := db.Order("steps.started_at DESC, steps.id DESC").Limit(limit).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("failed steps: %w", err)
	}
	return out, nil
}

// WorkerSeen is a worker replica and the last step it reported.
type WorkerSeen struct {
	Worker string
	Pool   string
	Name   string
	LastAt time.Time
	Steps  int64
}

// ErrActionExists is returned by RecordAction when the request id was taken
// by an earlier action; the earlier action is returned with it.
var ErrActionExists = errors.New("an action with this request id exists")

// RecordAction stores an operator action. A request id already recorded
// returns that action and ErrActionExists, so repeating an action is seen
// before anything is done twice.
func (s *Store) RecordAction(ctx context.Context, a AdminAction) (AdminAction, error) {
	if a.RequestID == "" || a.Actor == "" || a.Action == "" {
		return a, errors.New("record action: request id, actor and action are required")
	}
	var prior AdminAction
	err := s.DB.WithContext(ctx).Where("request_id = ?", a.RequestID).First(&prior).Error
	if err == nil {
		return prior, ErrActionExists
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return a, fmt.Errorf("look up action %s: %w", a.RequestID, err)
	}
	if err := s.DB.WithContext(ctx).Create(&a).Error; err != nil {
		// A concurrent twin won the unique index.
		if e := s.DB.WithContext(ctx).Where("request_id = ?", a.RequestID).First(&prior).Error; e == nil {
			return prior, ErrActionExists
		}
		return a, fmt.Errorf("record action %s: %w", a.RequestID, err)
	}
	return a, nil
}

// UpdateActionResult sets the result of a recorded action once it is done.
func (s *Store) UpdateActionResult(ctx context.Context, id uint, result string, videos int) error {
	err := s.DB.WithContext(ctx).Model(&AdminAction{}).Where("id = ?", id).
		Updates(map[string]any{"result": result, "videos": videos}).Error
	if err != nil {
		return fmt.Errorf("update action %d: %w", id, err)
	}
	return nil
}

// ListActions returns the audit trail, newest first; target filters by video
// (bulk actions name none and show only when target is empty).
func (s *Store) ListActions(ctx context.Context, target string, limit int) ([]AdminAction, error) {
	if limit <= 0 || limit > MaxRunLimit {
		limit = DefaultRunLimit
	}
	db := s.DB.WithContext(ctx).Model(&AdminAction{})
	if target != "" {
		db = db.Where("target = ?", target)
	}
	var out []AdminAction
	if err := db.Order("created_at DESC, id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	return out, nil
}
