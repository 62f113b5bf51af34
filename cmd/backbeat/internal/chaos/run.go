package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/natsconf"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/proc"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/workspace"
	coordinator "github.com/backbeat/backbeat/services/render-coordinator"
)

// runState is what the run records as it goes.
type runState struct {
	start time.Time
	mu    sync.Mutex
	// events are the faults injected, in order.
	events []faultEvent
	// problems are failed checks.
	problems []string
	// checks are passed checks, for the report.
	checks []string
	phase  string
	// faultBaseline is a count taken when the phase starts (renderer
	// fault: renders started so far).
	faultBaseline int
	loads         map[string]string
	// webhooks summarises the notify webhook deliveries.
	webhooks string
	// findings are problems seen in the logs that do not fail the run.
	findings []string
	// logErrors is "service count" of error-level log lines.
	logErrors []string
}

func (r *runState) record(what, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, faultEvent{Phase: r.phase, At: time.Now(), What: what, Detail: detail})
	logf(r.start, "[%s] %s %s", r.phase, what, detail)
}

func (r *runState) problem(format string, args ...any) {
	r.note(&r.problems, "  FAIL ", format, args...)
}

func (r *runState) ok(format string, args ...any) {
	r.note(&r.checks, "  ok   ", format, args...)
}

// note appends a check's message to list and prints it with mark.
func (r *runState) note(list *[]string, mark, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	*list = append(*list, msg)
	fmt.Fprintln(os.Stderr, mark, msg)
}

// run is the whole chaos run; it returns the exit status.
func run(ctx context.Context, o options) int {
	r := &runState{start: time.Now(), loads: map[string]string{}}
	dir, err := os.MkdirTemp("", "backbeat-chaos.")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	logf(r.start, "state and logs in %s", dir)
	s := &stack{o: o, dir: dir, start: r.start, passwords: map[string]string{}, adminKey: "chaos-admin-" + randomHex(12),
		services: map[string]*proc.Proc{}}
	for _, u := range natsconf.Users {
		s.passwords[u] = "chaos-" + u + "-" + randomHex(12)
	}
	var w *workload
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.problem("panic: %v", p)
			}
		}()
		w = r.body(ctx, s)
	}()
	for _, err := range s.stopAll() {
		r.problem("shutdown: %v", err)
	}
	if err := s.dropData(); err != nil {
		r.problem("cleanup: %v", err)
	}
	report := r.report(s, w)
	fmt.Print(report)
	_ = os.WriteFile(filepath.Join(dir, "report.txt"), []byte(report), 0o644)
	if o.report != "" {
		if err := os.WriteFile(o.report, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: write report:", err)
		}
	}
	if len(r.problems) > 0 || o.keep {
		fmt.Fprintf(os.Stderr, "chaos: logs and state kept in %s\n", dir)
	} else {
		_ = os.RemoveAll(dir)
	}
	if len(r.problems) > 0 {
		return 1
	}
	return 0
}

// body sets up the stack, runs the phases and the checks; failures are
// recorded in r. It returns the workload (nil when set-up failed).
func (r *runState) body(ctx context.Context, s *stack) *workload {
	fail := func(what string, err error) *workload {
		r.problem("%s: %v", what, err)
		return nil
	}
	song := s.o.song
	if song == "" {
		song = filepath.Join(s.dir, "song.wav")
		cmd := exec.CommandContext(ctx, filepath.Join(s.o.root, "scripts/demo-song.sh"), song, "8")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fail("demo-song.sh", fmt.Errorf("%w: %s", err, out))
		}
	}
	if err := s.setupData(ctx); err != nil {
		return fail("database", err)
	}
	logf(r.start, "database %s, bucket %s", s.data.DBName, s.data.Bucket)
	sink, err := startSink()
	if err != nil {
		return fail("webhook sink", err)
	}
	s.sink = sink
	if err := s.startNATS(ctx); err != nil {
		return fail("nats cluster", err)
	}
	logf(r.start, "3 nats-server nodes up (%s), topology provisioned with --replicas 3", s.nats.urls)
	if err := s.startServices(ctx); err != nil {
		return fail("services", err)
	}
	logf(r.start, "7 services ready")
	apiURL := "http://" + s.services["api"].Addr
	var users []*user
	for _, b := range []string{"pro", "free"} {
		u, err := createUser(ctx, apiURL, s.adminKey, "chaos-"+b, b, 100)
		if err != nil {
			return fail("users", err)
		}
		users = append(users, u)
	}
	w := &workload{song: song, start: 2, end: 2 + s.o.region, poll: 100 * time.Millisecond,
		readyTimeout: s.o.readyTimeout, retryDeadline: 60 * time.Second}

	// One video first, outside the latency table: the first render of each
	// pool pays for cold caches.
	r.phase = "warmup"
	logf(r.start, "phase warmup: 2 videos (one a pool), not in the latency comparison")
	r.runPhase(ctx, w, users, "warmup", 2, 0, nil, s)
	r.phase = "baseline"
	logf(r.start, "phase baseline: %d videos, no fault", s.o.baseline)
	r.runPhase(ctx, w, users, "baseline", s.o.baseline, s.o.stagger, nil, s)
	for _, f := range faults {
		if ctx.Err() != nil {
			break
		}
		if !s.o.faults[f.name] {
			continue
		}
		r.phase = f.name
		r.faultBaseline = countIn(s.services["renderer-gpu"].Log, `"msg":"ffmpeg started"`)
		logf(r.start, "phase %s: %d videos; fault: %s", f.name, s.o.batch, f.title)
		r.runPhase(ctx, w, users, f.name, s.o.batch, s.o.stagger, f.inject, s)
	}
	r.phase = "checks"
	if ctx.Err() != nil {
		r.problem("interrupted: %v", ctx.Err())
		return w
	}
	r.verify(ctx, s, w, users)
	r.scanLogs(s)
	return w
}

