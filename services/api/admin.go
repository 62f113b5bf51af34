package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// MaxBulkRange is the longest time range a bulk action takes: a longer outage
// is replayed in several ranges, each one reviewable as a dry run.
const MaxBulkRange = 31 * 24 * time.Hour

// ActionTimeout bounds one action. An action runs to its end even when its
// caller goes away (an HTTP client that timed out, a closed dashboard tab):
// a bulk action cut half-way would leave some videos done and others not,
// and the caller could not tell which without the audit trail.
const ActionTimeout = 5 * time.Minute

// Act performs an operator action and records it in the audit trail
// (store.AdminAction), under req.RequestID:
//
//   - the same request id again returns the recorded result and acts no more
//     (Repeated); an id recorded for another action is a 409;
//   - every message an action publishes has a message id made of the request
//     id and the video, so an action cut short and repeated within the
//     stream's duplicate window publishes nothing twice; retries are keyed by
//     the failed run (one new run per failed run, whatever the request id);
//   - a dry run changes nothing but the audit trail and says what would
//     happen to each video.
//
// actor names the operator ("admin-key", or the dashboard's session).
func (s *Service) Act(ctx context.Context, actor string, req AdminRequest) (ActionResult, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ActionTimeout)
	defer cancel()
	if err := s.checkAdminRequest(&req); err != nil {
		return ActionResult{}, err
	}
	filterJSON := ""
	if req.Filter != nil {
		b, err := json.Marshal(req.Filter)
		if err != nil {
			return ActionResult{}, fmt.Errorf("encode filter: %w", err)
		}
		filterJSON = string(b)
	}
	rec := store.AdminAction{RequestID: req.RequestID, Actor: actor, Action: req.Action, Target: req.VideoID,
		Filter: filterJSON, DryRun: req.DryRun, CreatedAt: time.Now().UTC()}
	rec, err := s.store.RecordAction(ctx, rec)
	if errors.Is(err, store.ErrActionExists) {
		if rec.Action != req.Action || rec.Target != req.VideoID || rec.Filter != filterJSON || rec.DryRun != req.DryRun {
			return ActionResult{}, errorf(http.StatusConflict, "request id %s was used for another action (%s %s)", req.RequestID, rec.Action, rec.Target+rec.Filter)
		}
		if rec.Result != "" {
			res, err := decodeResult(rec)
			res.Repeated = true
			return res, err
		}
		// Recorded but never finished (the API died on it): act again;
		// the message ids make the publishes already made no-ops.
	} else if err != nil {
		return ActionResult{}, err
	}
	res := resultOf(rec)
	vids, err := s.selectVideos(ctx, req)
	if err != nil {
		return res, err
	}
	for _, vid := range vids {
		out, err := s.actOn(ctx, req, vid)
		if err == nil && !req.DryRun {
			err = s.recordInHistory(ctx, actor, req, out)
		}
		if err != nil {
			// What was done so far is recorded; repeating the request id
			// goes on from here (the publishes made are deduplicated).
			bus.Logger(ctx, s.log).Error("admin action failed", zap.String("action", req.Action), zap.String("request_id", req.RequestID),
				zap.String("video_id", vid), zap.Error(err))
			return res, fmt.Errorf("%s of %s: %w", req.Action, vid, err)
		}
		res.Videos = append(res.Videos, out)
	}
	b, err := json.Marshal(res.Videos)
	if err != nil {
		return res, fmt.Errorf("encode result: %w", err)
	}
	if err := s.store.UpdateActionResult(ctx, rec.ID, string(b), len(res.Videos)); err != nil {
		return res, err
	}
	bus.Logger(ctx, s.log).Info("admin action", zap.String("action", req.Action), zap.String("actor", actor),
		zap.String("request_id", req.RequestID), zap.Bool("dry_run", req.DryRun), zap.Int("videos", len(res.Videos)))
	return res, nil
}

