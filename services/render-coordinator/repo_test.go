package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
)

// TestRepoConformance runs the same operations on every repository (memRepo,
// gormRepo on SQLite; harness_test.go covers gormRepo on Postgres through
// the handlers): the ledger's one hold and at most one refund per run, a
// rolled-back transaction, and first-wins steps. The simulation cannot reach
// some of these (the coordinator guards them before the repository does), so
// TestMemoryAndSQLiteAgree alone would not catch a repository that broke them.
func TestRepoConformance(t *testing.T) {
	for _, backend := range []string{"mem", "sqlite"} {
		t.Run(backend, func(t *testing.T) {
			sl := newSimSlotOn(t, backend)
			if err := sl.reset(store.User{ID: "u1", Balance: 10, Bundle: "sim"}); err != nil {
				t.Fatal(err)
			}
			r, ctx := sl.repo(), context.Background()
			balance := func(want int64) {
				t.Helper()
				u, ok, err := r.Auto(ctx).User("u1")
				if err != nil || !ok || u.Balance != want {
					t.Fatalf("balance %d (found %v, %v), want %d", u.Balance, ok, err, want)
				}
			}
			tx := func(fn func(tx repoTx) error) error { return r.Tx(ctx, fn) }
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(tx(func(tx repoTx) error { return tx.Hold("r1", "u1", 3) }))
			must(tx(func(tx repoTx) error { return tx.Hold("r1", "u1", 3) }))
			balance(7)
			if err := tx(func(tx repoTx) error { return tx.Hold("r2", "u1", 8) }); !errors.Is(err, store.ErrInsufficientCredits) {
				t.Fatalf("hold beyond the balance: %v", err)
			}
			if err := tx(func(tx repoTx) error { return tx.Hold("r3", "nobody", 1) }); !errors.Is(err, store.ErrUnknownUser) {
				t.Fatalf("hold of an unknown user: %v", err)
			}
			balance(7)
			for i, want := range []bool{true, false} {
				var moved bool
				must(tx(func(tx repoTx) (err error) { moved, err = tx.Refund("r1"); return err }))
				if moved != want {
					t.Fatalf("refund #%d moved=%v, want %v", i+1, moved, want)
				}
			}
			var moved bool
			must(tx(func(tx repoTx) (err error) { moved, err = tx.Refund("r2"); return err }))
			if moved {
				t.Fatal("a refund without a hold moved credits")
			}
			balance(10)
			// A transaction that fails leaves nothing behind.
			boom := errors.New("boom")
			err := tx(func(tx repoTx) error {
				must(tx.Hold("r4", "u1", 5))
				must(tx.InsertVideoIfAbsent(store.Video{ID: "v1", UserID: "u1", Status: store.StatusPending}))
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatal(err)
			}
			balance(10)
			if _, ok, err := r.Auto(ctx).Video("v1"); ok || err != nil {
				t.Fatalf("the video of a rolled-back transaction exists (%v)", err)
			}
			// Steps: the first start and the first end win.
			t0 := simEpoch
			must(r.Auto(ctx).StartStep(store.Step{RunID: "r1", VideoID: "v1", Name: "audio", StartedAt: t0}))
			must(r.Auto(ctx).StartStep(store.Step{RunID: "r1", VideoID: "v1", Name: "audio", StartedAt: t0.Add(time.Minute)}))
			must(r.Auto(ctx).EndStep("r1", "audio", 0, t0.Add(time.Second), "first", "",
				bus.Report{Worker: "audio-7", QueueWait: 1500 * time.Millisecond, RunTime: 2 * time.Second}))
			must(r.Auto(ctx).EndStep("r1", "audio", 0, t0.Add(time.Hour), "second", "", bus.Report{Worker: "audio-8"}))
			var steps []store.Step
			if sl.mem != nil {
				steps = sl.mem.steps("r1")
			} else {
				must(sl.db.DB.Where("run_id = ?", "r1").Find(&steps).Error)
			}
			if len(steps) != 1 || !steps[0].StartedAt.Equal(t0) || steps[0].Output != "first" || !steps[0].EndedAt.Equal(t0.Add(time.Second)) {
				t.Fatalf("steps %+v: want one, started at %s, ended first", steps, t0)
			}
			if st := steps[0]; st.Worker != "audio-7" || st.QueueWaitMS != 1500 || st.RunMS != 2000 {
				t.Fatalf("step %+v: want the first end's report (audio-7, waited 1500 ms, ran 2000 ms)", st)
			}
		})
	}
}
