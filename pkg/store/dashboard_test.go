package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDashboardQueriesOnSQLite runs the dashboard's reads on the database of
// `backbeat dev`.
func TestDashboardQueriesOnSQLite(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, "sqlite://"+t.TempDir()+"/dash.db")
	require.NoError(t, err)
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	steps := []Step{
		{RunID: "r1", VideoID: "v1", Name: "render", Attempt: 1, Pool: "gpu", Worker: "w-gpu", StartedAt: now.Add(-3 * time.Minute), EndedAt: at(-2 * time.Minute)},
		{RunID: "r2", VideoID: "v2", Name: "render", Attempt: 1, Pool: "gpu", Worker: "w-gpu", StartedAt: now.Add(-2 * time.Minute), EndedAt: at(-time.Minute)},
		{RunID: "r2", VideoID: "v2", Name: "audio", Attempt: 0, Worker: "w-audio", StartedAt: now.Add(-4 * time.Minute), EndedAt: at(-3 * time.Minute)},
		{RunID: "r2", VideoID: "v2", Name: "cdn", Attempt: 0, StartedAt: now},
		{RunID: "r3", VideoID: "v3", Name: "render", Attempt: 1, Pool: "cpu", Worker: "w-old", StartedAt: now.Add(-2 * time.Hour), EndedAt: at(-2 * time.Hour)},
	}
	require.NoError(t, st.DB.Create(&steps).Error)
	ws, err := st.RecentWorkers(ctx, now.Add(-time.Hour))
	require.NoError(t, err)
	require.Len(t, ws, 2)
	require.Equal(t, "w-gpu", ws[0].Worker)
	require.Equal(t, int64(2), ws[0].Steps)
	require.WithinDuration(t, now.Add(-time.Minute), ws[0].LastAt, time.Millisecond)
	require.Equal(t, "w-audio", ws[1].Worker)

	byRun, err := st.StepsOfRuns(ctx, []string{"r2", "r3", "nope"})
	require.NoError(t, err)
	require.Len(t, byRun["r2"], 3)
	require.Equal(t, "audio", byRun["r2"][0].Name, "oldest first")
	require.Len(t, byRun["r3"], 1)
	require.Empty(t, byRun["nope"])

	require.NoError(t, st.DB.Create(&[]Run{
		{ID: "r1", VideoID: "v1", UserID: "u1", CreateKey: "k1", Status: StatusReady, Stage: StageDone, Bundle: "free", Template: "spectrum", Pool: "gpu"},
		{ID: "r2", VideoID: "v2", UserID: "u2", CreateKey: "k2", Status: StatusError, Stage: StageRender, Bundle: "free", Template: "halo", Pool: "gpu"},
	}).Error)
	f, err := st.Facets(ctx)
	require.NoError(t, err)
	require.Equal(t, RunFacets{Users: []string{"u1", "u2"}, Templates: []string{"halo", "spectrum"}, Pools: []string{"gpu"}}, f)
}
