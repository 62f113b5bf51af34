package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
)

// memRepo is the repository in memory, for the simulation: the same
// semantics as gormRepo (TestMemoryAndSQLiteAgree holds the two to the same
// traces) at a fraction of the cost. A transaction writes to its own overlay
// of the committed rows (copy on write, row by row) and commits it at once
// when fn returns nil; an error, a simulated outage included, drops it.
// Transactions are serialised, as on SQLite.
type memRepo struct {
	mu sync.Mutex
	// down is the simulated outage: while it reports true, every call fails
	// with errSimOutage.
	down    func() bool
	base    *memState
	nextID  uint
	version uint64 // bumped by every commit, for the invariants' cache

	snapVersion uint64
	snap        *simState
}

// memState is a set of rows: the committed ones, or a transaction's overlay.
type memState struct {
	users  map[string]store.User
	videos map[string]store.Video
	runs   map[string]store.Run
	keys   map[string]string // create_key → run id
	steps  map[stepKey]store.Step
	ledger map[ledgerKey]store.LedgerEntry
}

type stepKey struct {
	run, name string
	attempt   int32
}

type ledgerKey struct{ run, kind string }

func newMemState() *memState {
	return &memState{users: map[string]store.User{}, videos: map[string]store.Video{}, runs: map[string]store.Run{},
		keys: map[string]string{}, steps: map[stepKey]store.Step{}, ledger: map[ledgerKey]store.LedgerEntry{}}
}

func newMemRepo() *memRepo { return &memRepo{base: newMemState()} }

var _ repo = (*memRepo)(nil)

// reset empties the repository and adds users.
func (m *memRepo) reset(users ...store.User) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.base = newMemState()
	for _, u := range users {
		m.base.users[u.ID] = u
	}
	m.version++
}

func (m *memRepo) Tx(_ context.Context, fn func(tx repoTx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := &memTx{m: m, w: &memState{}} // its maps are made on the first write
	if err := fn(tx); err != nil {
		return err // the overlay is dropped: nothing happened
	}
	b, o := m.base, tx.w
	for k, v := range o.users {
		b.users[k] = v
	}
	for k, v := range o.videos {
		b.videos[k] = v
	}
	for k, v := range o.runs {
		b.runs[k] = v
	}
	for k, v := range o.keys {
		b.keys[k] = v
	}
	for k, v := range o.steps {
		b.steps[k] = v
	}
	for k, v := range o.ledger {
		b.ledger[k] = v
	}
	m.version++
	return nil
}

func (m *memRepo) Auto(context.Context) repoTx { return &memTx{m: m, w: m.base, auto: true} }

// Lazy is Tx: the simulation's database loses nothing it committed.
func (m *memRepo) Lazy(ctx context.Context, fn func(tx repoTx) error) error { return m.Tx(ctx, fn) }

// memTx is a transaction: it reads its overlay w, then the committed rows,
// and writes to w. For Auto, w is the committed rows and every call is its
// own transaction.
type memTx struct {
	m    *memRepo
	w    *memState
	auto bool
}

// enter starts a call: it fails while the database is down.
func (t *memTx) enter() error {
	if t.auto {
		t.m.mu.Lock()
	}
	if t.m.down != nil && t.m.down() {
		t.leave()
		return errSimOutage
	}
	return nil
}

// leave ends a call.
func (t *memTx) leave() {
	if t.auto {
		t.m.mu.Unlock()
	}
}

// wrote notes a write: an Auto call's is committed at once.
func (t *memTx) wrote() {
	if t.auto {
		t.m.version++
	}
}

func get[K comparable, V any](over, base map[K]V, k K) (V, bool) {
	if v, ok := over[k]; ok {
		return v, true
	}
	v, ok := base[k]
	return v, ok
}

func put[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = make(map[K]V)
	}
	(*m)[k] = v
}

// union lists the keys of the overlay and the committed rows.
func union[K comparable, V any](over, base map[K]V) []K {
	out := make([]K, 0, len(base)+len(over))
	for k := range base {
		if _, ok := over[k]; !ok {
			out = append(out, k)
		}
	}
	for k := range over {
		out = append(out, k)
	}
	return out
}

func (t *memTx) run(id string) (store.Run, bool) { return get(t.w.runs, t.m.base.runs, id) }

func (t *memTx) Run(id string) (store.Run, bool, error) {
	if err := t.enter(); err != nil {
		return store.Run{}, false, err
	}
	defer t.leave()
	r, ok := t.run(id)
	return r, ok, nil
}

