package api

import (
	"net/http"
	"strings"
	"time"
)

// The dashboard's actions go through Act, like POST /v1/admin/actions: a
// first submit is a dry run that shows what would happen, with a confirm
// form carrying a fresh request id; confirming acts under that id, so a
// second submit of the same form returns the recorded result and acts no
// more.

// actionData is the result fragment of an action form.
type actionData struct {
	Result ActionResult
	// Confirm is the request id of the confirm form, after a dry run.
	Confirm string
	Action  string
	VideoID string
	Reason  string
	// Filter repeats the bulk form's fields in the confirm form.
	Filter map[string]string
}

// formRequestID reads a confirm form's request id.
func formRequestID(r *http.Request) (string, error) {
	id := r.PostFormValue("request_id")
	if !requestIDRE.MatchString(id) {
		return "", badRequest("request_id: missing or invalid; run the dry run again")
	}
	return id, nil
}

func newRequestID(prefix string) string { return prefix + "-" + randomHex(12) }

// act runs req through Act as the session's operator: without the form's
// confirm field as a dry run (and d gets a fresh request id for the confirm
// form), with it for real under the form's request id. It reports whether
// it was a dry run.
func (s *Service) act(r *http.Request, ss session, req AdminRequest, d *actionData) (dry bool, err error) {
	if r.PostFormValue("confirm") == "" {
		req.DryRun, req.RequestID = true, newRequestID("dash-dry")
		d.Confirm = newRequestID("dash")
	} else if req.RequestID, err = formRequestID(r); err != nil {
		return false, err
	}
	if d.Result, err = s.Act(r.Context(), ss.actor(), req); err != nil {
		return req.DryRun, err
	}
	return req.DryRun, nil
}

// videoAction runs cancel, recover or retry on one video: a dry run, or,
// with confirm set, for real.
func (s *Service) videoAction(w http.ResponseWriter, r *http.Request, ss session) error {
	v, err := s.videoOf(r)
	if err != nil {
		return err
	}
	action := r.PostFormValue("action")
	switch action {
	case ActionCancel, ActionRecover, ActionRetry:
	default:
		return badRequest("action: %q is not cancel, recover or retry", action)
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > 500 {
		return badRequest("reason: at most 500 characters")
	}
	d := actionData{Action: action, VideoID: v.ID, Reason: reason}
	dry, err := s.act(r, ss, AdminRequest{Action: action, VideoID: v.ID, Reason: reason}, &d)
	if err != nil {
		return err
	}
	if !dry {
		// The video page's live part listens for this and reloads itself.
		w.Header().Set("HX-Trigger", "refresh-video")
	}
	s.render(w, r, http.StatusOK, "video", "action_result", ss, d)
	return nil
}

// bulkFields are the bulk form's filter fields.
var bulkFields = []string{"from", "to", "status", "user", "template", "pool", "reason"}

// bulkFilter reads the bulk form's filter; from and to are required.
func bulkFilter(r *http.Request) (BulkFilter, map[string]string, error) {
	vals := map[string]string{}
	q := map[string][]string{}
	for _, k := range bulkFields {
		vals[k] = strings.TrimSpace(r.PostFormValue(k))
		q[k] = []string{vals[k]}
	}
	if vals["from"] == "" || vals["to"] == "" {
		return BulkFilter{}, vals, badRequest("from and to are required: a bulk action covers a time range")
	}
	f, _, err := runFilter(q)
	if err != nil {
		return BulkFilter{}, vals, err
	}
	bf := BulkFilter{From: f.From, To: f.To, UserID: f.UserID, Template: f.Template, Pool: f.Pool, Reason: f.Reason}
	for _, st := range f.Statuses {
		bf.Statuses = append(bf.Statuses, string(st))
	}
	return bf, vals, nil
}

func (s *Service) replayPage(w http.ResponseWriter, r *http.Request, ss session) error {
	actions, err := s.store.ListActions(r.Context(), "", 20)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	s.render(w, r, http.StatusOK, "replay", "", ss, map[string]any{
		"From": now.Add(-time.Hour).Format("2006-01-02T15:04"), "To": now.Add(time.Minute).Format("2006-01-02T15:04"),
		"Statuses": dashStatuses, "Actions": actions,
	})
	return nil
}

// replayAction is the bulk action (replay by default, recover or retry): a
// dry run, or, with confirm set, for real.
func (s *Service) replayAction(w http.ResponseWriter, r *http.Request, ss session) error {
	bf, vals, err := bulkFilter(r)
	if err != nil {
		return err
	}
	// The bulk form replays by default; after an outage it also recovers
	// every stalled run of the range, or retries every failed one.
	action := strings.TrimSpace(r.PostFormValue("action"))
	switch action {
	case "":
		action = ActionReplay
	case ActionReplay, ActionRecover, ActionRetry:
	default:
		return badRequest("a bulk action is replay, recover or retry; got %q", action)
	}
	vals["action"] = action
	d := actionData{Action: action, Filter: vals}
	if _, err := s.act(r, ss, AdminRequest{Action: action, Filter: &bf}, &d); err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "replay", "replay_result", ss, d)
	return nil
}
