package coordinator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/backbeat/backbeat/pkg/store"
)

// TestMemoryAndSQLiteAgree runs the same seeds on memRepo and on gormRepo
// over SQLite and wants the same world: the same trace, line for line, and
// the same rows at the end (balances, ledger, runs, videos, steps). It is what
// keeps the in-memory model of the database honest.
func TestMemoryAndSQLiteAgree(t *testing.T) {
	mem, sq := newSimSlotOn(t, "mem"), newSimSlotOn(t, "sqlite")
	differ := 0
	for i := 0; i < defaultAgreeSeeds && differ < 3; i++ {
		seed := *simFirst + int64(i)
		a := runSim(t, mem, seed, false)
		aRows := a.rows()
		b := runSim(t, sq, seed, false)
		bRows := b.rows()
		if d := firstDifference(a.lines(0), b.lines(0)); d != "" {
			differ++
			t.Errorf("seed %d: the traces differ (memRepo, then SQLite):\n%s", seed, d)
			continue
		}
		if d := firstDifference(aRows, bRows); d != "" {
			differ++
			t.Errorf("seed %d: the rows at the end differ (memRepo, then SQLite):\n%s", seed, d)
		}
	}
}

// firstDifference shows where two lists of lines part, or "".
func firstDifference(a, b []string) string {
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			from := max(0, i-3)
			ctx := strings.Join(a[from:i], "\n  ")
			return fmt.Sprintf("line %d, after\n  %s\n- %s\n+ %s", i+1, ctx, x, y)
		}
	}
	return ""
}

// rows is the database at the end of a seed, one line per row.
func (w *sim) rows() []string {
	w.dirty = true
	runs, videos, ledger, users := w.loadAll()
	var out []string
	for _, u := range users {
		out = append(out, fmt.Sprintf("user %s balance %d bundle %s", u.ID, u.Balance, u.Bundle))
	}
	for _, e := range ledger {
		out = append(out, fmt.Sprintf("ledger %s %s %s %d", e.RunID, e.Kind, e.UserID, e.Amount))
	}
	for _, v := range videos {
		out = append(out, fmt.Sprintf("video %s user %s run %s %s %q %s %s %s %s %.3f", v.ID, v.UserID, v.RunID, v.Status, v.Reason,
			v.VideoURL, v.MP3URL, v.ThumbnailURL, v.SquareThumbnailURL, v.RenderSeconds))
	}
	for _, r := range runs {
		out = append(out, fmt.Sprintf("run %s %s %s %s@%s %q units %d attempt %d pool %s keys %s %s %s %s %.3f/%.3f progress %d/%d %s render %s stage %s job %s finished %s",
			r.ID, r.VideoID, r.CreateKey, r.Status, r.Stage, r.Reason, r.Units, r.Attempt, r.Pool, r.AudioKey, r.MP3Key, r.AnalysisKey, r.VideoKey,
			r.Duration, r.RenderSeconds, r.ProgressAttempt, r.ProgressFrames, at(r.ProgressAt), at(r.RenderStartedAt), at(r.StageAt), at(r.JobAt), at(r.FinishedAt)))
		for _, st := range w.allSteps(r.ID) {
			out = append(out, fmt.Sprintf("  step %s/%d %s %s-%s %q %q", st.Name, st.Attempt, st.Pool, st.StartedAt.Sub(simEpoch), at(st.EndedAt), st.Output, st.Error))
		}
	}
	return out
}

// at is a time of the simulation, from its start.
func at(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Sub(simEpoch).String()
}

// allSteps is a run's timeline, by id.
func (w *sim) allSteps(runID string) []store.Step {
	if w.mem != nil {
		return w.mem.steps(runID)
	}
	var steps []store.Step
	if err := w.db.DB.Where("run_id = ?", runID).Order("id").Find(&steps).Error; err != nil {
		panic(err)
	}
	return steps
}