// scanLogs counts, per service log, the lines at level error and the NATS
// permission violations. Errors do not fail the run (faults make services
// log errors: publishes refused while a stream elects a leader, queries
// while Postgres restarts); a permission violation does: it is a bug of
// accounts.conf or of the service (two were found this way).
func (r *runState) scanLogs(s *stack) {
	for _, name := range s.order {
		log := s.services[name].Log
		errs := countIn(log, `"level":"error"`)
		perms := countIn(log, "Permissions Violation")
		if perms > 0 {
			r.problem("%s logged %d NATS permission violations (%s)", name, perms, firstLine(log, "Permissions Violation"))
		}
		r.logErrors = append(r.logErrors, fmt.Sprintf("%s %d", name, errs))
	}
}

// firstLine is the message of the first line of file holding s, from s to
// the end of the JSON string, unescaped.
func firstLine(file, s string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.Index(l, s); i >= 0 {
			l = l[i:]
			if j := strings.Index(l, `","`); j > 0 {
				l = l[:j]
			}
			return strings.ReplaceAll(l, `\"`, `"`)
		}
	}
	return ""
}

// diagnose names what the service logs say of a video that did not become
// ready: messages dropped and errors that mention it.
func diagnose(s *stack, id string) string {
	var out []string
	for _, name := range s.order {
		data, err := os.ReadFile(s.services[name].Log)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if !strings.Contains(l, `"video_id":"`+id+`"`) {
				continue
			}
			if strings.Contains(l, `"msg":"message dropped`) || strings.Contains(l, `"level":"error"`) {
				out = append(out, name+": "+jsonField(l, "msg")+": "+jsonField(l, "error"))
			}
		}
	}
	if len(out) == 0 {
		return "no service logged an error or a dropped message for it"
	}
	return strings.Join(out, "; ")
}

// jsonField is the string value of key in a JSON log line, unescaped, or "".
func jsonField(line, key string) string {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		return ""
	}
	v, _ := m[key].(string)
	return v
}

// runPhase submits n videos stagger apart, alternating the users, injects
// the fault (when any) once two videos are created, and waits for every
// video to finish.
func (r *runState) runPhase(ctx context.Context, w *workload, users []*user, phase string, n int, stagger time.Duration,
	inject func(context.Context, *stack, *runState) error, s *stack) {
	var dones []<-chan struct{}
	var faultDone chan error
	for i := 0; i < n && ctx.Err() == nil; i++ {
		_, done := w.submit(ctx, users[i%len(users)], phase)
		dones = append(dones, done)
		if i == 1 && inject != nil {
			faultDone = make(chan error, 1)
			go func() { faultDone <- inject(ctx, s, r) }()
		}
		if i < n-1 {
			_ = sleepCtx(ctx, stagger)
		}
	}
	if faultDone != nil {
		if err := <-faultDone; err != nil {
			r.problem("[%s] fault injection: %v", phase, err)
		}
	}
	for _, d := range dones {
		<-d
	}
	r.loads[phase] = workspace.LoadAvg()
	ready := 0
	for _, v := range w.inPhase(phase) {
		switch {
		case v.Err != nil:
			r.problem("[%s] video %s: %v; logs: %s", phase, v.ID, v.Err, diagnose(s, v.ID))
		case v.Final != "ready":
			r.problem("[%s] video %s ended %s: %s", phase, v.ID, v.Final, v.Reason)
		default:
			ready++
		}
	}
	logf(r.start, "phase %s: %d/%d ready (load %s)", phase, ready, n, r.loads[phase])
}

