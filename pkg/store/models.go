// Package store is the coordinator's database: users and their credits,
// videos, runs, the steps timeline and the credit ledger, on Postgres in
// production and SQLite for `backbeat dev`, through gorm.
package store

import "time"

// Status is the state of a run, and of its video (the user-visible state).
type Status string

// Statuses. The coordinator's transition table (render-coordinator's
// machine.go) says which moves between them exist.
const (
	StatusPending    Status = "pending"
	StatusProcessing Status = "processing"
	StatusReady      Status = "ready"
	StatusError      Status = "error"
	StatusStalled    Status = "stalled"
	StatusCancelled  Status = "cancelled"
)

// InFlight are the statuses of a run that still holds credits and may move on.
var InFlight = []Status{StatusPending, StatusProcessing, StatusStalled}

// Terminal reports whether a run in this status can no longer move.
func (s Status) Terminal() bool {
	return s == StatusReady || s == StatusError || s == StatusCancelled
}

// Stage is where a run is inside pending/processing/stalled, so an event is
// applied only in the stage it belongs to.
type Stage string

// Stages.
const (
	StageAudio  Stage = "audio"
	StageRender Stage = "render"
	StageCDN    Stage = "cdn"
	StageDone   Stage = "done"
)

// Ledger entry kinds.
const (
	LedgerHold   = "hold"
	LedgerRefund = "refund"
	LedgerGrant  = "grant"
)

