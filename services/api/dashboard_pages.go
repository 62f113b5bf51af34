package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/store"
)

// dashFuncs are the template helpers.
var dashFuncs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		}
		return ""
	},
	"ms": func(ms int64) string {
		if ms <= 0 {
			return ""
		}
		return (time.Duration(ms) * time.Millisecond).Round(time.Millisecond).String()
	},
	"took": func(start time.Time, end *time.Time) string {
		if end == nil || start.IsZero() {
			return ""
		}
		return end.Sub(start).Round(time.Millisecond).String()
	},
	"cut": func(n int, s string) string {
		if r := []rune(s); len(r) > n {
			return string(r[:n]) + "…"
		}
		return s
	},
	"pct":  func(p float64) string { return strconv.FormatFloat(p, 'f', 1, 64) },
	"list": func(s ...string) []string { return s },
}

// statuses in the order the dashboard lists them.
var dashStatuses = []store.Status{store.StatusPending, store.StatusProcessing, store.StatusStalled,
	store.StatusReady, store.StatusError, store.StatusCancelled}

// poolRE is what a pool name looks like (bus subjects hold it).
var poolRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// runsQuery is the runs page's filter as the operator typed it.
type runsQuery struct {
	Status, User, Template, Pool, Reason, From, To string
}

// parseTime reads a time as RFC 3339 or as an HTML datetime-local (UTC).
func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, badRequest("%s: %q is not a time (2006-01-02T15:04, UTC, or RFC 3339)", field, v)
}

// runFilter turns a query string into a store filter, refusing bad values
// with a 400 that names the field.
func runFilter(q url.Values) (store.RunFilter, runsQuery, error) {
	rq := runsQuery{
		Status: strings.TrimSpace(q.Get("status")), User: strings.TrimSpace(q.Get("user")),
		Template: strings.TrimSpace(q.Get("template")), Pool: strings.TrimSpace(q.Get("pool")),
		Reason: strings.TrimSpace(q.Get("reason")), From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to")),
	}
	var f store.RunFilter
	if rq.Status != "" {
		ok := false
		for _, st := range dashStatuses {
			ok = ok || string(st) == rq.Status
		}
		if !ok {
			return f, rq, badRequest("status: %q is not a status (pending, processing, stalled, ready, error, cancelled)", rq.Status)
		}
		f.Statuses = []store.Status{store.Status(rq.Status)}
	}
	if rq.User != "" {
		if err := ids.ValidateUserID(rq.User); err != nil {
			return f, rq, badRequest("user: %v", err)
		}
		f.UserID = rq.User
	}
	if rq.Template != "" && !templateRE.MatchString(rq.Template) {
		return f, rq, badRequest("template: %q is not a template name", rq.Template)
	}
	if rq.Pool != "" && !poolRE.MatchString(rq.Pool) {
		return f, rq, badRequest("pool: %q is not a pool name", rq.Pool)
	}
	if len(rq.Reason) > 200 {
		return f, rq, badRequest("reason: at most 200 characters")
	}
	f.Template, f.Pool, f.Reason = rq.Template, rq.Pool, rq.Reason
	var err error
	if f.From, err = parseTime("from", rq.From); err != nil {
		return f, rq, err
	}
	if f.To, err = parseTime("to", rq.To); err != nil {
		return f, rq, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, rq, badRequest("from must be before to")
	}
	return f, rq, nil
}

// Encode is the filter as a query string (for the live table and the links).
func (rq runsQuery) Encode(status string) string {
	v := url.Values{}
	for k, x := range map[string]string{"status": status, "user": rq.User, "template": rq.Template,
		"pool": rq.Pool, "reason": rq.Reason, "from": rq.From, "to": rq.To} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v.Encode()
}

// statusCount is one status's count, with the link that filters on it.
type statusCount struct {
	Status   store.Status
	N        int64
	Query    string
	Selected bool
}

type runsData struct {
	Q      runsQuery
	Query  string
	Counts []statusCount
	Total  int64
	Runs   []store.Run
	Limit  int
	Facets store.RunFacets
}

