package store

import (
	"context"
	"fmt"
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
