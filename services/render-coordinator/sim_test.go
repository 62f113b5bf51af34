package coordinator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"gorm.io/gorm"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// The simulation drives the real coordinator (its handlers, its watchdog,
// its transactions on memRepo, or with -sim.db=sqlite its SQL on a real
// SQLite database) against simulated workers, apps and operators on a
// simulated bus that duplicates, delays, reorders and redelivers messages,
// suspends handlers between their commit and their publishes, crashes the
// coordinator there, and takes the infrastructure down. After every step it
// checks the invariants of docs/reliability.md.
//
//	go test -run 'TestSimulation$' -sim.seeds=10000              # more seeds
//	go test -run 'TestSimulation$' -sim.seed=42 -sim.trace       # replay one, verbosely
//	go test -run 'TestSimulation$' -sim.seed=42 -sim.db=sqlite   # the same seed on SQLite

var (
	simSeeds = flag.Int("sim.seeds", 0, "simulation: number of seeds to run (default 1000, 30 under -race)")
	simFirst = flag.Int64("sim.first", 1, "simulation: first seed")
	simSeed  = flag.Int64("sim.seed", 0, "simulation: run only this seed")
	simTrace = flag.Bool("sim.trace", false, "simulation: print the whole trace of each seed")
	simSteps = flag.Int("sim.steps", 120, "simulation: random steps per seed before the drain")
	simKeep  = flag.Bool("sim.keep-going", false, "simulation: run every seed even after violations, and report them by kind")
	simCheck = flag.String("sim.check", "", "simulation: comma-separated invariant kinds to check (default: all)")
	simDB    = flag.String("sim.db", "mem", "simulation: the coordinator's database, mem (memRepo) or sqlite (gormRepo on SQLite)")
)

// outcomeOf names how a run ended, for the coverage line of the summary.
func outcomeOf(r store.Run) string {
	switch {
	case r.Status == store.StatusCancelled && strings.HasPrefix(r.Reason, "superseded"):
		return "superseded"
	case r.Status == store.StatusError && strings.HasPrefix(r.Reason, "insufficient credits"):
		return "refused (credits)"
	case r.Status == store.StatusError && r.Units == 0:
		return "refused (invalid)"
	}
	return string(r.Status)
}