func (s *Service) runsData(ctx context.Context, q url.Values) (runsData, error) {
	f, rq, err := runFilter(q)
	if err != nil {
		return runsData{}, err
	}
	d := runsData{Q: rq, Query: rq.Encode(rq.Status), Limit: store.DefaultRunLimit}
	counts, err := s.store.CountRunsByStatus(ctx, f)
	if err != nil {
		return d, err
	}
	for _, st := range dashStatuses {
		d.Counts = append(d.Counts, statusCount{Status: st, N: counts[st], Query: rq.Encode(string(st)), Selected: rq.Status == string(st)})
		d.Total += counts[st]
	}
	if d.Runs, err = s.store.ListRuns(ctx, f); err != nil {
		return d, err
	}
	return d, nil
}

func (s *Service) runsPage(w http.ResponseWriter, r *http.Request, ss session) error {
	d, err := s.runsData(r.Context(), r.URL.Query())
	if err != nil {
		return err
	}
	if d.Facets, err = s.store.Facets(r.Context()); err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "runs", "", ss, d)
	return nil
}

// runsLive is the counts and the table, which the runs page polls.
func (s *Service) runsLive(w http.ResponseWriter, r *http.Request, ss session) error {
	d, err := s.runsData(r.Context(), r.URL.Query())
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "runs", "runs_live", ss, d)
	return nil
}

// runView is one run of a video with its timeline.
type runView struct {
	store.Run
	Steps   []store.Step
	Current bool
}

type videoData struct {
	Video    store.Video
	Runs     []runView
	Ledger   []store.LedgerEntry
	Actions  []store.AdminAction
	Progress *ProgressView
	Terminal bool
	// Settled is Terminal with every step of the current run ended (the
	// thumbnail and notify steps go on after ready): the page stops polling.
	Settled bool
	// Charged is what the video costs its user now: holds less refunds
	// and grants (ledger amounts are positive; the kind says which way).
	Charged int64
}

// videoOf reads the {id} of the path.
func (s *Service) videoOf(r *http.Request) (store.Video, error) {
	id := r.PathValue("id")
	if err := ids.ValidateVideoID(id); err != nil {
		return store.Video{}, badRequest("%v", err)
	}
	v, err := s.store.GetVideo(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return v, notFound("video " + id)
	}
	return v, err
}

func (s *Service) videoData(ctx context.Context, v store.Video) (videoData, error) {
	d := videoData{Video: v, Terminal: v.Status.Terminal()}
	runs, err := s.store.VideoRuns(ctx, v.ID)
	if err != nil {
		return d, err
	}
	runIDs := make([]string, 0, len(runs))
	for _, run := range runs {
		runIDs = append(runIDs, run.ID)
	}
	steps, err := s.store.StepsOfRuns(ctx, runIDs)
	if err != nil {
		return d, err
	}
	d.Settled = d.Terminal
	for _, run := range runs {
		d.Runs = append(d.Runs, runView{Run: run, Steps: steps[run.ID], Current: run.ID == v.RunID})
		for _, st := range steps[run.ID] {
			if run.ID == v.RunID && st.EndedAt == nil {
				d.Settled = false
			}
		}
	}
	if d.Ledger, err = s.store.RunLedger(ctx, runIDs); err != nil {
		return d, err
	}
	for _, l := range d.Ledger {
		if l.Kind == store.LedgerHold {
			d.Charged += l.Amount
		} else {
			d.Charged -= l.Amount
		}
	}
	if d.Actions, err = s.store.ListActions(ctx, v.ID, 50); err != nil {
		return d, err
	}
	if !d.Terminal && v.RunID != "" {
		p, _, err := s.progress.Last(ctx, v.ID)
		if err != nil {
			bus.Logger(ctx, s.log).Warn("read progress", zap.String("video_id", v.ID), zap.Error(err))
		} else if p != nil && p.GetRunId() == v.RunID {
			d.Progress = &ProgressView{Attempt: p.GetAttempt(), FramesDone: p.GetFramesDone(), FramesTotal: p.GetFramesTotal(),
				Percent: p.GetPercent(), Pool: p.GetPool(), Worker: p.GetWorker()}
		}
	}
	return d, nil
}