// verify runs the end checks: ready exactly once, balances, webhooks,
// nothing in flight, every process alive.
func (r *runState) verify(ctx context.Context, s *stack, w *workload, users []*user) {
	logf(r.start, "checks")
	all := w.videos
	readyIDs := map[string]bool{}
	for _, v := range all {
		if v.Final == "ready" {
			readyIDs[v.ID] = true
		}
	}
	if len(readyIDs) == len(all) {
		r.ok("all %d videos ready", len(all))
	} else {
		r.problem("%d of %d videos ready", len(readyIDs), len(all))
	}

	// Nothing in flight: JOBS empty, every durable consumer drained. The
	// last notify and thumbnail jobs may still be finishing: wait a little.
	var lastBacklog string
	settled := false
	for i := 0; i < 120 && ctx.Err() == nil; i++ {
		msgs, cons, err := s.admin.backlog(ctx, "EVENTS", "JOBS", "ADVISORIES")
		if err != nil {
			lastBacklog = err.Error()
		} else {
			var busy []string
			for _, c := range cons {
				if c.NumPending != 0 || c.NumAckPending != 0 {
					busy = append(busy, fmt.Sprintf("%s/%s pending %d ack-pending %d", c.Stream, c.Name, c.NumPending, c.NumAckPending))
				}
			}
			lastBacklog = fmt.Sprintf("JOBS holds %d messages; %d durable consumers; busy: %s", msgs, len(cons), strings.Join(busy, ", "))
			if msgs == 0 && len(busy) == 0 {
				settled = true
				r.ok("nothing in flight: JOBS stream empty, %d durable consumers with 0 pending and 0 ack-pending", len(cons))
				break
			}
		}
		_ = sleepCtx(ctx, 500*time.Millisecond)
	}
	if !settled {
		if subjects, err := s.admin.jobSubjects(ctx); err == nil && subjects != "" {
			lastBacklog += "; JOBS holds " + subjects
		}
		r.problem("in flight after 60s: %s", lastBacklog)
	}

	// ready exactly once, in the EVENTS stream.
	counts, err := s.admin.readyEvents(ctx, "backbeat")
	if err != nil {
		r.problem("read video.status events: %v", err)
	} else {
		bad := 0
		for _, v := range all {
			if counts[v.ID] != 1 {
				bad++
				r.problem("video %s: %d video.status ready events (want 1)", v.ID, counts[v.ID])
			}
		}
		if bad == 0 {
			r.ok("ready exactly once: %d videos, each with one video.status ready event in EVENTS", len(all))
		}
	}
	r.verifyDB(ctx, s, all)

	// Balances: initial minus the units of the user's ready videos.
	bundles := coordinator.DefaultBundles()
	for _, u := range users {
		var want int64 = u.Initial
		n := 0
		for _, v := range all {
			if v.User == u && v.Final == "ready" {
				want -= bundles[u.Bundle].Units(w.end - w.start)
				n++
			}
		}
		got, err := u.balance(ctx)
		switch {
		case err != nil:
			r.problem("balance of %s: %v", u.ID, err)
		case got != want:
			r.problem("balance of %s is %d, want %d (%d - %d ready videos × %d units)", u.ID, got, want, u.Initial, n, bundles[u.Bundle].Units(w.end-w.start))
		default:
			r.ok("balance of %s exact: %d = %d - %d ready videos × %d unit(s)", u.ID, got, u.Initial, n, bundles[u.Bundle].Units(w.end-w.start))
		}
	}

	// Webhooks: one per ready video, none twice. The notify job follows
	// the ready status: wait for the last ones.
	var perVid, perRun map[string]int
	var total int
	for i := 0; i < 100; i++ {
		perVid, perRun, total = s.sink.counts()
		missing := 0
		for id := range readyIDs {
			if perVid[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		_ = sleepCtx(ctx, 300*time.Millisecond)
	}
	dup := 0
	for k, n := range perRun {
		if n > 1 {
			dup++
			r.problem("webhook for %s sent %d times", k, n)
		}
	}
	missing := 0
	for id := range readyIDs {
		if perVid[id] == 0 {
			missing++
			r.problem("no webhook for ready video %s", id)
		}
	}
	if dup == 0 && missing == 0 {
		r.ok("webhooks: %d deliveries for %d ready videos, none twice for one video and run", total, len(readyIDs))
	}
	r.webhooks = fmt.Sprintf("%d deliveries, %d videos notified, %d duplicated (video, run) pairs, %d ready videos without one", total, len(perVid), dup, missing)

	for _, n := range s.nats.nodes {
		if !n.Running() {
			r.problem("nats-server %s not running at the end", n.serverName)
		}
	}
	for _, name := range s.order {
		if !s.services[name].Running() {
			r.problem("%s not running at the end (see %s)", name, s.services[name].Log)
		}
	}
}

func numCPU() int { return runtime.NumCPU() }