// User owns credits and picks a bundle.
type User struct {
	ID        string `gorm:"primaryKey;size:64"`
	Balance   int64  `gorm:"not null;default:0"`
	Bundle    string `gorm:"size:32;not null;default:free"`
	Email     string `gorm:"size:255"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Video is what the app shows: the status and results of the current run.
type Video struct {
	ID                 string `gorm:"primaryKey;size:64"`
	UserID             string `gorm:"size:64;index;not null"`
	RunID              string `gorm:"size:64"`
	Status             Status `gorm:"size:16;index;not null"`
	Reason             string `gorm:"size:1024"`
	VideoURL           string `gorm:"size:1024"`
	ThumbnailURL       string `gorm:"size:1024"`
	SquareThumbnailURL string `gorm:"size:1024"`
	MP3URL             string `gorm:"size:1024"`
	RenderSeconds      float64
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Run is one attempt to produce a video from one create event. CreateKey is
// unique, so handling the same create twice never makes a second run.
type Run struct {
	ID        string `gorm:"primaryKey;size:64"`
	VideoID   string `gorm:"size:64;index;not null"`
	UserID    string `gorm:"size:64;not null"`
	CreateKey string `gorm:"size:128;uniqueIndex;not null"`
	Status    Status `gorm:"size:16;index;not null"`
	Stage     Stage  `gorm:"size:16;not null"`
	Reason    string `gorm:"size:1024"`
	Bundle    string `gorm:"size:32;not null"`
	// Template is the visual template the create asked for (also in Spec),
	// a column of its own so operators can filter runs by it.
	Template string `gorm:"size:64;index"`
	Units    int64  `gorm:"not null"`
	// Attempt is the current render attempt (0 before the render).
	Attempt int32
	Pool    string `gorm:"size:32"`
	// Spec is the VideoCreate as protojson.
	Spec          string `gorm:"type:text"`
	AudioKey      string `gorm:"size:512"`
	MP3Key        string `gorm:"size:512"`
	AnalysisKey   string `gorm:"size:512"`
	Duration      float64
	VideoKey      string `gorm:"size:512"`
	RenderSeconds float64
	// RenderStartedAt is when the current attempt was queued; the watchdog
	// moves an attempt that waits in its queue too long to the next pool.
	RenderStartedAt *time.Time
	// ProgressAttempt, ProgressFrames and ProgressAt are the stall
	// watchdog's marks: the attempt a worker was seen working on, its frame
	// count, and when that count last moved. They are persisted so that a
	// coordinator restart does not restart the stall clock of a hung render.
	ProgressAttempt int32
	ProgressFrames  int64
	ProgressAt      *time.Time
	// StageAt is when the run entered its stage (it names the stage's job).
	StageAt *time.Time
	// JobAt is when the job of the audio or cdn stage was first published:
	// the stage's deadline runs from it, so an outage that kept the job
	// from being published does not count against it.
	JobAt      *time.Time
	FinishedAt *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Step is one line of a run's timeline.
type Step struct {
	ID        uint   `gorm:"primaryKey"`
	RunID     string `gorm:"size:64;not null;uniqueIndex:idx_step_run_name_attempt"`
	VideoID   string `gorm:"size:64;not null;index"`
	Name      string `gorm:"size:32;not null;uniqueIndex:idx_step_run_name_attempt"`
	Attempt   int32  `gorm:"not null;uniqueIndex:idx_step_run_name_attempt"`
	Pool      string `gorm:"size:32"`
	StartedAt time.Time
	EndedAt   *time.Time
	Output    string `gorm:"size:2048"`
	Error     string `gorm:"size:2048"`
	// Worker is the replica that did the step (BACKBEAT_WORKER_NAME), as
	// the worker reported it with its result; empty for the coordinator's own
	// steps and for results from before migration 5.
	Worker string `gorm:"size:128"`
	// QueueWaitMS is how long the step's job waited in its queue before a
	// worker started it, and RunMS how long the worker then took, both as
	// the worker measured them (milliseconds; zero when not reported).
	QueueWaitMS int64
	RunMS       int64
}

// LedgerEntry is one movement of credits. (RunID, Kind) is unique: one hold
// and at most one refund per run, whatever is redelivered or replayed.
type LedgerEntry struct {
	ID        uint   `gorm:"primaryKey"`
	RunID     string `gorm:"size:64;not null;uniqueIndex:idx_ledger_run_kind"`
	Kind      string `gorm:"size:16;not null;uniqueIndex:idx_ledger_run_kind"`
	UserID    string `gorm:"size:64;not null;index"`
	Amount    int64  `gorm:"not null"`
	CreatedAt time.Time
}

// APIKey authenticates an app against the API; only a hash is stored.
type APIKey struct {
	Hash      string `gorm:"primaryKey;size:64"`
	UserID    string `gorm:"size:64;not null;index"`
	Name      string `gorm:"size:64"`
	CreatedAt time.Time
}

// CreateRequest remembers which body an app sent with a request id (the
// API's Idempotency-Key) for a video, so that the same key with another body
// is refused instead of answered as if it were the first. The coordinator
// deduplicates creates by (video, request id) on its own; this table is the
// API's, written before it publishes.
type CreateRequest struct {
	VideoID   string `gorm:"primaryKey;size:64"`
	RequestID string `gorm:"primaryKey;size:128"`
	UserID    string `gorm:"size:64;not null"`
	// BodyHash is the hex SHA-256 of the create as the API validated it.
	BodyHash  string `gorm:"size:64;not null"`
	CreatedAt time.Time
}

// AdminAction is one operator action (cancel, recover, retry, replay) as the
// API's admin endpoints took it: the audit trail. RequestID makes an action
// safe to repeat: the same request id returns the recorded result instead of
// acting again. Dry runs are recorded too, so the trail shows what an
// operator looked at before acting.
type AdminAction struct {
	ID uint `gorm:"primaryKey"`
	// RequestID is the caller's key for this action (unique).
	RequestID string `gorm:"size:128;uniqueIndex;not null"`
	// Actor names who acted: "admin-key", or the dashboard session's name.
	Actor string `gorm:"size:128;not null"`
	// Action is cancel, recover, retry or replay.
	Action string `gorm:"size:16;not null;index"`
	// Target is the video id of a single action, empty for a bulk one.
	Target string `gorm:"size:64;index"`
	// Filter is the bulk selection as JSON (time range, status, user, reason).
	Filter string `gorm:"type:text"`
	DryRun bool
	// Result is the outcome as JSON: each video and what was (or would be) done.
	Result string `gorm:"type:text"`
	// Videos is how many videos the action touched (or would touch).
	Videos    int
	CreatedAt time.Time `gorm:"index"`
}