// videoPage is the whole page, or with fragment its live part (polled every
// second while the video is in flight, and once more after an action).
func (s *Service) videoPage(fragment string) dashHandler {
	return func(w http.ResponseWriter, r *http.Request, ss session) error {
		v, err := s.videoOf(r)
		if err != nil {
			return err
		}
		d, err := s.videoData(r.Context(), v)
		if err != nil {
			return err
		}
		s.render(w, r, http.StatusOK, "video", fragment, ss, d)
		return nil
	}
}

// parseSince reads "since" as a duration back from now (24h) or a time.
func parseSince(v, def string) (time.Time, string, error) {
	if v == "" {
		v = def
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 || d > 90*24*time.Hour {
			return time.Time{}, v, badRequest("since: a duration between 1s and 2160h")
		}
		return time.Now().Add(-d), v, nil
	}
	t, err := parseTime("since", v)
	return t, v, err
}

func (s *Service) failuresPage(w http.ResponseWriter, r *http.Request, ss session) error {
	since, sinceText, err := parseSince(r.URL.Query().Get("since"), "24h")
	if err != nil {
		return err
	}
	res, err := s.Failures(r.Context(), "", since, store.MaxRunLimit)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "failures", "", ss, map[string]any{
		"Since": sinceText, "From": since, "Res": res, "Capped": res.Total == store.MaxRunLimit,
	})
	return nil
}

// consumerRow is one JOBS consumer as JetStream reports it.
type consumerRow struct {
	Name                                string
	Pending, AckPending, Waiting, Redel uint64
	LastActive                          *time.Time
	Err                                 string
}

// jobConsumers are the JOBS durables of this deployment: one per job step,
// and one per render pool and priority.
func (s *Service) jobConsumers() []string {
	names := []string{bus.StepAudio, bus.StepThumbnail, bus.StepCDN, bus.StepNotify}
	for _, pool := range s.cfg.Pools {
		for _, prio := range bus.Priorities {
			names = append(names, bus.RenderConsumer(pool, prio))
		}
	}
	return names
}

func (s *Service) poolsPage(w http.ResponseWriter, r *http.Request, ss session) error {
	ctx := r.Context()
	d := map[string]any{"Pools": s.cfg.Pools}
	stream, err := s.js.Stream(ctx, bus.StreamJobs)
	if err != nil {
		d["StreamErr"] = fmt.Sprintf("stream %s: %v", bus.StreamJobs, err)
	} else {
		info, err := stream.Info(ctx)
		if err != nil {
			d["StreamErr"] = fmt.Sprintf("stream %s: %v", bus.StreamJobs, err)
		} else {
			d["Stream"] = info.State
		}
		var rows []consumerRow
		for _, name := range s.jobConsumers() {
			row := consumerRow{Name: name}
			c, err := stream.Consumer(ctx, name)
			var ci *jetstream.ConsumerInfo
			if err == nil {
				ci, err = c.Info(ctx)
			}
			if err != nil {
				row.Err = err.Error()
			} else {
				row.Pending, row.AckPending, row.Waiting, row.Redel = ci.NumPending, uint64(ci.NumAckPending), uint64(ci.NumWaiting), uint64(ci.NumRedelivered)
				row.LastActive = ci.Delivered.Last
			}
			rows = append(rows, row)
		}
		d["Consumers"] = rows
	}
	since := 15 * time.Minute
	workers, err := s.store.RecentWorkers(ctx, time.Now().Add(-since))
	if err != nil {
		return err
	}
	d["Workers"], d["WorkersSince"] = workers, fmt.Sprintf("%d minutes", int(since.Minutes()))
	s.render(w, r, http.StatusOK, "pools", "", ss, d)
	return nil
}