// recordInHistory publishes the action's outcome for one video on the
// video's EVENTS subject (admin.action), so its history shows what operators
// did to it. Its message id is the action's and the video's: an action
// repeated after being cut short records each video once.
func (s *Service) recordInHistory(ctx context.Context, actor string, req AdminRequest, out VideoOutcome) error {
	m := &backbeatv1.AdminAction{VideoId: out.VideoID, RunId: out.RunID, Action: req.Action, RequestId: req.RequestID,
		Actor: actor, Outcome: out.Outcome, Detail: out.Detail, Reason: req.Reason}
	subj := s.pub.Subjects().Event(out.VideoID, bus.KindAdminAction)
	if err := s.pub.Publish(ctx, subj, m, "admin:audit:"+out.VideoID+":"+req.RequestID); err != nil {
		return fmt.Errorf("record the action in the history of %s: %w", out.VideoID, err)
	}
	return nil
}

// resultOf is a recorded action's outcome without its videos.
func resultOf(rec store.AdminAction) ActionResult {
	return ActionResult{ID: rec.ID, RequestID: rec.RequestID, Action: rec.Action, Actor: rec.Actor,
		DryRun: rec.DryRun, At: rec.CreatedAt, Videos: []VideoOutcome{}}
}

// decodeResult is resultOf with the videos the action recorded (none while
// it is not finished).
func decodeResult(rec store.AdminAction) (ActionResult, error) {
	res := resultOf(rec)
	if rec.Result == "" {
		return res, nil
	}
	if err := json.Unmarshal([]byte(rec.Result), &res.Videos); err != nil {
		return resultOf(rec), fmt.Errorf("decode result of action %s: %w", rec.RequestID, err)
	}
	return res, nil
}

var validStatuses = []store.Status{store.StatusPending, store.StatusProcessing, store.StatusReady,
	store.StatusError, store.StatusStalled, store.StatusCancelled}

// checkAdminRequest refuses what cannot be acted on, before anything is
// recorded, and gives a dry run its own request id.
func (s *Service) checkAdminRequest(req *AdminRequest) error {
	switch req.Action {
	case ActionCancel, ActionRecover, ActionRetry, ActionReplay:
	default:
		return badRequest("action must be one of cancel, recover, retry, replay; got %q", req.Action)
	}
	if req.RequestID == "" && req.DryRun {
		req.RequestID = "dry-" + NewRequestID()
	}
	if req.RequestID == "" {
		return badRequest("request_id is required (it makes the action safe to repeat); dry runs may omit it")
	}
	if !requestIDRE.MatchString(req.RequestID) {
		return badRequest("request_id must be 1-128 characters of [A-Za-z0-9._:-]")
	}
	if len(req.Reason) > maxTextLen {
		return badRequest("reason is limited to %d bytes", maxTextLen)
	}
	switch {
	case req.VideoID != "" && req.Filter != nil:
		return badRequest("name a video_id or a filter, not both")
	case req.VideoID != "":
		if err := ids.ValidateVideoID(req.VideoID); err != nil {
			return badRequest("video_id: %v", err)
		}
		return nil
	case req.Filter == nil:
		return badRequest("name a video_id or a filter")
	}
	f := req.Filter
	if f.From.IsZero() || f.To.IsZero() {
		return badRequest("a bulk action needs filter.from and filter.to (RFC 3339)")
	}
	if !f.From.Before(f.To) {
		return badRequest("filter.from must be before filter.to")
	}
	if f.To.Sub(f.From) > MaxBulkRange {
		return badRequest("the time range is limited to %s: act on a longer outage in several ranges", MaxBulkRange)
	}
	for _, st := range f.Statuses {
		if !slices.Contains(validStatuses, store.Status(st)) {
			return badRequest("unknown status %q", st)
		}
	}
	if f.UserID != "" {
		if err := ids.ValidateUserID(f.UserID); err != nil {
			return badRequest("filter.user_id: %v", err)
		}
	}
	if f.Template != "" && !templateRE.MatchString(f.Template) {
		return badRequest("invalid filter.template %q", f.Template)
	}
	if f.Pool != "" && !bundleRE.MatchString(f.Pool) {
		return badRequest("invalid filter.pool %q", f.Pool)
	}
	if len(f.Reason) > maxTextLen {
		return badRequest("filter.reason is limited to %d bytes", maxTextLen)
	}
	if f.Limit < 0 || f.Limit > store.MaxRunLimit {
		return badRequest("filter.limit must be between 0 and %d", store.MaxRunLimit)
	}
	return nil
}

