package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/testenv"
)

// backends runs a test on Postgres (an isolated schema) and on SQLite (a file
// in t.TempDir()), the two databases the store supports.
func backends(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, testenv.Postgres(t))
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, "sqlite://"+t.TempDir()+"/db")
	})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open opens the store, closes it in t.Cleanup and seeds one user.
func open(t *testing.T, dsn string, balance int64) *store.Store {
	t.Helper()
	s, err := store.Open(ctxT(t), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.UpsertUser(ctxT(t), store.User{ID: "u1", Balance: balance, Bundle: "pro"}))
	return s
}

func balance(t *testing.T, s *store.Store) int64 {
	t.Helper()
	u, err := s.GetUser(ctxT(t), "u1")
	require.NoError(t, err)
	return u.Balance
}

func ledgerKinds(t *testing.T, s *store.Store) []string {
	t.Helper()
	entries, err := s.Ledger(ctxT(t), "u1")
	require.NoError(t, err)
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, e.RunID+":"+e.Kind)
	}
	return kinds
}

func hold(s *store.Store, runID, userID string, units int64) error {
	return s.DB.Transaction(func(tx *gorm.DB) error { return store.Hold(tx, runID, userID, units) })
}

func refund(s *store.Store, runID string) (bool, error) {
	var moved bool
	err := s.DB.Transaction(func(tx *gorm.DB) error {
		var err error
		moved, err = store.Refund(tx, runID)
		return err
	})
	return moved, err
}

func TestMigrationsAreIdempotent(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, dsn string) {
		for i := 0; i < 2; i++ {
			s, err := store.Open(ctxT(t), dsn)
			require.NoError(t, err, "open #%d", i+1)
			v, err := s.SchemaVersion(ctxT(t))
			require.NoError(t, err)
			require.Equal(t, store.LatestSchemaVersion(), v)
			require.NoError(t, s.Migrate(ctxT(t)), "migrate again")
			require.NoError(t, s.Ping(ctxT(t)))
			require.NoError(t, s.Close())
		}
	})
}

func TestHoldTwiceMovesOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn, 10)
		require.NoError(t, hold(s, "r1", "u1", 3))
		require.NoError(t, hold(s, "r1", "u1", 3))
		require.Equal(t, int64(7), balance(t, s))
		require.Equal(t, []string{"r1:hold"}, ledgerKinds(t, s))
	})
}

func TestHoldBeyondBalanceChangesNothing(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn, 5)
		err := hold(s, "r1", "u1", 6)
		require.ErrorIs(t, err, store.ErrInsufficientCredits)
		require.Equal(t, int64(5), balance(t, s))
		require.Empty(t, ledgerKinds(t, s), "the failed transaction must leave no ledger row")
		// The exact balance is allowed.
		require.NoError(t, hold(s, "r2", "u1", 5))
		require.Equal(t, int64(0), balance(t, s))
	})
}

// TestFailedHoldLeavesNoRowInACommittedTx: a caller that records the
// refusal and commits (the coordinator does, to store the failed run) must
// not keep a hold row whose balance never moved.
func TestFailedHoldLeavesNoRowInACommittedTx(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn, 5)
		err := s.DB.Transaction(func(tx *gorm.DB) error {
			require.ErrorIs(t, store.Hold(tx, "r1", "u1", 6), store.ErrInsufficientCredits)
			require.ErrorIs(t, store.Hold(tx, "r2", "nobody", 1), store.ErrUnknownUser)
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, int64(5), balance(t, s))
		var n int64
		require.NoError(t, s.DB.Model(&store.LedgerEntry{}).Count(&n).Error)
		require.Zero(t, n)
		// A later Hold of the same run, once affordable, still takes the credits.
		require.NoError(t, hold(s, "r1", "u1", 5))
		require.Equal(t, int64(0), balance(t, s))
		moved, err := refund(s, "r1")
		require.NoError(t, err)
		require.True(t, moved)
		require.Equal(t, int64(5), balance(t, s))
	})
}

func TestHoldUnknownUser(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn, 5)
		err := hold(s, "r1", "nobody", 1)
		require.ErrorIs(t, err, store.ErrUnknownUser)
		require.NotErrorIs(t, err, store.ErrInsufficientCredits)
		var n int64
		require.NoError(t, s.DB.Model(&store.LedgerEntry{}).Count(&n).Error)
		require.Zero(t, n)
	})
}

func TestRefundWithoutHoldMovesNothing(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn, 5)
		moved, err := refund(s, "r1")
		require.NoError(t, err)
		require.False(t, moved)
		require.Equal(t, int64(5), balance(t, s))
		require.Empty(t, ledgerKinds(t, s))
	})
}

func TestRefundTwiceRefundsOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn, 10)
		require.NoError(t, hold(s, "r1", "u1", 4))
		moved, err := refund(s, "r1")
		require.NoError(t, err)
		require.True(t, moved)
		moved, err = refund(s, "r1")
		require.NoError(t, err)
		require.False(t, moved)
		require.Equal(t, int64(10), balance(t, s))
		require.Equal(t, []string{"r1:hold", "r1:refund"}, ledgerKinds(t, s))
		// A hold after the refund of the same run is still a no-op.
		require.NoError(t, hold(s, "r1", "u1", 4))
		require.Equal(t, int64(10), balance(t, s))
	})
}

// TestConcurrentHoldRefund races Holds and Refunds of one run from 8
// goroutines on Postgres: whatever interleaving, the ledger ends with one hold
// and at most one refund, and the balance agrees with it.
func TestConcurrentHoldRefund(t *testing.T) {
	t.Parallel()
	s := open(t, testenv.Postgres(t), 100)
	// Another run's hold, so the balance is not trivially the start value.
	require.NoError(t, hold(s, "other", "u1", 10))

	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			<-start
			for i := 0; i < 5; i++ {
				var err error
				if (g+i)%2 == 0 {
					err = hold(s, "r1", "u1", 7)
				} else {
					_, err = refund(s, "r1")
				}
				if err != nil {
					errs <- err
				}
			}
		}(g)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Make sure the refund happened at least once after the hold.
	_, err := refund(s, "r1")
	require.NoError(t, err)

	kinds := ledgerKinds(t, s)
	require.ElementsMatch(t, []string{"other:hold", "r1:hold", "r1:refund"}, kinds)
	require.Equal(t, int64(90), balance(t, s))
}