func (t *memTx) RunIsCurrent(id string) (store.Run, bool, bool, error) {
	if err := t.enter(); err != nil {
		return store.Run{}, false, false, err
	}
	defer t.leave()
	r, ok := t.run(id)
	if !ok {
		return store.Run{}, false, false, nil
	}
	v, ok := get(t.w.videos, t.m.base.videos, r.VideoID)
	if !ok {
		return store.Run{}, false, false, nil
	}
	return r, v.RunID == r.ID, true, nil
}

func (t *memTx) RunByCreateKey(key string) (store.Run, bool, error) {
	if err := t.enter(); err != nil {
		return store.Run{}, false, err
	}
	defer t.leave()
	id, ok := get(t.w.keys, t.m.base.keys, key)
	if !ok {
		return store.Run{}, false, nil
	}
	r, ok := t.run(id)
	return r, ok, nil
}

func (t *memTx) User(id string) (store.User, bool, error) {
	if err := t.enter(); err != nil {
		return store.User{}, false, err
	}
	defer t.leave()
	u, ok := get(t.w.users, t.m.base.users, id)
	return u, ok, nil
}

func (t *memTx) Video(id string) (store.Video, bool, error) {
	if err := t.enter(); err != nil {
		return store.Video{}, false, err
	}
	defer t.leave()
	v, ok := get(t.w.videos, t.m.base.videos, id)
	return v, ok, nil
}

// LockVideo: transactions are serialised, the lock is the repository's.
func (t *memTx) LockVideo(id string) (store.Video, bool, error) { return t.Video(id) }

func (t *memTx) InsertVideoIfAbsent(v store.Video) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if _, ok := get(t.w.videos, t.m.base.videos, v.ID); !ok {
		put(&t.w.videos, v.ID, v)
		t.wrote()
	}
	return nil
}

func (t *memTx) InsertRun(r store.Run) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if _, ok := t.run(r.ID); ok {
		return fmt.Errorf("memrepo: run %s exists", r.ID)
	}
	if _, ok := get(t.w.keys, t.m.base.keys, r.CreateKey); ok {
		return fmt.Errorf("memrepo: create key %s exists", r.CreateKey)
	}
	put(&t.w.runs, r.ID, r)
	put(&t.w.keys, r.CreateKey, r.ID)
	t.wrote()
	return nil
}

func (t *memTx) UpdateRun(w runWhere, set map[string]any) (store.Run, bool, error) {
	if w.ID == "" {
		return store.Run{}, false, errors.New("UpdateRun needs a run id")
	}
	n, err := t.UpdateRuns(w, set)
	if err != nil || n == 0 {
		return store.Run{}, false, err
	}
	r, ok := t.run(w.ID)
	return r, ok, nil
}

func (t *memTx) UpdateRuns(w runWhere, set map[string]any) (int64, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	var ids []string
	if w.ID != "" {
		ids = []string{w.ID}
	} else {
		ids = union(t.w.runs, t.m.base.runs)
	}
	var n int64
	for _, id := range ids {
		r, ok := t.run(id)
		if !ok || !w.matches(&r) {
			continue
		}
		if err := setRun(&r, set); err != nil {
			return 0, err
		}
		put(&t.w.runs, id, r)
		t.wrote()
		n++
	}
	return n, nil
}

func (t *memTx) updateVideo(id string, runID *string, set map[string]any) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	v, ok := get(t.w.videos, t.m.base.videos, id)
	if !ok || (runID != nil && v.RunID != *runID) {
		return nil
	}
	if err := setVideo(&v, set); err != nil {
		return err
	}
	put(&t.w.videos, id, v)
	t.wrote()
	return nil
}

func (t *memTx) UpdateVideo(id string, set map[string]any) error { return t.updateVideo(id, nil, set) }

func (t *memTx) UpdateVideoOfRun(id, runID string, set map[string]any) error {
	return t.updateVideo(id, &runID, set)
}

