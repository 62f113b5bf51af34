package coordinator

import (
	"fmt"
	"slices"
	"strings"

	"github.com/backbeat/backbeat/pkg/store"
)

// The run's state machine, in one place. Every change of a run's status or
// stage is one of these transitions; the handlers name the transition they
// make (s.advance), and advance refuses a column the transition does not
// declare. docs/architecture.md shows this table (TestTransitionTableInDocs
// keeps the two equal), and TestTransitionTable checks its shape without a
// database.

// LedgerAction is what a transition does to the user's credits.
type LedgerAction string

// Ledger actions.
const (
	LedgerNone   LedgerAction = ""
	LedgerHold   LedgerAction = "hold"
	LedgerRefund LedgerAction = "refund"
)

// Transition is one declared move of a run.
type Transition struct {
	// Name identifies the transition in code and docs.
	Name string
	// On is what makes it happen.
	On string
	// From are the statuses it applies to ("" only for a run being created).
	From []store.Status
	// Stage it applies in ("" in any).
	Stage store.Stage
	// To and ToStage are the run's new status and stage ("" keeps it).
	To      store.Status
	ToStage store.Stage
	// Sets are the other columns it may set (stage_at comes with ToStage).
	Sets []string
	// Ledger is its credit movement.
	Ledger LedgerAction
	// Effects are what emit publishes from the new state.
	Effects string
}

var (
	inFlight   = store.InFlight
	processing = []store.Status{store.StatusProcessing}
	// processingOrStalled: a late result still ends a stalled stage.
	processingOrStalled = []store.Status{store.StatusProcessing, store.StatusStalled}
)

// The transitions.
var (
	TCreate = Transition{Name: "create", On: "video.create, valid, credits held",
		To: store.StatusPending, ToStage: store.StageAudio, Sets: []string{"units", "spec", "bundle"},
		Ledger: LedgerHold, Effects: "KV active; audio job"}
	TRefuse = Transition{Name: "refuse", On: "video.create, invalid or not enough credits",
		To: store.StatusError, ToStage: store.StageDone, Sets: []string{"reason", "finished_at"},
		Effects: "notify (the video's run only if it has none or it ended without a result)"}
	// A stalled run still takes the event that ends its stage: a stall says
	// the coordinator stopped waiting (alerted), not that a late result is
	// worthless.
	TAudioDone = Transition{Name: "audio-done", On: "audio.done", From: []store.Status{store.StatusPending, store.StatusStalled}, Stage: store.StageAudio,
		To: store.StatusProcessing, ToStage: store.StageRender,
		Sets:    []string{"attempt", "pool", "audio_key", "mp3_key", "analysis_key", "duration", "render_started_at", "reason"},
		Effects: "KV attempt 1; render job on bundle.pools[0]"}
	TRenderRetry = Transition{Name: "render-retry", On: "step.failed (render), retryable, attempts left",
		From: processing, Stage: store.StageRender, Sets: []string{"attempt", "pool", "render_started_at"},
		Effects: "KV next attempt; render job on the next pool"}
	TQueueMove = Transition{Name: "queue-move", On: "watchdog: no worker claimed the attempt for QueueTimeout",
		From: processing, Stage: store.StageRender, Sets: []string{"attempt", "pool", "render_started_at"},
		Effects: "KV next attempt; render job on the next pool"}
	TRenderDone = Transition{Name: "render-done", On: "render.done of the current attempt", From: processingOrStalled, Stage: store.StageRender,
		To:      store.StatusProcessing,
		ToStage: store.StageCDN, Sets: []string{"video_key", "render_seconds", "reason"}, Effects: "cdn job (purge the run's public keys)"}
	TReady = Transition{Name: "ready", On: "cdn.done, or step.failed (cdn): purge errors never fail a video",
		From: processingOrStalled, Stage: store.StageCDN, To: store.StatusReady, ToStage: store.StageDone, Sets: []string{"reason", "finished_at"},
		Effects: "KV done; promote video and MP3 (the video shows ready with their URLs); thumbnail job; notify"}
	TFail = Transition{Name: "fail", On: "step.failed: bad input, render attempts spent, a coordinator handler's permanent error",
		From: inFlight, To: store.StatusError, ToStage: store.StageDone, Sets: []string{"reason", "finished_at"},
		Ledger: LedgerRefund, Effects: "KV failed; notify; alert"}
	TCancel = Transition{Name: "cancel", On: "video.cancel naming the run (not a replay)",
		From: inFlight, To: store.StatusCancelled, ToStage: store.StageDone, Sets: []string{"reason", "finished_at"},
		Ledger: LedgerRefund, Effects: "KV cancelled"}
	TSupersede = Transition{Name: "supersede", On: "a valid, paid video.create for the same video",
		From: inFlight, To: store.StatusCancelled, ToStage: store.StageDone, Sets: []string{"reason", "finished_at"},
		Ledger: LedgerRefund, Effects: "video.status (the new run's create writes the KV)"}
	TStallAudio = Transition{Name: "stall-audio", On: "watchdog: audio stage past AudioDeadline",
		From: []store.Status{store.StatusPending}, Stage: store.StageAudio, To: store.StatusStalled, Sets: []string{"reason"},
		Effects: "KV stalled (stops the worker); alert"}
	TStallRender = Transition{Name: "stall-render", On: "watchdog: claimed attempt's frames still for StallTimeout",
		From: processing, Stage: store.StageRender, To: store.StatusStalled, Sets: []string{"reason"},
		Effects: "KV stalled (stops the worker); alert"}
	TStallCDN = Transition{Name: "stall-cdn", On: "watchdog: cdn stage past CDNDeadline",
		From: processing, Stage: store.StageCDN, To: store.StatusStalled, Sets: []string{"reason"},
		Effects: "KV stalled (stops the worker); alert"}
	TRecoverAudio = Transition{Name: "recover-audio", On: "video.recover naming the run",
		From: []store.Status{store.StatusStalled}, Stage: store.StageAudio, To: store.StatusPending, ToStage: store.StageAudio,
		Sets: []string{"reason"}, Effects: "KV active; audio job again"}
	TRecoverRender = Transition{Name: "recover-render", On: "video.recover naming the run",
		From: []store.Status{store.StatusStalled}, Stage: store.StageRender, To: store.StatusProcessing,
		Sets:    []string{"reason", "attempt", "pool", "render_started_at"},
		Effects: "KV next attempt; render job on that attempt's pool"}
	TRecoverCDN = Transition{Name: "recover-cdn", On: "video.recover naming the run",
		From: []store.Status{store.StatusStalled}, Stage: store.StageCDN, To: store.StatusProcessing, ToStage: store.StageCDN,
		Sets: []string{"reason"}, Effects: "KV active; cdn job again"}
)

