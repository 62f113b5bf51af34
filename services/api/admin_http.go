package api

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/store"
)

// The admin endpoints (admin key only): the operator's actions and the
// failures view. `backbeat replay`, `dlq` and `recover` use them.
func (s *Service) adminRoutes() {
	m := s.tel.Mux
	m.Handle("POST /v1/admin/actions", s.wrap("admin_act", true, s.adminAct))
	m.Handle("GET /v1/admin/actions", s.wrap("admin_actions", true, s.adminActions))
	m.Handle("GET /v1/admin/failures", s.wrap("admin_failures", true, s.adminFailures))
}

// AdminActor is the actor recorded for actions taken with the admin key.
const AdminActor = "admin-key"

func requireAdmin(c caller) error {
	if !c.Admin {
		return errorf(http.StatusForbidden, "admin key required")
	}
	return nil
}

func (s *Service) adminAct(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	var req AdminRequest
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	res, err := s.Act(r.Context(), AdminActor, req)
	if err != nil {
		return err
	}
	code := http.StatusAccepted
	if res.DryRun || res.Repeated {
		code = http.StatusOK
	}
	writeJSON(w, code, res)
	return nil
}

// ActionsResponse is GET /v1/admin/actions: the audit trail, newest first.
type ActionsResponse struct {
	Actions []ActionResult `json:"actions"`
}

func (s *Service) adminActions(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	q := r.URL.Query()
	vid := q.Get("video")
	if vid != "" {
		if err := ids.ValidateVideoID(vid); err != nil {
			return badRequest("video: %v", err)
		}
	}
	limit, err := intParam(q.Get("limit"), store.DefaultRunLimit, store.MaxRunLimit)
	if err != nil {
		return err
	}
	acts, err := s.AuditTrail(r.Context(), vid, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ActionsResponse{Actions: acts})
	return nil
}

// AuditTrail returns the recorded actions (of one video, or all), newest
// first, with their results.
func (s *Service) AuditTrail(ctx context.Context, videoID string, limit int) ([]ActionResult, error) {
	recs, err := s.store.ListActions(ctx, videoID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]ActionResult, 0, len(recs))
	for _, rec := range recs {
		// An undecodable result still shows the action, without its videos.
		res, _ := decodeResult(rec)
		out = append(out, res)
	}
	return out, nil
}

func intParam(v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, badRequest("limit must be a number from 1 to %d", max)
	}
	return n, nil
}

// FailureGroup is the failed steps that share a reason (ids and numbers
// taken out, so that one cause is one group).
type FailureGroup struct {
	// Reason is the normalized reason: ids and numbers read as <id> and <n>.
	Reason string `json:"reason"`
	// Step is the step that failed this way (groups are per step).
	Step     string         `json:"step"`
	Count    int            `json:"count"`
	Videos   int            `json:"videos"`
	LastSeen time.Time      `json:"last_seen"`
	Failures []FailureEntry `json:"failures"`
}

// FailureEntry is one failed step.
type FailureEntry struct {
	VideoID   string    `json:"video_id"`
	RunID     string    `json:"run_id"`
	UserID    string    `json:"user_id"`
	Step      string    `json:"step"`
	Attempt   int32     `json:"attempt"`
	Pool      string    `json:"pool,omitempty"`
	Worker    string    `json:"worker,omitempty"`
	Error     string    `json:"error"`
	RunStatus string    `json:"run_status"`
	At        time.Time `json:"at"`
}

// FailuresResponse is GET /v1/admin/failures.
type FailuresResponse struct {
	Since  time.Time      `json:"since"`
	Total  int            `json:"total"`
	Groups []FailureGroup `json:"groups"`
}

// DefaultFailuresWindow is how far back the failures view looks by default.
const DefaultFailuresWindow = 7 * 24 * time.Hour

func (s *Service) adminFailures(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	q := r.URL.Query()
	window := DefaultFailuresWindow
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return badRequest("since must be a positive duration such as 24h; got %q", v)
		}
		window = d
	}
	limit, err := intParam(q.Get("limit"), store.MaxRunLimit, store.MaxRunLimit)
	if err != nil {
		return err
	}
	vid := q.Get("video")
	if vid != "" {
		if err := ids.ValidateVideoID(vid); err != nil {
			return badRequest("video: %v", err)
		}
	}
	res, err := s.Failures(r.Context(), vid, time.Now().Add(-window), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// Failures reads the steps that failed since a time (of one video, or of
// all) and groups them by normalized reason, the largest group first.
func (s *Service) Failures(ctx context.Context, videoID string, since time.Time, limit int) (FailuresResponse, error) {
	steps, err := s.store.FailedSteps(ctx, videoID, since, limit)
	if err != nil {
		return FailuresResponse{}, err
	}
	return FailuresResponse{Since: since.UTC(), Total: len(steps), Groups: GroupFailures(steps)}, nil
}

var (
	reasonRunID = regexp.MustCompile(`\br[0-9a-f]{24}\b`)
	reasonKey   = regexp.MustCompile(`\b(runs|videos|uploads)/[^\s"':]+`)
	reasonHex   = regexp.MustCompile(`\b[0-9a-f]{16,}\b`)
	reasonNum   = regexp.MustCompile(`\d+(\.\d+)?`)
)

// NormalizeReason takes what differs between failures of one cause out of
// a reason: run ids, object keys, the video id, long hex and numbers.
func NormalizeReason(reason, videoID string) string {
	s := reason
	if videoID != "" {
		s = regexp.MustCompile(`\b`+regexp.QuoteMeta(videoID)+`\b`).ReplaceAllString(s, "<video>")
	}
	s = reasonKey.ReplaceAllString(s, "<key>")
	s = reasonRunID.ReplaceAllString(s, "<run>")
	s = reasonHex.ReplaceAllString(s, "<id>")
	s = reasonNum.ReplaceAllString(s, "<n>")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// GroupFailures groups failed steps (newest first) by step and normalized
// reason; groups come largest first, then most recent.
func GroupFailures(steps []store.FailedStep) []FailureGroup {
	type key struct{ step, reason string }
	idx := map[key]int{}
	var groups []FailureGroup
	videos := map[key]map[string]bool{}
	for _, st := range steps {
		k := key{st.Name, NormalizeReason(st.Error, st.VideoID)}
		i, ok := idx[k]
		if !ok {
			i = len(groups)
			idx[k] = i
			videos[k] = map[string]bool{}
			groups = append(groups, FailureGroup{Reason: k.reason, Step: st.Name})
		}
		g := &groups[i]
		g.Count++
		videos[k][st.VideoID] = true
		g.Videos = len(videos[k])
		at := st.StartedAt
		if st.EndedAt != nil {
			at = *st.EndedAt
		}
		if at.After(g.LastSeen) {
			g.LastSeen = at
		}
		if len(g.Failures) < 20 {
			g.Failures = append(g.Failures, FailureEntry{VideoID: st.VideoID, RunID: st.RunID, UserID: st.UserID,
				Step: st.Name, Attempt: st.Attempt, Pool: st.Pool, Worker: st.Worker, Error: st.Error,
				RunStatus: string(st.RunStatus), At: at})
		}
	}
	sort.SliceStable(groups, func(i, j int) bool {
		if groups[i].Count != groups[j].Count {
			return groups[i].Count > groups[j].Count
		}
		return groups[i].LastSeen.After(groups[j].LastSeen)
	})
	return groups
}