// Hold is store.Hold: one hold per run, the balance debited with it, and
// nothing written when the balance is short or the user unknown.
func (t *memTx) Hold(runID, userID string, units int64) error {
	if err := t.enter(); err != nil {
		return fmt.Errorf("ledger hold: %w", err)
	}
	defer t.leave()
	if _, ok := get(t.w.ledger, t.m.base.ledger, ledgerKey{runID, store.LedgerHold}); ok {
		return nil
	}
	u, ok := get(t.w.users, t.m.base.users, userID)
	if !ok {
		return fmt.Errorf("user %q: %w", userID, store.ErrUnknownUser)
	}
	if u.Balance < units {
		return fmt.Errorf("user %q needs %d units: %w", userID, units, store.ErrInsufficientCredits)
	}
	u.Balance -= units
	put(&t.w.users, userID, u)
	t.m.nextID++
	put(&t.w.ledger, ledgerKey{runID, store.LedgerHold}, store.LedgerEntry{ID: t.m.nextID, RunID: runID, Kind: store.LedgerHold, UserID: userID, Amount: units})
	t.wrote()
	return nil
}

// Refund is store.Refund: at most one refund per run, only of a hold.
func (t *memTx) Refund(runID string) (bool, error) {
	if err := t.enter(); err != nil {
		return false, fmt.Errorf("find hold: %w", err)
	}
	defer t.leave()
	hold, ok := get(t.w.ledger, t.m.base.ledger, ledgerKey{runID, store.LedgerHold})
	if !ok {
		return false, nil
	}
	if _, ok := get(t.w.ledger, t.m.base.ledger, ledgerKey{runID, store.LedgerRefund}); ok {
		return false, nil
	}
	t.m.nextID++
	put(&t.w.ledger, ledgerKey{runID, store.LedgerRefund}, store.LedgerEntry{ID: t.m.nextID, RunID: runID, Kind: store.LedgerRefund, UserID: hold.UserID, Amount: hold.Amount})
	if u, ok := get(t.w.users, t.m.base.users, hold.UserID); ok {
		u.Balance += hold.Amount
		put(&t.w.users, u.ID, u)
	}
	t.wrote()
	return true, nil
}

func (t *memTx) StartStep(st store.Step) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	k := stepKey{st.RunID, st.Name, st.Attempt}
	if _, ok := get(t.w.steps, t.m.base.steps, k); ok {
		return nil
	}
	t.m.nextID++
	st.ID = t.m.nextID
	put(&t.w.steps, k, st)
	t.wrote()
	return nil
}

func (t *memTx) EndStep(runID, name string, attempt int32, at time.Time, output, errText string, by bus.Report) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	k := stepKey{runID, name, attempt}
	if st, ok := get(t.w.steps, t.m.base.steps, k); ok && st.EndedAt == nil {
		st.EndedAt, st.Output, st.Error = &at, output, errText
		st.Worker, st.QueueWaitMS, st.RunMS = by.Worker, by.QueueWait.Milliseconds(), by.RunTime.Milliseconds()
		put(&t.w.steps, k, st)
		t.wrote()
	}
	return nil
}

func (t *memTx) CloseSteps(runID string, at time.Time, errText string) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	for _, k := range union(t.w.steps, t.m.base.steps) {
		if k.run != runID {
			continue
		}
		if st, _ := get(t.w.steps, t.m.base.steps, k); st.EndedAt == nil {
			end := at
			st.EndedAt, st.Error = &end, errText
			put(&t.w.steps, k, st)
			t.wrote()
		}
	}
	return nil
}

func (t *memTx) Runs(w runWhere) ([]store.Run, error) {
	if err := t.enter(); err != nil {
		return nil, err
	}
	defer t.leave()
	var out []store.Run
	for _, id := range union(t.w.runs, t.m.base.runs) {
		if r, _ := t.run(id); w.matches(&r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (t *memTx) OpenSteps(name string, startedBefore time.Time) ([]store.Step, error) {
	if err := t.enter(); err != nil {
		return nil, err
	}
	defer t.leave()
	var out []store.Step
	for _, k := range union(t.w.steps, t.m.base.steps) {
		if k.name != name {
			continue
		}
		if st, _ := get(t.w.steps, t.m.base.steps, k); st.EndedAt == nil && st.StartedAt.Before(startedBefore) {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (t *memTx) BundlesInUse() ([]string, error) {
	if err := t.enter(); err != nil {
		return nil, err
	}
	defer t.leave()
	seen := map[string]bool{}
	for _, id := range union(t.w.users, t.m.base.users) {
		u, _ := get(t.w.users, t.m.base.users, id)
		seen[u.Bundle] = true
	}
	for _, id := range union(t.w.runs, t.m.base.runs) {
		if r, _ := t.run(id); !r.Status.Terminal() {
			seen[r.Bundle] = true
		}
	}
	out := make([]string, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out, nil
}
