package api

import (
	"time"
)

// Operator actions (POST /v1/admin/actions). Each is recorded in the audit
// trail (store.AdminAction) under its request id, and safe to repeat.
const (
	// ActionCancel cancels a video's current run if it is in flight (refund).
	ActionCancel = "cancel"
	// ActionRecover requeues a video's current run if it is stalled.
	ActionRecover = "recover"
	// ActionRetry starts a new run of a video whose current run failed
	// (status error), from the failed run's request: it holds the credits
	// again (the failed run was refunded). One retry per failed run.
	ActionRetry = "retry"
	// ActionReplay re-publishes a video's event history (backbeat replay):
	// the coordinator heals lost effects and changes no run and no balance.
	ActionReplay = "replay"
)

// AdminRequest is POST /v1/admin/actions: one action on one video
// (VideoID), or on every video a filter selects (Filter; replay and retry).
type AdminRequest struct {
	// RequestID keys the action: the same id again returns the recorded
	// result and acts no more. Required unless DryRun.
	RequestID string      `json:"request_id,omitempty"`
	Action    string      `json:"action"`
	VideoID   string      `json:"video_id,omitempty"`
	Filter    *BulkFilter `json:"filter,omitempty"`
	// DryRun says what would happen and changes nothing (it is recorded).
	DryRun bool `json:"dry_run,omitempty"`
	// Reason is the operator's note, kept in the audit trail and on cancels.
	Reason string `json:"reason,omitempty"`
}

// BulkFilter selects the runs of a bulk action; every video with a selected
// run is acted on once, through its current run.
type BulkFilter struct {
	// From and To bound the runs' creation time (RFC 3339); both required.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Statuses keeps runs in these statuses (pending, processing, ready,
	// error, stalled, cancelled).
	Statuses []string `json:"statuses,omitempty"`
	UserID   string   `json:"user_id,omitempty"`
	Template string   `json:"template,omitempty"`
	Pool     string   `json:"pool,omitempty"`
	// Reason keeps runs whose reason contains this text.
	Reason string `json:"reason,omitempty"`
	// Limit caps the videos acted on (default and maximum 1000).
	Limit int `json:"limit,omitempty"`
}

// ActionResult is the outcome of an action, also stored as the audit
// record's result.
type ActionResult struct {
	ID        uint      `json:"id"`
	RequestID string    `json:"request_id"`
	Action    string    `json:"action"`
	Actor     string    `json:"actor"`
	DryRun    bool      `json:"dry_run"`
	At        time.Time `json:"at"`
	// Repeated is set when the request id had been used: nothing was done
	// now, and Videos is what the first request did.
	Repeated bool           `json:"repeated,omitempty"`
	Videos   []VideoOutcome `json:"videos"`
}

// VideoOutcome is what an action did (or would do) to one video.
type VideoOutcome struct {
	VideoID string `json:"video_id"`
	// RunID is the run acted on (the current run of the video).
	RunID  string `json:"run_id,omitempty"`
	Status string `json:"status,omitempty"`
	// Outcome is done, would, or skipped.
	Outcome string `json:"outcome"`
	// Detail says what, in words ("video.cancel published", "7 events
	// replayed", "skipped: the run is ready, not in flight").
	Detail string `json:"detail"`
	// Units is what a retry holds (or would hold) of the user's credits.
	Units int64 `json:"units,omitempty"`
}

// Outcomes of a VideoOutcome.
const (
	OutcomeDone    = "done"
	OutcomeWould   = "would"
	OutcomeSkipped = "skipped"
)
