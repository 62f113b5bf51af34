package coordinator

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
)

// gormRepo is the repository on the store's database: Postgres in
// production (rows locked FOR UPDATE), SQLite for `backbeat dev` and the
// simulation's -sim.db=sqlite (one connection: transactions serialised).
type gormRepo struct{ db *store.Store }

var _ repo = gormRepo{}

func (r gormRepo) Tx(ctx context.Context, fn func(tx repoTx) error) error {
	return r.db.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return fn(gormTx{tx: tx, db: r.db})
	})
}

func (r gormRepo) Auto(ctx context.Context) repoTx {
	return gormTx{tx: r.db.DB.WithContext(ctx), db: r.db}
}

// Lazy runs fn in a transaction whose commit does not wait for the disk
// on Postgres (synchronous_commit off for it alone): a crash of the database
// can lose it, never reorder or half-apply it. SQLite commits as Tx does.
func (r gormRepo) Lazy(ctx context.Context, fn func(tx repoTx) error) error {
	return r.db.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if r.db.Postgres() {
			if err := tx.Exec("SET LOCAL synchronous_commit TO OFF").Error; err != nil {
				return err
			}
		}
		return fn(gormTx{tx: tx, db: r.db})
	})
}

// gormTx is a transaction, or the database handle itself for Auto.
type gormTx struct {
	tx *gorm.DB
	db *store.Store
}

// first reads one row into dest; a missing row is not an error.
func first(q *gorm.DB, dest any) (bool, error) {
	err := q.First(dest).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (g gormTx) Run(id string) (store.Run, bool, error) {
	var r store.Run
	ok, err := first(g.tx.Where("id = ?", id), &r)
	return r, ok, err
}

func (g gormTx) RunIsCurrent(id string) (store.Run, bool, bool, error) {
	var row struct {
		store.Run `gorm:"embedded"`
		Current   bool
	}
	res := g.tx.Raw(`SELECT runs.*, COALESCE(videos.run_id = runs.id, false) AS current FROM runs JOIN videos ON videos.id = runs.video_id WHERE runs.id = ?`, id).Scan(&row)
	if res.Error != nil || res.RowsAffected == 0 {
		return store.Run{}, false, false, res.Error
	}
	return row.Run, row.Current, true, nil
}

func (g gormTx) RunByCreateKey(key string) (store.Run, bool, error) {
	var r store.Run
	ok, err := first(g.tx.Where("create_key = ?", key), &r)
	return r, ok, err
}

func (g gormTx) User(id string) (store.User, bool, error) {
	var u store.User
	ok, err := first(g.tx.Where("id = ?", id), &u)
	return u, ok, err
}

func (g gormTx) Video(id string) (store.Video, bool, error) {
	var v store.Video
	ok, err := first(g.tx.Where("id = ?", id), &v)
	return v, ok, err
}

func (g gormTx) LockVideo(id string) (store.Video, bool, error) {
	var v store.Video
	ok, err := first(g.db.ForUpdate(g.tx).Where("id = ?", id), &v)
	return v, ok, err
}

func (g gormTx) InsertVideoIfAbsent(v store.Video) error {
	return g.tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&v).Error
}

func (g gormTx) InsertRun(r store.Run) error {
	return g.tx.Create(&r).Error
}

// where is runWhere in SQL.
func (g gormTx) where(q *gorm.DB, w runWhere) *gorm.DB {
	if w.ID != "" {
		q = q.Where("id = ?", w.ID)
	}
	if w.Status != nil {
		q = q.Where("status IN ?", w.Status)
	}
	if w.Stage != "" {
		q = q.Where("stage = ?", w.Stage)
	}
	if w.Attempt != nil {
		q = q.Where("attempt = ?", *w.Attempt)
	}
	if w.NoJobAt {
		q = q.Where("job_at IS NULL")
	}
	if w.Rendering {
		q = q.Where("render_started_at IS NOT NULL")
	}
	if !w.JobBefore.IsZero() {
		q = q.Where("job_at < ?", w.JobBefore)
	}
	return q
}

func (g gormTx) UpdateRuns(w runWhere, set map[string]any) (int64, error) {
	res := g.where(g.tx.Model(&store.Run{}), w).Updates(set)
	return res.RowsAffected, res.Error
}

func (g gormTx) UpdateRun(w runWhere, set map[string]any) (store.Run, bool, error) {
	if w.ID == "" {
		return store.Run{}, false, errors.New("UpdateRun needs a run id")
	}
	var rows []store.Run
	res := g.where(g.tx.Model(&rows).Clauses(clause.Returning{}), w).Updates(set)
	if res.Error != nil || len(rows) == 0 {
		return store.Run{}, false, res.Error
	}
	return rows[0], true, nil
}

func (g gormTx) UpdateVideo(id string, set map[string]any) error {
	return g.tx.Model(&store.Video{}).Where("id = ?", id).Updates(set).Error
}

func (g gormTx) UpdateVideoOfRun(id, runID string, set map[string]any) error {
	return g.tx.Model(&store.Video{}).Where("id = ? AND run_id = ?", id, runID).Updates(set).Error
}

func (g gormTx) Hold(runID, userID string, units int64) error {
	return store.Hold(g.tx, runID, userID, units)
}

func (g gormTx) Refund(runID string) (bool, error) {
	return store.Refund(g.tx, runID)
}

// StartStep inserts the step unless (run, name, attempt) has one: one
// statement (ON CONFLICT on the unique index), not a read then a write.
func (g gormTx) StartStep(st store.Step) error {
	return g.tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "run_id"}, {Name: "name"}, {Name: "attempt"}},
		DoNothing: true,
	}).Create(&st).Error
}

func (g gormTx) EndStep(runID, name string, attempt int32, at time.Time, output, errText string, by bus.Report) error {
	return g.tx.Model(&store.Step{}).Where("run_id = ? AND name = ? AND attempt = ? AND ended_at IS NULL", runID, name, attempt).
		Updates(map[string]any{"ended_at": at, "output": output, "error": errText, "worker": by.Worker,
			"queue_wait_ms": by.QueueWait.Milliseconds(), "run_ms": by.RunTime.Milliseconds()}).Error
}

func (g gormTx) CloseSteps(runID string, at time.Time, errText string) error {
	return g.tx.Model(&store.Step{}).Where("run_id = ? AND ended_at IS NULL", runID).
		Updates(map[string]any{"ended_at": at, "error": errText}).Error
}

func (g gormTx) Runs(w runWhere) ([]store.Run, error) {
	var runs []store.Run
	err := g.where(g.tx, w).Order("id").Find(&runs).Error
	return runs, err
}

func (g gormTx) OpenSteps(name string, startedBefore time.Time) ([]store.Step, error) {
	var steps []store.Step
	err := g.tx.Where("name = ? AND ended_at IS NULL AND started_at < ?", name, startedBefore).Order("id").Find(&steps).Error
	return steps, err
}

func (g gormTx) BundlesInUse() ([]string, error) {
	var used []string
	err := g.tx.Raw(`SELECT bundle FROM users UNION SELECT bundle FROM runs WHERE status IN ?`, store.InFlight).Scan(&used).Error
	return used, err
}
