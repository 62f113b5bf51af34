package store

import (
	"context"
	"fmt"
	"time"
)

// StepsOfRuns returns the timelines of several runs (the dashboard's video
// page shows every run of a video), each oldest first, keyed by run id.
func (s *Store) StepsOfRuns(ctx context.Context, runIDs []string) (map[string][]Step, error) {
	out := make(map[string][]Step, len(runIDs))
	if len(runIDs) == 0 {
		return out, nil
	}
	var steps []Step
	if err := s.DB.WithContext(ctx).Where("run_id IN ?", runIDs).Order("started_at, id").Find(&steps).Error; err != nil {
		return nil, fmt.Errorf("steps of %d runs: %w", len(runIDs), err)
	}
	for _, st := range steps {
		out[st.RunID] = append(out[st.RunID], st)
	}
	return out, nil
}

// RunFacets are the values the runs' filter columns take, for the
// dashboard's filter suggestions.
type RunFacets struct {
	Users, Templates, Pools []string
}

// maxFacets bounds each list of RunFacets.
const maxFacets = 200

// Facets returns the distinct users, templates and pools of the runs, each
// sorted and capped at 200.
func (s *Store) Facets(ctx context.Context) (RunFacets, error) {
	var f RunFacets
	for _, c := range []struct {
		col string
		dst *[]string
	}{{"user_id", &f.Users}, {"template", &f.Templates}, {"pool", &f.Pools}} {
		err := s.DB.WithContext(ctx).Model(&Run{}).Where(c.col+" <> ''").Distinct().
			Order(c.col).Limit(maxFacets).Pluck(c.col, c.dst).Error
		if err != nil {
			return f, fmt.Errorf("run facets (%s): %w", c.col, err)
		}
	}
	return f, nil
}

// maxWorkerSteps bounds the steps RecentWorkers reads.
const maxWorkerSteps = 20000

// RecentWorkers returns the workers that ended a step since a time, the most
// recent first, with how many steps each ended (of the newest 20,000). It
// groups in Go: SQLite (`backbeat dev`) returns MAX(ended_at) as text, which
// does not scan into a time.
func (s *Store) RecentWorkers(ctx context.Context, since time.Time) ([]WorkerSeen, error) {
	var steps []Step
	err := s.DB.WithContext(ctx).Select("worker, pool, name, ended_at").
		Where("worker <> '' AND ended_at >= ?", since).Order("ended_at DESC").Limit(maxWorkerSteps).Find(&steps).Error
	if err != nil {
		return nil, fmt.Errorf("recent workers: %w", err)
	}
	idx := map[[3]string]int{}
	var out []WorkerSeen
	for _, st := range steps {
		k := [3]string{st.Worker, st.Pool, st.Name}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, WorkerSeen{Worker: st.Worker, Pool: st.Pool, Name: st.Name, LastAt: *st.EndedAt})
		}
		out[i].Steps++
	}
	return out, nil
}