// RunFilter turns a bulk filter into the store's.
func (f BulkFilter) RunFilter() store.RunFilter {
	rf := store.RunFilter{UserID: f.UserID, Template: f.Template, Pool: f.Pool, Reason: f.Reason,
		From: f.From, To: f.To, Limit: f.Limit}
	if rf.Limit == 0 {
		rf.Limit = store.MaxRunLimit
	}
	for _, st := range f.Statuses {
		rf.Statuses = append(rf.Statuses, store.Status(st))
	}
	return rf
}

// selectVideos returns the videos an action takes: the one named, or those
// with a run the filter selects (newest first, each once).
func (s *Service) selectVideos(ctx context.Context, req AdminRequest) ([]string, error) {
	if req.Filter == nil {
		return []string{req.VideoID}, nil
	}
	runs, err := s.store.ListRuns(ctx, req.Filter.RunFilter())
	if err != nil {
		return nil, err
	}
	var vids []string
	seen := map[string]bool{}
	for _, r := range runs {
		if !seen[r.VideoID] {
			seen[r.VideoID] = true
			vids = append(vids, r.VideoID)
		}
	}
	return vids, nil
}

// actOn does (or, dry, describes) the action on one video's current run.
func (s *Service) actOn(ctx context.Context, req AdminRequest, vid string) (VideoOutcome, error) {
	out := VideoOutcome{VideoID: vid}
	v, err := s.store.GetVideo(ctx, vid)
	if errors.Is(err, store.ErrNotFound) {
		out.Outcome, out.Detail = OutcomeSkipped, "no such video"
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.RunID, out.Status = v.RunID, string(v.Status)
	if v.RunID == "" && req.Action != ActionReplay {
		out.Outcome, out.Detail = OutcomeSkipped, "the video has no run: it was never created"
		return out, nil
	}
	var run store.Run
	if v.RunID != "" {
		if run, err = s.store.GetRun(ctx, v.RunID); err != nil {
			return out, err
		}
		out.Status = string(run.Status)
	}
	msgID := func(kind string) string { return "admin:" + kind + ":" + vid + ":" + req.RequestID }
	switch req.Action {
	case ActionCancel:
		if run.Status.Terminal() {
			return skipped(out, "the run is %s, not in flight", run.Status), nil
		}
		reason := req.Reason
		if reason == "" {
			reason = "cancelled by an operator"
		}
		m := &backbeatv1.VideoCancel{VideoId: vid, RunId: run.ID, Reason: reason, RequestId: req.RequestID}
		return s.publishOr(ctx, req, out, bus.KindVideoCancel, m, msgID("cancel"), "video.cancel of run "+run.ID)
	case ActionRecover:
		if run.Status != store.StatusStalled {
			return skipped(out, "the run is %s, not stalled", run.Status), nil
		}
		m := &backbeatv1.VideoRecover{VideoId: vid, RunId: run.ID, RequestId: req.RequestID}
		return s.publishOr(ctx, req, out, bus.KindVideoRecover, m, msgID("recover"), "video.recover of run "+run.ID+" ("+string(run.Stage)+")")
	case ActionRetry:
		return s.retry(ctx, req, out, run)
	case ActionReplay:
		return s.replay(ctx, req, out)
	}
	return out, fmt.Errorf("unknown action %q", req.Action)
}

func skipped(out VideoOutcome, format string, args ...any) VideoOutcome {
	out.Outcome, out.Detail = OutcomeSkipped, "skipped: "+fmt.Sprintf(format, args...)
	return out
}

// publishOr publishes a command event, or says it would.
func (s *Service) publishOr(ctx context.Context, req AdminRequest, out VideoOutcome, kind string, m proto.Message, msgID, what string) (VideoOutcome, error) {
	if req.DryRun {
		out.Outcome, out.Detail = OutcomeWould, "would publish "+what
		return out, nil
	}
	if err := s.pub.Publish(ctx, s.pub.Subjects().Event(out.VideoID, kind), m, msgID); err != nil {
		return out, fmt.Errorf("publish %s: %w", kind, err)
	}
	out.Outcome, out.Detail = OutcomeDone, "published "+what
	return out, nil
}

// RetryRequestID is the request id of the create that retries a failed run:
// named by the run, so a failed run is retried once however often an
// operator (or two) asks; the coordinator deduplicates creates by it.
func RetryRequestID(runID string) string { return "retry-" + runID }

// retry starts a new run of a video whose current run failed, from the
// failed run's request. The failed run was refunded, so the new one holds
// its credits as any create does; with too few, it is refused like one.
func (s *Service) retry(ctx context.Context, req AdminRequest, out VideoOutcome, run store.Run) (VideoOutcome, error) {
	if run.Status != store.StatusError {
		return skipped(out, "the run is %s; only a failed run (error) is retried", run.Status), nil
	}
	var m backbeatv1.VideoCreate
	if err := protojson.Unmarshal([]byte(run.Spec), &m); err != nil || m.VideoId != out.VideoID {
		return skipped(out, "the failed run kept no usable request to retry"), nil
	}
	m.RequestId, m.RetryOf = RetryRequestID(run.ID), run.ID
	out.Units = run.Units
	if u, err := s.store.GetUser(ctx, run.UserID); err == nil && run.Units > 0 && u.Balance < run.Units {
		return skipped(out, "user %s has %d units, the retry needs %d", run.UserID, u.Balance, run.Units), nil
	}
	what := fmt.Sprintf("video.create retrying run %s (holds %d units of %s)", run.ID, run.Units, run.UserID)
	// The message id is the create's own (create:<video>:<request id>), so
	// two operators' retries of one run are one message.
	return s.publishOr(ctx, req, out, bus.KindVideoCreate, &m, "create:"+m.VideoId+":"+m.RequestId, what)
}

// replayed says whether a replay re-publishes a stored event: not the
// coordinator's output (video.status), nor the operators' records
// (admin.action), nor the copies an earlier replay made (their originals
// are in the history).
func replayed(m jetstream.Msg, prefix string) bool {
	kind := strings.TrimPrefix(m.Subject(), prefix)
	return kind != bus.KindVideoStatus && kind != bus.KindAdminAction && m.Headers().Get(bus.HeaderReplayOf) == ""
}

// replay re-publishes a video's history (what replayed selects). The coordinator acts on no replayed command and
// keys replayed creates by their original, so nothing changes but lost
// effects being emitted again.
func (s *Service) replay(ctx context.Context, req AdminRequest, out VideoOutcome) (VideoOutcome, error) {
	prefix := s.pub.Subjects().Event(out.VideoID, "")
	msgs, err := bus.ReadHistory(ctx, s.js, prefix+">")
	if err != nil {
		return out, err
	}
	var todo int
	for _, m := range msgs {
		if replayed(m, prefix) {
			todo++
		}
	}
	if todo == 0 {
		return skipped(out, "no events to replay"), nil
	}
	if req.DryRun {
		out.Outcome, out.Detail = OutcomeWould, fmt.Sprintf("would replay %d events (no run or balance changes)", todo)
		return out, nil
	}
	for _, m := range msgs {
		if !replayed(m, prefix) {
			continue
		}
		md, err := m.Metadata()
		if err != nil {
			return out, fmt.Errorf("replay %s: %w", m.Subject(), err)
		}
		// One message id per (action, original): an action repeated after
		// being cut short replays no event twice within the window.
		if err := bus.Republish(ctx, s.js, m, fmt.Sprintf("replay:%s:%d", req.RequestID, md.Sequence.Stream)); err != nil {
			return out, err
		}
	}
	out.Outcome, out.Detail = OutcomeDone, fmt.Sprintf("replayed %d events", todo)
	return out, nil
}
