package coordinator

import (
	"context"
	"slices"
	"time"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
)

// repo is the coordinator's data access: the few reads and writes its
// handlers, watchdog and sweeper make, so that the transitions run on the
// database in production (gormRepo) and, in the simulation, in memory
// (memRepo, in the tests) with the same semantics. Issue 8: transitions are
// testable without a database as well as on Postgres.
type repo interface {
	// Tx runs fn in one transaction: everything fn writes commits together,
	// or nothing does when fn returns an error.
	Tx(ctx context.Context, fn func(tx repoTx) error) error
	// Auto is the same operations outside a transaction: each one is its
	// own statement, committed at once.
	Auto(ctx context.Context) repoTx
	// Lazy is Tx for marks the coordinator derives again after a crash
	// (the sweeper): its commit need not wait for the disk, so a crash of
	// the database may lose it but never reorders or half-applies it.
	Lazy(ctx context.Context, fn func(tx repoTx) error) error
}

// repoTx is what a transaction (or one autocommitted statement) can do. The
// reads report whether the row exists rather than failing; errors are the
// database's, wrapped by the caller.
type repoTx interface {
	// Run reads a run by id.
	Run(id string) (store.Run, bool, error)
	// RunIsCurrent reads a run and whether it is its video's current run,
	// in one statement; false when the run or its video does not exist.
	RunIsCurrent(id string) (run store.Run, current, ok bool, err error)
	// RunByCreateKey reads the run a create made, by its idempotency key.
	RunByCreateKey(key string) (store.Run, bool, error)
	// User reads a user.
	User(id string) (store.User, bool, error)
	// Video reads a video.
	Video(id string) (store.Video, bool, error)
	// LockVideo reads a video and locks its row until the transaction ends
	// (FOR UPDATE on Postgres): the per-video lock every handler takes.
	LockVideo(id string) (store.Video, bool, error)
	// InsertVideoIfAbsent creates the video row, or leaves an existing one.
	InsertVideoIfAbsent(v store.Video) error
	// InsertRun creates a run.
	InsertRun(r store.Run) error
	// UpdateRuns sets columns of the runs matching w and returns how many
	// matched: the conditional update transitions are made of.
	UpdateRuns(w runWhere, set map[string]any) (int64, error)
	// UpdateRun is UpdateRuns for the one run w.ID names, returning it as
	// updated (one statement: UPDATE … RETURNING), or false when it did not
	// match w.
	UpdateRun(w runWhere, set map[string]any) (store.Run, bool, error)
	// UpdateVideo sets columns of a video.
	UpdateVideo(id string, set map[string]any) error
	// UpdateVideoOfRun sets columns of a video only while runID is its run.
	UpdateVideoOfRun(id, runID string, set map[string]any) error
	// Hold takes a run's units from the user, once (store.Hold).
	Hold(runID, userID string, units int64) error
	// Refund gives back what a run held, at most once (store.Refund).
	Refund(runID string) (bool, error)
	// StartStep records a step of a run's timeline; the first start wins.
	StartStep(st store.Step) error
	// EndStep ends an open step with what its worker reported; the first
	// end wins.
	EndStep(runID, name string, attempt int32, at time.Time, output, errText string, by bus.Report) error
	// CloseSteps ends every open step of a run with an error.
	CloseSteps(runID string, at time.Time, errText string) error
	// Runs lists the runs matching w, by id.
	Runs(w runWhere) ([]store.Run, error)
	// OpenSteps lists the steps of that name still open that started
	// before a time, by id.
	OpenSteps(name string, startedBefore time.Time) ([]store.Step, error)
	// BundlesInUse are the bundles of every user and of every run in flight.
	BundlesInUse() ([]string, error)
}

// runWhere selects runs; zero fields select everything.
type runWhere struct {
	ID string
	// Status is one of these.
	Status []store.Status
	Stage  store.Stage
	// Attempt, when set, must equal the run's.
	Attempt *int32
	// NoJobAt: the stage's job has not been published yet.
	NoJobAt bool
	// Rendering: render_started_at is set.
	Rendering bool
	// JobBefore, when set: the stage's job was published before it.
	JobBefore time.Time
}

// matches is runWhere's meaning, for repositories that are not SQL.
func (w runWhere) matches(r *store.Run) bool {
	switch {
	case w.ID != "" && r.ID != w.ID:
		return false
	case w.Status != nil && !slices.Contains(w.Status, r.Status):
		return false
	case w.Stage != "" && r.Stage != w.Stage:
		return false
	case w.Attempt != nil && r.Attempt != *w.Attempt:
		return false
	case w.NoJobAt && r.JobAt != nil:
		return false
	case w.Rendering && r.RenderStartedAt == nil:
		return false
	case !w.JobBefore.IsZero() && (r.JobAt == nil || !r.JobAt.Before(w.JobBefore)):
		return false
	}
	return true
}