// Transitions lists every transition, in the order the docs show them.
var Transitions = []Transition{TCreate, TRefuse, TAudioDone, TRenderRetry, TQueueMove, TRenderDone, TReady, TFail,
	TCancel, TSupersede, TStallAudio, TStallRender, TStallCDN, TRecoverAudio, TRecoverRender, TRecoverCDN}

// Allows reports whether the transition applies to a run in that status
// and stage.
func (t Transition) Allows(status store.Status, stage store.Stage) bool {
	return slices.Contains(t.From, status) && (t.Stage == "" || t.Stage == stage)
}

// Next is the status and stage the transition leaves a run in, or an error
// when it does not apply: the machine as a pure function.
func (t Transition) Next(status store.Status, stage store.Stage) (store.Status, store.Stage, error) {
	if !t.Allows(status, stage) {
		return status, stage, fmt.Errorf("transition %s does not apply to a %s run in stage %s", t.Name, status, stage)
	}
	if t.To != "" {
		status = t.To
	}
	if t.ToStage != "" {
		stage = t.ToStage
	}
	return status, stage, nil
}

// sets reports whether the transition may set a column.
func (t Transition) sets(col string) bool {
	return slices.Contains(t.Sets, col) || ((col == "stage_at" || col == "job_at") && t.ToStage != "")
}

// TransitionTable renders the transitions as the Markdown table of
// docs/architecture.md.
func TransitionTable() string {
	var b strings.Builder
	b.WriteString("| transition | on | from | to | sets | credits | effects |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, t := range Transitions {
		from := "—"
		if len(t.From) > 0 {
			var fs []string
			for _, f := range t.From {
				fs = append(fs, string(f))
			}
			from = strings.Join(fs, ", ")
			if t.Stage != "" {
				from += " @" + string(t.Stage)
			}
		}
		to := string(t.To)
		if to == "" {
			to = "(same)"
		}
		if t.ToStage != "" {
			to += " @" + string(t.ToStage)
		} else if t.Stage != "" {
			to += " @" + string(t.Stage)
		}
		credits := string(t.Ledger)
		if credits == "" {
			credits = "—"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s |\n", t.Name, t.On, from, to,
			strings.Join(t.Sets, ", "), credits, t.Effects)
	}
	return b.String()
}