func formatOutcomes(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// simStart is each user's balance at the start of a seed: ua can pay for
// what it asks, ub (owner of v1-square, in half the seeds) runs out after a
// video or two, so creates are refused for want of credits, also while
// another run of the video is in flight.
var simStart = map[string]int64{"ua": 6, "ub": 2}

// defaultSimSeeds is how many seeds a plain `go test` runs in memory, and
// defaultSQLiteSeeds on SQLite; defaultAgreeSeeds are run on both and
// compared (TestMemoryAndSQLiteAgree).
var defaultSimSeeds, defaultSQLiteSeeds, defaultAgreeSeeds = 1000, 100, 50

const (
	simStall     = 2 * time.Minute
	simMaxDrain  = 2 * time.Hour
	simAckWait   = 30 * time.Second
	simUnitSecs  = 10
	simMaxRegion = 20
)

// violation is one broken invariant; kind groups them in reports.
type violation struct {
	kind string
	msg  string
}

type simVideo struct {
	id, user string
}

type renderWork struct {
	job     *simMsg
	j       *backbeatv1.RenderJob
	frames  int64
	total   int64
	mode    string // ok, hang, die, fail
	dieAt   int64
	claimed time.Time
}

// claim is what the simulation knows of one render attempt's worker.
type claim struct {
	at, moved time.Time
	frames    int64
}

type sim struct {
	seed   int64
	rng    *rand.Rand
	now    time.Time
	repo   repo
	mem    *memRepo     // the repository, when in memory
	db     *store.Store // the SQLite database, when on SQLite
	svc    *Service
	bus    *simBus
	kv     *simKV
	blob   *memBlob
	prog   *simProgress
	trace  []traceLine
	verb   bool
	videos []simVideo
	users  []string

	tasks   []*simTask    // suspended handlers
	idle    []chan func() // task goroutines waiting for a task
	hung    []*simMsg     // jobs held by hung workers
	renders []*renderWork
	cold    map[string]time.Time // pool → no worker takes its jobs until then

	pYield       float64
	pubDown      int // steps left with publishes failing
	dbDown       int // 1 while the database fails every statement
	dbUntil      time.Time
	dirty        bool       // the database changed since the last loadAll (SQLite)
	dbWrites     uint64     // writes to the SQLite database
	checked      [2]uint64  // the database and blob versions the last check saw, +1
	policy       bus.Policy // the coordinator's Router().Policy
	cache        simState
	nextWatch    time.Time
	nextSweep    time.Time
	restartEvery time.Duration
	lastRestart  time.Time

	// What the simulated world knows, for the invariants.
	cancelIntent map[string]bool // runs a cancel was meant for
	workerFailed map[string]bool // runs a worker reported a failure of
	claims       map[string]*claim
	stallSeen    map[string]bool
	hungOn       map[string]bool            // run/stage a worker hung on
	writers      map[string]map[string]bool // object key → videos that wrote it
	lastReq      map[string]string          // video → last request id the app used
	apiNamesRun  bool                       // the API puts the run id it sees into cancel/recover

	violations []violation
	outcomes   map[string]int // how the runs ended, counted at the final check
	kinds      map[string]bool
}

// traceLine is one line of a seed's trace, formatted only when it is read
// (a replay, a report): most seeds' traces are never printed. Its arguments
// are values, or messages the simulation no longer changes.
type traceLine struct {
	at     time.Time
	format string
	args   []any
}

func (l traceLine) String() string {
	return fmt.Sprintf("%6.1fs ", l.at.Sub(simEpoch).Seconds()) + fmt.Sprintf(l.format, l.args...)
}

func (w *sim) logf(format string, args ...any) {
	line := traceLine{at: w.now, format: format, args: args}
	w.trace = append(w.trace, line)
	if w.verb {
		fmt.Println(line)
	}
}

// lines is the trace, formatted.
func (w *sim) lines(from int) []string {
	out := make([]string, 0, len(w.trace)-from)
	for _, l := range w.trace[from:] {
		out = append(out, l.String())
	}
	return out
}

var simEpoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// TestSimulation runs the seeds on the database -sim.db names (memRepo by
// default).
func TestSimulation(t *testing.T) {
	n := *simSeeds
	if n == 0 {
		n = defaultSimSeeds
	}
	simulate(t, *simDB, n)
}

// TestSimulationOnSQLite runs fewer seeds on gormRepo over SQLite, the same
// SQL as production: what memRepo stands for must also hold there.
func TestSimulationOnSQLite(t *testing.T) {
	simulate(t, "sqlite", defaultSQLiteSeeds)
}

func simulate(t *testing.T, backend string, n int) {
	seeds := make([]int64, 0, n)
	if *simSeed != 0 {
		seeds = append(seeds, *simSeed)
	} else {
		for i := 0; i < n; i++ {
			seeds = append(seeds, *simFirst+int64(i))
		}
	}
	byKind := map[string][]int64{}
	outcomes := map[string]int{}
	first := map[string]string{}
	failed := 0
	steps := 0
	start := time.Now()
	workers := runtime.GOMAXPROCS(0)
	if len(seeds) < workers {
		workers = len(seeds)
	}
	results := make(chan *sim, workers)
	next := make(chan int64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		sl := newSimSlotOn(t, backend)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range next {
				results <- runSim(t, sl, seed, *simTrace)
			}
		}()
	}
	go func() {
		defer close(next)
		for _, seed := range seeds {
			select {
			case next <- seed:
			case <-stop:
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	stopped := false
	for w := range results {
		if stopped {
			continue
		}
		seed := w.seed
		steps += len(w.trace)
		for k, n := range w.outcomes {
			outcomes[k] += n
		}
		if len(w.violations) == 0 {
			continue
		}
		failed++
		for k := range w.kinds {
			byKind[k] = append(byKind[k], seed)
			if _, ok := first[k]; !ok {
				first[k] = w.report()
			}
		}
		if !*simKeep {
			stopped = true
			close(stop)
			t.Errorf("seed %d broke an invariant; replay with: go test -run TestSimulation -sim.seed=%d -sim.trace\n%s", seed, seed, w.report())
		}
	}
	t.Logf("simulation: %d seeds, %d trace lines, %d seeds with violations, %.1fs (%s)", len(seeds), steps, failed, time.Since(start).Seconds(), backend)
	t.Logf("simulation: how runs ended: %s", formatOutcomes(outcomes))
	if failed > 0 && *simKeep {
		kinds := make([]string, 0, len(byKind))
		for k := range byKind {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		var b strings.Builder
		for _, k := range kinds {
			s := byKind[k]
			fmt.Fprintf(&b, "%-16s %5d seeds, first %v\n", k, len(s), s[:min(len(s), 8)])
		}
		for _, k := range kinds {
			fmt.Fprintf(&b, "\n=== first seed of %s\n%s", k, first[k])
		}
		t.Errorf("invariant violations by kind:\n%s", b.String())
	}
}

// report is the violations and the end of the trace, short enough to read.
func (w *sim) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d violations:\n", w.seed)
	for i, v := range w.violations {
		if i == 10 {
			fmt.Fprintf(&b, "  … %d more\n", len(w.violations)-10)
			break
		}
		fmt.Fprintf(&b, "  [%s] %s\n", v.kind, v.msg)
	}
	from := 0
	if len(w.trace) > 80 && !w.verb {
		fmt.Fprintf(&b, "  (last 80 of %d trace lines; -sim.trace prints all)\n", len(w.trace))
		from = len(w.trace) - 80
	}
	for _, l := range w.lines(from) {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func (w *sim) violate(kind, format string, args ...any) {
	if *simCheck != "" && !strings.Contains(","+*simCheck+",", ","+kind+",") {
		return
	}
	msg := fmt.Sprintf(format, args...)
	for _, v := range w.violations {
		if v.msg == msg {
			return
		}
	}
	w.violations = append(w.violations, violation{kind, msg})
	w.kinds[kind] = true
	w.logf("VIOLATION [%s] %s", kind, msg)
}

func simBundles() map[string]Bundle {
	return map[string]Bundle{
		"sim": {Name: "sim", CRF: 23, Preset: "ultrafast", FPS: 10, Priority: bus.PrioNormal, Pools: []string{"gpu", "cpu"},
			MaxRegionSeconds: simMaxRegion, UnitSeconds: simUnitSecs, Encoder: "libx264"},
		"free": DefaultBundles()["free"],
	}
}

// simSlot is one database the simulation reuses from seed to seed (emptied
// in between: opening and migrating SQLite costs more than a seed): a
// memRepo, or SQLite behind gormRepo.
type simSlot struct {
	mem *memRepo
	db  *store.Store
	w   *sim // the seed running on it, for the outage
}

// newSimSlot is a slot on the database -sim.db names.
func newSimSlot(t *testing.T) *simSlot { return newSimSlotOn(t, *simDB) }

func newSimSlotOn(t *testing.T, backend string) *simSlot {
	sl := &simSlot{}
	switch backend {
	case "mem":
		sl.mem = newMemRepo()
		sl.mem.down = func() bool { return sl.w != nil && sl.w.dbDown > 0 }
	case "sqlite":
		db, err := store.Open(context.Background(), "sqlite://:memory:")
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		t.Cleanup(func() { _ = db.Close() })
		sl.db = db
		sl.installHooks()
	default:
		t.Fatalf("-sim.db=%s: want mem or sqlite", backend)
	}
	return sl
}

func (sl *simSlot) repo() repo {
	if sl.mem != nil {
		return sl.mem
	}
	return gormRepo{db: sl.db}
}

// installHooks makes every statement fail while the seed's database is
// "down", and notes writes so the invariants are re-read only after one.
func (sl *simSlot) installHooks() {
	fail := func(tx *gorm.DB) {
		if sl.w != nil && sl.w.dbDown > 0 {
			_ = tx.AddError(errSimOutage)
		}
	}
	wrote := func(tx *gorm.DB) {
		if sl.w != nil && tx.Error == nil {
			sl.w.dirty = true
			sl.w.dbWrites++
		}
	}
	cb := sl.db.DB.Callback()
	_ = cb.Create().Before("gorm:create").Register("sim:outage", fail)
	_ = cb.Query().Before("gorm:query").Register("sim:outage", fail)
	_ = cb.Update().Before("gorm:update").Register("sim:outage", fail)
	_ = cb.Delete().Before("gorm:delete").Register("sim:outage", fail)
	_ = cb.Row().Before("gorm:row").Register("sim:outage", fail)
	_ = cb.Raw().Before("gorm:raw").Register("sim:outage", fail)
	_ = cb.Create().After("gorm:create").Register("sim:wrote", wrote)
	_ = cb.Update().After("gorm:update").Register("sim:wrote", wrote)
	_ = cb.Delete().After("gorm:delete").Register("sim:wrote", wrote)
	_ = cb.Raw().After("gorm:raw").Register("sim:wrote", wrote)
}

func (sl *simSlot) reset(users ...store.User) error {
	if sl.mem != nil {
		sl.mem.reset(users...)
		return nil
	}
	for _, tbl := range []string{"ledger_entries", "steps", "runs", "videos", "users", "api_keys"} {
		if err := sl.db.DB.Exec("DELETE FROM " + tbl).Error; err != nil {
			return fmt.Errorf("empty %s: %w", tbl, err)
		}
	}
	for _, u := range users {
		if err := sl.db.UpsertUser(context.Background(), u); err != nil {
			return fmt.Errorf("user: %w", err)
		}
	}
	return nil
}

func runSim(t *testing.T, sl *simSlot, seed int64, verbose bool) *sim {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	w := &sim{seed: seed, rng: rng, now: simEpoch, verb: verbose, cold: map[string]time.Time{},
		cancelIntent: map[string]bool{}, workerFailed: map[string]bool{}, claims: map[string]*claim{}, stallSeen: map[string]bool{}, hungOn: map[string]bool{},
		writers: map[string]map[string]bool{}, lastReq: map[string]string{},
		kinds: map[string]bool{}, outcomes: map[string]int{}, pYield: 0.15 + 0.2*rng.Float64()}
	w.bus = &simBus{w: w, subj: bus.Subjects{Prefix: "sim"}, seen: map[string]bool{}}
	w.kv = &simKV{w: w, m: map[string]bus.RunState{}, rev: map[string]uint64{}}
	w.blob = &memBlob{w: w, objs: map[string][]byte{}}
	w.prog = &simProgress{last: map[string]*backbeatv1.RenderProgress{}, at: map[string]time.Time{}}
	if rng.Intn(3) == 0 {
		w.restartEvery = time.Duration(40+rng.Intn(60)) * time.Second
	}

	// Users and videos: ids chosen so that naive key layouts collide
	// ("v1" and "v1-square"), owned by different users.
	w.users = []string{"ua", "ub"}
	var users []store.User
	for _, u := range w.users {
		users = append(users, store.User{ID: u, Balance: simStart[u], Bundle: "sim"})
	}
	sl.w = nil
	if err := sl.reset(users...); err != nil {
		t.Fatalf("reset: %v", err)
	}
	sl.w = w
	defer func() { sl.w = nil }()
	w.repo, w.mem, w.db = sl.repo(), sl.mem, sl.db
	w.dirty = true

	w.videos = []simVideo{{"v1", "ua"}, {"v2", "ua"}, {"v1-square", "ub"}}
	if rng.Intn(2) == 0 {
		w.videos = w.videos[:2]
	}
	w.apiNamesRun = simAPINamesRun
	w.restart("start")

	for i := 0; i < *simSteps && len(w.violations) == 0; i++ {
		w.step()
		w.check(false)
	}
	if len(w.violations) == 0 {
		w.drain()
	}
	for _, tk := range w.tasks {
		w.kill(tk)
	}
	for _, ch := range w.idle {
		close(ch)
	}
	w.idle = nil
	return w
}

// simAPINamesRun says whether the API (services/api) names the run a cancel or
// recover is meant for.
var simAPINamesRun = true

// restart starts a new coordinator process: what the old one kept in memory
// is gone, and its suspended handlers die with it.
func (w *sim) restart(why string) {
	for _, tk := range w.tasks {
		w.kill(tk)
	}
	w.tasks = nil
	for _, m := range w.bus.events {
		m.inFlight = false
	}
	svc, err := New(Config{Bundles: simBundles(), StallTimeout: simStall, EdgeBaseURL: "https://edge.sim"},
		Deps{Name: "sim", Store: w.db, repo: w.repo, Pub: w.bus, Runs: w.kv, Blob: w.blob, Progress: w.prog, Log: zap.NewNop(),
			Topo: bus.DefaultTopology("sim", []string{"gpu", "cpu"}), Now: func() time.Time { return w.now },
			NewRunID: w.newRunID})
	if err != nil {
		panic(err)
	}
	w.svc = svc
	w.policy = svc.Router().Policy
	w.lastRestart = w.now
	w.nextWatch = w.now.Add(svc.cfg.StallCheckEvery)
	w.logf("coordinator (re)started: %s", why)
	w.nextSweep = w.now.Add(svc.cfg.SweepEvery)
	w.runTask("sweep", nil, func(ctx context.Context) error { return svc.Sweep(ctx) })
}

func (w *sim) newRunID() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 24)
	for i := range b {
		b[i] = hex[w.rng.Intn(16)]
	}
	return "r" + string(b)
}

func (w *sim) kill(tk *simTask) {
	tk.resume <- false
	<-tk.done
	if tk.ev != nil {
		tk.ev.inFlight = false
	}
	w.logf("  %s died with the coordinator", tk.name)
}

// runTask runs fn as a coordinator handler until it returns or suspends.
func (w *sim) runTask(name string, ev *simMsg, fn func(ctx context.Context) error) {
	tk := &simTask{name: name, ev: ev, resume: make(chan bool), yielded: make(chan struct{}), done: make(chan error, 1)}
	ctx := context.WithValue(context.Background(), taskKey{}, tk)
	if ev != nil {
		seq := ev.seq
		if ev.replayOf != 0 {
			seq = ev.replayOf
		}
		ctx = withEventSequence(ctx, seq, ev.replayOf != 0)
		ev.inFlight, ev.deliverAt = true, w.now
		ev.deliveries++
	}
	w.goTask(func(idle chan func()) {
		var err error
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("sim: handler panicked: %v", p)
				w.violate("panic", "%s panicked: %v", name, p)
			}
			// The simulation waits on done: the goroutine is idle again
			// before it goes on.
			w.idle = append(w.idle, idle)
			tk.done <- err
		}()
		err = fn(ctx)
	})
	w.wait(tk)
}

// goTask runs f on an idle task goroutine, or a new one: a goroutine per
// task would grow a new stack for every handler.
func (w *sim) goTask(f func(idle chan func())) {
	var ch chan func()
	if n := len(w.idle); n > 0 {
		ch, w.idle = w.idle[n-1], w.idle[:n-1]
	} else {
		ch = make(chan func())
		go func() {
			for f := range ch {
				f()
			}
		}()
	}
	ch <- func() { f(ch) }
}

// busy reports whether a task of that name is suspended.
func (w *sim) busy(name string) bool {
	for _, tk := range w.tasks {
		if tk.name == name {
			return true
		}
	}
	return false
}

// wait lets a task run until it suspends (kept for later) or ends. A task
// that blocks anywhere else would deadlock the simulation: that is a bug in
// the simulation (or a lock held across I/O), reported as such.
func (w *sim) wait(tk *simTask) {
	select {
	case <-tk.yielded:
		w.tasks = append(w.tasks, tk)
	case err := <-tk.done:
		w.finished(tk, err)
	case <-time.After(20 * time.Second):
		panic(fmt.Sprintf("sim seed %d: %s blocked outside an interception point\n%s", w.seed, tk.name, strings.Join(w.lines(max(0, len(w.trace)-30)), "\n")))
	}
}

// finished applies the runner's policy to a handler's result.
func (w *sim) finished(tk *simTask, err error) {
	ev := tk.ev
	if ev == nil {
		if err != nil {
			w.logf("  %s: %v", tk.name, err)
		}
		return
	}
	ev.inFlight = false
	pol := w.policy
	switch {
	case err == nil || errors.Is(err, bus.ErrNotCurrent):
		if w.rng.Float64() < 0.05 {
			w.logf("  %s handled; ack lost, will be redelivered", tk.name)
			ev.notBefore = w.now.Add(simAckWait)
			return
		}
		w.bus.removeEvent(ev)
		w.logf("  %s handled: %v", tk.name, err)
	case bus.IsPermanent(err):
		w.bus.removeEvent(ev)
		w.logf("  %s failed for good: %v", tk.name, err)
		w.runnerFailed(ev, err, true)
	case pol.MaxDeliver > 0 && ev.deliveries >= pol.MaxDeliver:
		w.bus.removeEvent(ev)
		w.logf("  %s failed on delivery %d, the last: %v", tk.name, ev.deliveries, err)
		w.runnerFailed(ev, err, false)
	default:
		d := pol.Delay(uint64(ev.deliveries))
		ev.notBefore = w.now.Add(d)
		w.logf("  %s failed (delivery %d), retry in %s: %v", tk.name, ev.deliveries, d, err)
	}
}

// runnerFailed is what bus's runner publishes when a coordinator handler
// will not succeed.
func (w *sim) runnerFailed(ev *simMsg, err error, permanent bool) {
	sf := &backbeatv1.StepFailed{Step: "coordinator", VideoId: ev.vid, Reason: err.Error(), Permanent: permanent}
	if m, ok := ev.msg.(interface{ GetRunId() string }); ok {
		sf.RunId = m.GetRunId()
	}
	w.bus.add(w.bus.subj.Event(ev.vid, bus.KindStepFailed), sf, fmt.Sprintf("failed:coordinator:%d", ev.seq), 0)
}

// deliver hands one event to the coordinator's router.
func (w *sim) deliver(ev *simMsg) {
	name := fmt.Sprintf("#%d %s %s", ev.seq, ev.kind, ev.vid)
	if ev.replayOf != 0 {
		name += fmt.Sprintf(" (replay of #%d)", ev.replayOf)
	}
	w.logf("deliver %s (delivery %d) %s", name, ev.deliveries+1, brief{ev.msg})
	s := w.svc
	m := ev.msg
	w.runTask(name, ev, func(ctx context.Context) error {
		switch ev.kind {
		case bus.KindVideoCreate:
			return s.onCreate(ctx, m.(*backbeatv1.VideoCreate))
		case bus.KindVideoCancel:
			return s.onCancel(ctx, m.(*backbeatv1.VideoCancel))
		case bus.KindVideoRecover:
			return s.onRecover(ctx, m.(*backbeatv1.VideoRecover))
		case bus.KindAudioDone:
			return s.onAudioDone(ctx, m.(*backbeatv1.AudioDone))
		case bus.KindRenderDone:
			return s.onRenderDone(ctx, m.(*backbeatv1.RenderDone))
		case bus.KindCDNDone:
			return s.onCDNDone(ctx, m.(*backbeatv1.CdnDone))
		case bus.KindThumbnailDone:
			return s.onThumbnailDone(ctx, m.(*backbeatv1.ThumbnailDone))
		case bus.KindNotifyDone:
			return s.onNotifyDone(ctx, m.(*backbeatv1.NotifyDone))
		case bus.KindStepFailed:
			return s.onStepFailed(ctx, m.(*backbeatv1.StepFailed))
		}
		return fmt.Errorf("sim: no handler for %s", ev.kind)
	})
}

// brief is a message in a trace line, cut short; formatted only when the
// line is.
type brief struct{ m proto.Message }

func (b brief) String() string {
	s := fmt.Sprint(b.m)
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// deliverable events, in stream order.
func (w *sim) deliverable() []*simMsg {
	var out []*simMsg
	for _, m := range w.bus.events {
		if m.inFlight && w.now.Sub(m.deliverAt) >= simAckWait {
			m.inFlight = false // ack wait expired: redelivered while the first still runs
		}
		if !m.inFlight && !m.notBefore.After(w.now) {
			out = append(out, m)
		}
	}
	return out
}

func (w *sim) pick(n int) int { return w.rng.Intn(n) }

// step is one random action of the world.
func (w *sim) step() {
	if w.pubDown > 0 {
		w.pubDown--
	}
	switch r := w.rng.Intn(100); {
	case r < 10:
		w.appCreate()
	case r < 14:
		w.appCancel()
	case r < 16:
		w.operatorRecover()
	case r < 17:
		w.operatorReplay()
	case r < 45:
		if ev := w.deliverable(); len(ev) > 0 {
			// Mostly the oldest (a stream is ordered), sometimes any (retries,
			// several replicas).
			i := 0
			if w.rng.Intn(3) == 0 {
				i = w.pick(len(ev))
			}
			w.deliver(ev[i])
		}
	case r < 55:
		if len(w.tasks) > 0 {
			i := w.pick(len(w.tasks))
			tk := w.tasks[i]
			w.tasks = append(w.tasks[:i:i], w.tasks[i+1:]...)
			tk.resume <- true
			w.wait(tk)
		}
	case r < 75:
		w.work(false)
	case r < 90:
		w.tick(time.Duration(1+w.rng.Intn(20)) * time.Second)
	case r < 92:
		w.restart("crash")
	case r < 93:
		w.dbDown = 1
		w.dbUntil = w.now.Add(time.Duration(10+w.rng.Intn(350)) * time.Second)
		w.logf("database down until +%s", w.dbUntil.Sub(w.now))
	case r < 95:
		w.pubDown = 1 + w.rng.Intn(4)
		w.logf("publishes fail for %d steps", w.pubDown)
	case r < 97:
		pool := []string{"gpu", "cpu"}[w.pick(2)]
		w.cold[pool] = w.now.Add(time.Duration(1+w.rng.Intn(6)) * time.Minute)
		w.logf("pool %s has no free worker until +%s", pool, w.cold[pool].Sub(w.now))
	default:
		w.tick(time.Duration(30+w.rng.Intn(120)) * time.Second)
	}
}

// tick moves time: renders advance, the watchdog runs when due.
func (w *sim) tick(d time.Duration) {
	w.now = w.now.Add(d)
	w.logf("time +%s", d)
	if w.dbDown > 0 && !w.dbUntil.After(w.now) {
		w.dbDown = 0
		w.logf("database back")
	}
	for _, r := range append([]*renderWork(nil), w.renders...) {
		w.advanceRender(r, d)
	}
	w.releaseHung()
	if w.restartEvery > 0 && w.now.Sub(w.lastRestart) >= w.restartEvery {
		w.restart("deploy")
	}
	for !w.nextWatch.After(w.now) {
		w.nextWatch = w.nextWatch.Add(w.svc.cfg.StallCheckEvery)
		if w.busy("watchdog") {
			continue // one watchdog loop per process: the next pass waits for this one
		}
		s := w.svc
		w.runTask("watchdog", nil, func(ctx context.Context) error {
			if err := s.CheckStalls(ctx); err != nil {
				return err
			}
			if !w.nextSweep.After(w.now) {
				w.nextSweep = w.now.Add(s.cfg.SweepEvery)
				return s.Sweep(ctx)
			}
			return nil
		})
	}
}

func (w *sim) video() simVideo { return w.videos[w.pick(len(w.videos))] }

// appCreate is the app asking for a video (sometimes a retry of its last
// request, sometimes one the coordinator must refuse).
func (w *sim) appCreate() {
	v := w.video()
	user := v.user
	req := fmt.Sprintf("q%d", w.rng.Intn(1_000_000))
	if last, ok := w.lastReq[v.id]; ok && w.rng.Intn(5) == 0 {
		req = last // the app retries a create it is not sure went through
	}
	w.lastReq[v.id] = req
	start := float64(w.rng.Intn(30))
	length := float64(5 + w.rng.Intn(14))
	if w.rng.Intn(10) == 0 {
		length = simMaxRegion + 5 // over the bundle's limit: refused
	}
	if w.rng.Intn(20) == 0 {
		user = w.users[w.pick(len(w.users))] // maybe someone else's video
	}
	m := &backbeatv1.VideoCreate{VideoId: v.id, UserId: user, AudioKey: keys.UploadPrefix(v.id) + "audio.wav",
		StartSeconds: start, EndSeconds: start + length, Template: "spectrum", Format: backbeatv1.Format_FORMAT_SQUARE,
		RequestId: req}
	w.logf("app: create %s by %s (request %s, %.0fs)", v.id, user, req, length)
	w.bus.add(w.bus.subj.Event(v.id, bus.KindVideoCreate), m, "create:"+v.id+":"+req+fmt.Sprintf(":%d", w.rng.Intn(3)), 0)
}

// currentRun is what the API reads from the database: the video's run.
func (w *sim) currentRun(vid string) (store.Video, bool) {
	v, ok, err := w.repo.Auto(context.Background()).Video(vid)
	return v, err == nil && ok && v.RunID != ""
}

func (w *sim) appCancel() {
	v := w.video()
	cur, ok := w.currentRun(v.id)
	if !ok {
		return
	}
	m := &backbeatv1.VideoCancel{VideoId: v.id, Reason: "user", RequestId: fmt.Sprintf("c%d", w.rng.Intn(1_000_000))}
	if w.apiNamesRun {
		m.RunId = cur.RunID
	}
	w.cancelIntent[cur.RunID] = true
	w.logf("app: cancel %s (the app sees run %s)", v.id, cur.RunID)
	w.bus.add(w.bus.subj.Event(v.id, bus.KindVideoCancel), m, "cancel:"+m.RequestId, 0)
}

func (w *sim) operatorRecover() {
	v := w.video()
	cur, ok := w.currentRun(v.id)
	if !ok || (cur.Status != store.StatusStalled && w.rng.Intn(4) != 0) {
		return
	}
	m := &backbeatv1.VideoRecover{VideoId: v.id, RequestId: fmt.Sprintf("o%d", w.rng.Intn(1_000_000))}
	if w.apiNamesRun {
		m.RunId = cur.RunID
	}
	w.logf("operator: recover %s (sees run %s, %s)", v.id, cur.RunID, cur.Status)
	w.bus.add(w.bus.subj.Event(v.id, bus.KindVideoRecover), m, "recover:"+m.RequestId, 0)
}

// operatorReplay re-publishes a video's event history, as `backbeat replay`.
func (w *sim) operatorReplay() {
	v := w.video()
	n := 0
	for _, m := range append([]*simMsg(nil), w.bus.all...) {
		if m.vid != v.id || m.kind == bus.KindVideoStatus || m.replayOf != 0 {
			continue
		}
		w.bus.add(m.subject, m.msg, fmt.Sprintf("replay:%d:%d", m.seq, w.rng.Int63()), m.seq)
		n++
	}
	w.logf("operator: replay %s (%d events)", v.id, n)
}

// work lets one worker take one job. In the drain, workers do not fail.
func (w *sim) work(drain bool) bool {
	var ready []*simMsg
	for _, j := range w.bus.jobs {
		if j.inFlight || j.notBefore.After(w.now) {
			continue
		}
		if j.kind == bus.StepRender {
			if rj := j.msg.(*backbeatv1.RenderJob); w.cold[rj.Pool].After(w.now) {
				continue
			}
		}
		ready = append(ready, j)
	}
	if len(ready) == 0 {
		return false
	}
	j := ready[w.pick(len(ready))]
	j.deliveries++
	run, attempt := runOf(j.msg)
	cur, ok := w.kv.m[j.vid]
	if j.kind != bus.StepNotify && (!ok || !cur.Current(run, attempt)) {
		w.logf("worker %s: job of %s %s/%d is stale (kv: %+v), acked", j.kind, j.vid, run, attempt, cur)
		w.bus.removeJob(j)
		return true
	}
	ctx := context.Background()
	fail := func(permanent bool, why string) {
		pol := w.svc.topo.Policy(j.kind)
		if !permanent && j.kind != bus.StepRender && j.deliveries < pol.MaxDeliver {
			j.notBefore = w.now.Add(pol.Delay(uint64(j.deliveries)))
			w.logf("worker %s: %s %s failed (%s), retry", j.kind, j.vid, run, why)
			return
		}
		w.bus.removeJob(j)
		w.workerFailed[run] = true
		sf := &backbeatv1.StepFailed{Step: j.kind, VideoId: j.vid, RunId: run, Attempt: attempt, Reason: why, Permanent: permanent}
		if rj, ok := j.msg.(*backbeatv1.RenderJob); ok {
			sf.Pool = rj.Pool
		}
		w.logf("worker %s: %s %s failed for good (%s, permanent=%v)", j.kind, j.vid, run, why, permanent)
		w.bus.add(w.bus.subj.Event(j.vid, bus.KindStepFailed), sf, fmt.Sprintf("failed:%s:%d", j.kind, j.seq), 0)
	}
	roll := w.rng.Intn(100)
	if drain {
		roll = 99
	}
	switch m := j.msg.(type) {
	case *backbeatv1.AudioJob:
		switch {
		case roll < 6:
			fail(false, "storage timeout")
			return true
		case roll < 9:
			fail(true, "not an audio file")
			return true
		case roll < 12:
			w.hang(j, run)
			return true
		}
		keys := audioKeys(m)
		for _, k := range keys {
			w.write(k, m.VideoId, run)
		}
		w.bus.removeJob(j)
		d := &backbeatv1.AudioDone{VideoId: m.VideoId, RunId: run, AudioKey: keys[0], Mp3Key: keys[1], AnalysisKey: keys[2],
			DurationSeconds: m.EndSeconds - m.StartSeconds}
		w.logf("worker audio: %s %s done", m.VideoId, run)
		_ = w.bus.Publish(ctx, w.bus.subj.Event(m.VideoId, bus.KindAudioDone), d, bus.MsgID(run, bus.StepAudio, 0, bus.KindAudioDone))
	case *backbeatv1.RenderJob:
		r := &renderWork{job: j, j: m, total: int64(m.DurationSeconds * float64(m.Encoding.GetFps())), mode: "ok", claimed: w.now}
		switch {
		case roll < 5:
			r.mode = "hang"
			r.dieAt = int64(w.rng.Intn(int(r.total) + 1))
		case roll < 10:
			r.mode = "die"
			r.dieAt = int64(w.rng.Intn(int(r.total) + 1))
		case roll < 15:
			r.mode = "fail"
		}
		j.inFlight = true
		w.renders = append(w.renders, r)
		w.claims[fmt.Sprintf("%s/%d", run, attempt)] = &claim{at: w.now, moved: w.now}
		w.logf("worker render(%s): claims %s %s attempt %d (%d frames, %s)", m.Pool, m.VideoId, run, attempt, r.total, r.mode)
		w.progress(r)
	case *backbeatv1.CdnJob:
		switch {
		case roll < 6:
			fail(false, "edge unreachable")
			return true
		case roll < 9:
			w.hang(j, run)
			return true
		}
		w.bus.removeJob(j)
		w.logf("worker cdn: %s %s purged %v", m.VideoId, run, m.Paths)
		d := &backbeatv1.CdnDone{VideoId: m.VideoId, RunId: run, PurgedPaths: m.Paths}
		_ = w.bus.Publish(ctx, w.bus.subj.Event(m.VideoId, bus.KindCDNDone), d, bus.MsgID(run, bus.StepCDN, 0, bus.KindCDNDone))
	case *backbeatv1.ThumbnailJob:
		switch {
		case roll < 4:
			fail(false, "decode failed")
			return true
		case roll < 7:
			w.hang(j, run)
			return true
		}
		w.write(m.ThumbnailKey, m.VideoId, run)
		w.write(m.SquareThumbnailKey, m.VideoId, run)
		w.bus.removeJob(j)
		w.logf("worker thumbnail: %s %s done", m.VideoId, run)
		d := &backbeatv1.ThumbnailDone{VideoId: m.VideoId, RunId: run, ThumbnailKey: m.ThumbnailKey, SquareThumbnailKey: m.SquareThumbnailKey}
		_ = w.bus.Publish(ctx, w.bus.subj.Event(m.VideoId, bus.KindThumbnailDone), d, bus.MsgID(run, bus.StepThumbnail, 0, bus.KindThumbnailDone))
	case *backbeatv1.NotifyJob:
		w.bus.removeJob(j)
		w.logf("notifier: %s %s told the app: %s", m.VideoId, run, m.Status)
		if err := w.svc.notifier().Handle(ctx, m); err != nil {
			w.logf("notifier: %v", err)
		}
	}
	return true
}

// hang is a worker that takes a job and never finishes it, heartbeating all
// along (a hung ffmpeg, a stuck HTTP call): only its guard (the runs KV)
// stops it.
func (w *sim) hang(j *simMsg, run string) {
	j.inFlight = true
	w.hung = append(w.hung, j)
	w.hungOn[run+"/"+j.kind] = true
	w.logf("worker %s: hangs on %s %s", j.kind, j.vid, run)
}

// releaseHung stops the hung workers whose run is no longer current.
func (w *sim) releaseHung() {
	keep := w.hung[:0]
	for _, j := range w.hung {
		run, attempt := runOf(j.msg)
		if cur, ok := w.kv.m[j.vid]; ok && cur.Current(run, attempt) {
			keep = append(keep, j)
			continue
		}
		w.logf("worker %s: hung on %s %s, stopped by its guard", j.kind, j.vid, run)
		w.bus.removeJob(j)
	}
	w.hung = keep
}

func runOf(m proto.Message) (string, int32) {
	var run string
	var attempt int32
	if r, ok := m.(interface{ GetRunId() string }); ok {
		run = r.GetRunId()
	}
	if a, ok := m.(interface{ GetAttempt() int32 }); ok {
		attempt = a.GetAttempt()
	}
	return run, attempt
}

// write stores an object the way a worker does: its bytes name the run.
func (w *sim) write(key, vid, run string) {
	w.blob.objs[key] = []byte(run)
	w.blob.version++
	if w.writers[key] == nil {
		w.writers[key] = map[string]bool{}
	}
	w.writers[key][vid] = true
}

func (w *sim) progress(r *renderWork) {
	p := &backbeatv1.RenderProgress{VideoId: r.j.VideoId, RunId: r.j.RunId, Attempt: r.j.Attempt, FramesDone: r.frames, FramesTotal: r.total, Pool: r.j.Pool}
	w.prog.last[r.j.VideoId], w.prog.at[r.j.VideoId] = p, w.now
	c := w.claims[fmt.Sprintf("%s/%d", r.j.RunId, r.j.Attempt)]
	if c != nil && c.frames != r.frames {
		c.frames, c.moved = r.frames, w.now
	}
}

// advanceRender moves a render on by d: frames, progress, the guard, its end.
func (w *sim) advanceRender(r *renderWork, d time.Duration) {
	cur, ok := w.kv.m[r.j.VideoId]
	if !ok || !cur.Current(r.j.RunId, r.j.Attempt) {
		w.logf("worker render: %s %s attempt %d no longer current, stops", r.j.VideoId, r.j.RunId, r.j.Attempt)
		w.endRender(r)
		w.bus.removeJob(r.job)
		return
	}
	switch r.mode {
	case "fail":
		w.endRender(r)
		w.bus.removeJob(r.job)
		w.workerFailed[r.j.RunId] = true
		perm := w.rng.Intn(4) == 0
		w.logf("worker render: %s %s attempt %d fails (permanent=%v)", r.j.VideoId, r.j.RunId, r.j.Attempt, perm)
		sf := &backbeatv1.StepFailed{Step: bus.StepRender, VideoId: r.j.VideoId, RunId: r.j.RunId, Attempt: r.j.Attempt,
			Pool: r.j.Pool, Reason: "encoder error", Permanent: perm}
		w.bus.add(w.bus.subj.Event(r.j.VideoId, bus.KindStepFailed), sf, fmt.Sprintf("failed:render:%d", r.job.seq), 0)
		return
	case "die":
		if r.frames >= r.dieAt {
			w.endRender(r)
			r.job.inFlight = false
			r.job.notBefore = w.now.Add(simAckWait)
			w.logf("worker render: dies on %s %s attempt %d (delivery %d)", r.j.VideoId, r.j.RunId, r.j.Attempt, r.job.deliveries)
			if r.job.deliveries >= w.svc.topo.Policy(bus.StepRender).MaxDeliver {
				// The server's max-deliveries advisory; the coordinator's
				// exhausted() reports it as this step.failed.
				w.bus.removeJob(r.job)
				w.workerFailed[r.j.RunId] = true
				sf := &backbeatv1.StepFailed{Step: bus.StepRender, VideoId: r.j.VideoId, RunId: r.j.RunId, Attempt: r.j.Attempt,
					Pool: r.j.Pool, Reason: "no worker acknowledged the job"}
				w.bus.add(w.bus.subj.Event(r.j.VideoId, bus.KindStepFailed), sf, fmt.Sprintf("exhausted:%d", r.job.seq), 0)
			}
			return
		}
	case "hang":
		if r.frames >= r.dieAt {
			w.progress(r) // keeps publishing the same count
			return
		}
	}
	r.frames += int64(d.Seconds() * 10)
	if r.mode != "ok" && r.frames > r.dieAt {
		r.frames = r.dieAt
	}
	if r.frames < r.total {
		w.progress(r)
		return
	}
	r.frames = r.total
	w.progress(r)
	w.endRender(r)
	w.bus.removeJob(r.job)
	w.write(r.j.OutputKey, r.j.VideoId, r.j.RunId)
	w.logf("worker render: %s %s attempt %d done", r.j.VideoId, r.j.RunId, r.j.Attempt)
	done := &backbeatv1.RenderDone{VideoId: r.j.VideoId, RunId: r.j.RunId, Attempt: r.j.Attempt, VideoKey: r.j.OutputKey,
		Frames: r.total, RenderSeconds: w.now.Sub(r.claimed).Seconds(), Encoder: "libx264", Worker: "sim"}
	_ = w.bus.Publish(context.Background(), w.bus.subj.Event(r.j.VideoId, bus.KindRenderDone), done,
		bus.MsgID(r.j.RunId, bus.StepRender, r.j.Attempt, bus.KindRenderDone))
}

func (w *sim) endRender(r *renderWork) {
	for i, x := range w.renders {
		if x == r {
			w.renders = append(w.renders[:i:i], w.renders[i+1:]...)
			return
		}
	}
}

// drain stops the faults and the new requests, lets everything settle, and
// checks liveness: every video's current run ends.
func (w *sim) drain() {
	w.logf("drain: no more faults or requests (an outage under way lasts until its end)")
	w.pubDown, w.pYield = 0, 0
	w.cold = map[string]time.Time{}
	for _, tk := range w.tasks {
		tk.resume <- true
		w.wait(tk)
	}
	w.tasks = nil
	deadline := w.now.Add(simMaxDrain)
	for w.now.Before(deadline) && len(w.violations) == 0 {
		progressed := false
		for len(w.tasks) > 0 {
			tk := w.tasks[0]
			w.tasks = w.tasks[1:]
			tk.resume <- true
			w.wait(tk)
			progressed = true
		}
		if ev := w.deliverable(); len(ev) > 0 {
			w.deliver(ev[0])
			progressed = true
		} else if w.work(true) {
			progressed = true
		}
		w.check(false)
		if !progressed {
			if w.settled() {
				break
			}
			w.tick(15 * time.Second)
		}
	}
	w.check(true)
}

// settled: nothing left to deliver or work on, no render running, no worker
// hung but on a thumbnail of a ready run (nothing will ever stop it: its run
// stays current) whose step the deadline has closed on the timeline.
func (w *sim) settled() bool {
	for _, j := range w.bus.jobs {
		if !(j.kind == bus.StepThumbnail && w.isHung(j)) {
			return false
		}
		run, _ := runOf(j.msg)
		for _, st := range w.openSteps(run) {
			if st.Name == bus.StepThumbnail {
				return false // the watchdog closes it at ThumbnailDeadline
			}
		}
	}
	return len(w.bus.events) == 0 && len(w.renders) == 0 && len(w.tasks) == 0
}

func (w *sim) isHung(j *simMsg) bool {
	for _, h := range w.hung {
		if h == j {
			return true
		}
	}
	return false
}

// simState is the database as the invariants read it.
type simState struct {
	runs   []store.Run
	videos []store.Video
	ledger []store.LedgerEntry
	users  []store.User
}

func (w *sim) loadAll() ([]store.Run, []store.Video, []store.LedgerEntry, []store.User) {
	if w.mem != nil {
		// memRepo's committed rows, kept sorted until the next commit.
		c := w.mem.snapshot()
		return c.runs, c.videos, c.ledger, c.users
	}
	if !w.dirty {
		c := w.cache
		return c.runs, c.videos, c.ledger, c.users
	}
	down := w.dbDown
	w.dbDown = 0
	defer func() { w.dbDown = down }()
	var runs []store.Run
	var videos []store.Video
	var ledger []store.LedgerEntry
	var users []store.User
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(w.db.DB.Order("id").Find(&runs).Error)
	must(w.db.DB.Order("id").Find(&videos).Error)
	must(w.db.DB.Order("id").Find(&ledger).Error)
	must(w.db.DB.Order("id").Find(&users).Error)
	w.cache = simState{runs, videos, ledger, users}
	w.dirty = false
	return runs, videos, ledger, users
}

// check tests the invariants; final adds the ones that hold only once the
// world has settled.
func (w *sim) check(final bool) {
	// Between two checks that see the same rows and objects, only what the
	// world knows can have grown (intents, failures, claims), and that
	// only excuses: nothing new to find, and nothing copied.
	seen := [2]uint64{w.dbVersion() + 1, w.blob.version + 1}
	if !final && w.checked == seen {
		return
	}
	w.checked = seen
	runs, videos, ledger, users := w.loadAll()
	holds, refunds := map[string]int{}, map[string]int{}
	bal := map[string]int64{}
	for _, u := range w.users {
		bal[u] = simStart[u]
	}
	for _, e := range ledger {
		switch e.Kind {
		case store.LedgerHold:
			holds[e.RunID]++
			bal[e.UserID] -= e.Amount
		case store.LedgerRefund:
			refunds[e.RunID]++
			bal[e.UserID] += e.Amount
		}
	}
	for _, u := range users {
		if u.Balance != bal[u.ID] {
			w.violate("money", "user %s balance %d, ledger says %d", u.ID, u.Balance, bal[u.ID])
		}
	}
	byID := map[string]store.Run{}
	for _, r := range runs {
		byID[r.ID] = r
		h, f := holds[r.ID], refunds[r.ID]
		if h > 1 || f > 1 || (f > 0 && h == 0) {
			w.violate("money", "run %s has %d holds and %d refunds", r.ID, h, f)
		}
		switch r.Status {
		case store.StatusReady:
			if f != 0 {
				w.violate("money", "run %s is ready and refunded", r.ID)
			}
		case store.StatusError, store.StatusCancelled:
			if h != f {
				w.violate("money", "run %s ended %s with %d holds and %d refunds", r.ID, r.Status, h, f)
			}
		default:
			if f != 0 {
				w.violate("money", "run %s is %s but refunded", r.ID, r.Status)
			}
		}
		if r.Status == store.StatusCancelled && strings.HasPrefix(r.Reason, "superseded") {
			// "superseded by a new request (run X)": X must have been paid for.
			by := strings.TrimSuffix(r.Reason[strings.LastIndex(r.Reason, " ")+1:], ")")
			if holds[by] == 0 {
				w.violate("cancel-wrong-run", "run %s of %s was superseded by run %s, which holds no credits (a refused create)", r.ID, r.VideoID, by)
			}
		}
		if r.Status == store.StatusCancelled && !w.cancelIntent[r.ID] && !strings.HasPrefix(r.Reason, "superseded") {
			w.violate("cancel-wrong-run", "run %s of %s was cancelled, but no cancel was meant for it and nothing superseded it (%s)", r.ID, r.VideoID, r.Reason)
		}
		if r.Status == store.StatusError && h > 0 && !w.workerFailed[r.ID] {
			w.violate("infra-refund", "run %s of %s ended in error and was refunded without any worker failure: %s", r.ID, r.VideoID, r.Reason)
		}
		if r.Status == store.StatusStalled && r.Stage == store.StageRender {
			key := fmt.Sprintf("%s/%d", r.ID, r.Attempt)
			c := w.claims[key]
			if !w.stallSeen[key] {
				w.stallSeen[key] = true
				switch {
				case c == nil:
					w.violate("stall-early", "run %s of %s attempt %d was stalled before any worker claimed it", r.ID, r.VideoID, r.Attempt)
				case w.now.Sub(c.moved) < simStall-w.svc.cfg.StallCheckEvery:
					w.violate("stall-early", "run %s of %s attempt %d was stalled %s after its frames last moved", r.ID, r.VideoID, r.Attempt, w.now.Sub(c.moved))
				}
			}
		}
	}
	cur := map[string]store.Run{}
	for _, v := range videos {
		if v.RunID != "" {
			cur[v.ID] = byID[v.RunID]
		}
	}
	// The edge serves only what a ready run made.
	for _, key := range w.blob.keys() {
		if !edgeServes(key) {
			continue
		}
		run := string(w.blob.objs[key])
		r, ok := byID[run]
		if !ok || r.Status != store.StatusReady {
			w.violate("edge-unpaid", "the edge serves %s, written by run %s which is %s", key, run, r.Status)
		}
	}
	for key, vids := range w.writers {
		if len(vids) > 1 {
			w.violate("shared-object", "object %s was written by the runs of %d videos", key, len(vids))
		}
	}
	if !final {
		return
	}
	for _, r := range runs {
		w.outcomes[outcomeOf(r)]++
	}
	for _, v := range videos {
		r := cur[v.ID]
		if v.RunID == "" {
			continue
		}
		switch r.Status {
		case store.StatusPending, store.StatusProcessing:
			w.violate("liveness", "video %s: run %s is still %s/%s after the drain", v.ID, r.ID, r.Status, r.Stage)
		case store.StatusStalled:
			// A stall past a stage's deadline lets a late result through;
			// one that lasts must have had a hung worker behind it.
			if r.Stage != store.StageRender && !w.hungOn[r.ID+"/"+string(r.Stage)] {
				w.violate("stall-early", "video %s: run %s stayed stalled in stage %s, where no worker hung", v.ID, r.ID, r.Stage)
			}
		}
		if r.Status == store.StatusReady {
			for _, st := range w.openSteps(r.ID) {
				if st.Name != bus.StepNotify {
					w.violate("liveness", "video %s: ready run %s still has step %s open after the drain", v.ID, r.ID, st.Name)
				}
			}
		}
		if kv, ok := w.kv.m[v.ID]; !ok || kv.RunID != r.ID {
			w.violate("kv-stale", "video %s: the runs KV names %q, the current run is %s", v.ID, kv.RunID, r.ID)
		}
	}
}

// dbVersion changes whenever the database does.
func (w *sim) dbVersion() uint64 {
	if w.mem != nil {
		return w.mem.version
	}
	return w.dbWrites
}

// openSteps are a run's steps not ended yet, by id.
func (w *sim) openSteps(runID string) []store.Step {
	if w.mem != nil {
		var open []store.Step
		for _, st := range w.mem.steps(runID) {
			if st.EndedAt == nil {
				open = append(open, st)
			}
		}
		return open
	}
	down := w.dbDown
	w.dbDown = 0
	defer func() { w.dbDown = down }()
	var open []store.Step
	if err := w.db.DB.Where("run_id = ? AND ended_at IS NULL", runID).Order("id").Find(&open).Error; err != nil {
		panic(err)
	}
	return open
}

// edgeServes mirrors the edge's rule of what it serves.
func edgeServes(key string) bool {
	_, _, _, ok := keys.ParsePublicKey(key)
	return ok
}

// audioKeys are where the audio worker writes (services/audio).
func audioKeys(m *backbeatv1.AudioJob) []string {
	return []string{keys.RunKey(m.VideoId, m.RunId, keys.ObjectAudio), keys.RunKey(m.VideoId, m.RunId, keys.ObjectMP3),
		keys.RunKey(m.VideoId, m.RunId, keys.ObjectAnalysis)}
}
