package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/testenv"
)

// TestConcurrentFirstMigrations: services starting together on a fresh
// Postgres database (coordinator and api) all come up.
func TestConcurrentFirstMigrations(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.Open(context.Background(), dsn)
			if err == nil {
				_ = s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	s, err := store.Open(context.Background(), dsn)
	require.NoError(t, err)
	defer s.Close()
	v, err := s.SchemaVersion(context.Background())
	require.NoError(t, err)
	require.Equal(t, store.LatestSchemaVersion(), v)
	require.True(t, s.DB.Migrator().HasIndex(&store.Step{}, store.OpenStepsIndex), "the open steps are indexed")
}
