package coordinator

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/backbeat/backbeat/pkg/store"
)

// memRepo's rows: how the invariants read them, and an update's map of
// column names (as gorm takes it) applied to a row, refusing a column or a
// type it does not know.

// snapshot is the committed rows in id order, as the invariants read them,
// rebuilt (in the same buffers) only after something was committed.
func (m *memRepo) snapshot() *simState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil {
		m.snap = &simState{}
	} else if m.snapVersion == m.version {
		return m.snap
	}
	s := m.snap
	s.runs, s.videos, s.ledger, s.users = s.runs[:0], s.videos[:0], s.ledger[:0], s.users[:0]
	for _, r := range m.base.runs {
		s.runs = append(s.runs, r)
	}
	slices.SortFunc(s.runs, func(a, b store.Run) int { return cmp.Compare(a.ID, b.ID) })
	for _, v := range m.base.videos {
		s.videos = append(s.videos, v)
	}
	slices.SortFunc(s.videos, func(a, b store.Video) int { return cmp.Compare(a.ID, b.ID) })
	for _, e := range m.base.ledger {
		s.ledger = append(s.ledger, e)
	}
	slices.SortFunc(s.ledger, func(a, b store.LedgerEntry) int { return cmp.Compare(a.ID, b.ID) })
	for _, u := range m.base.users {
		s.users = append(s.users, u)
	}
	slices.SortFunc(s.users, func(a, b store.User) int { return cmp.Compare(a.ID, b.ID) })
	m.snapVersion = m.version
	return s
}

// steps are a run's committed steps, by id.
func (m *memRepo) steps(runID string) []store.Step {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Step
	for k, st := range m.base.steps {
		if k.run == runID {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// setRun applies an update's columns to a run, as gorm's Updates would.
func setRun(r *store.Run, set map[string]any) error {
	for col, v := range set {
		var err error
		switch col {
		case "status":
			err = setString(&r.Status, v)
		case "stage":
			err = setString(&r.Stage, v)
		case "reason":
			err = setString(&r.Reason, v)
		case "pool":
			err = setString(&r.Pool, v)
		case "audio_key":
			err = setString(&r.AudioKey, v)
		case "mp3_key":
			err = setString(&r.MP3Key, v)
		case "analysis_key":
			err = setString(&r.AnalysisKey, v)
		case "video_key":
			err = setString(&r.VideoKey, v)
		case "attempt":
			err = setInt(&r.Attempt, v)
		case "progress_attempt":
			err = setInt(&r.ProgressAttempt, v)
		case "progress_frames":
			err = setInt(&r.ProgressFrames, v)
		case "duration":
			err = setFloat(&r.Duration, v)
		case "render_seconds":
			err = setFloat(&r.RenderSeconds, v)
		case "render_started_at":
			err = setTime(&r.RenderStartedAt, v)
		case "progress_at":
			err = setTime(&r.ProgressAt, v)
		case "stage_at":
			err = setTime(&r.StageAt, v)
		case "job_at":
			err = setTime(&r.JobAt, v)
		case "finished_at":
			err = setTime(&r.FinishedAt, v)
		default:
			err = fmt.Errorf("memrepo: no column runs.%s", col)
		}
		if err != nil {
			return fmt.Errorf("runs.%s: %w", col, err)
		}
	}
	return nil
}

// setVideo applies an update's columns to a video.
func setVideo(v *store.Video, set map[string]any) error {
	for col, x := range set {
		var err error
		switch col {
		case "status":
			err = setString(&v.Status, x)
		case "reason":
			err = setString(&v.Reason, x)
		case "run_id":
			err = setString(&v.RunID, x)
		case "video_url":
			err = setString(&v.VideoURL, x)
		case "thumbnail_url":
			err = setString(&v.ThumbnailURL, x)
		case "square_thumbnail_url":
			err = setString(&v.SquareThumbnailURL, x)
		case "mp3_url":
			err = setString(&v.MP3URL, x)
		case "render_seconds":
			err = setFloat(&v.RenderSeconds, x)
		default:
			err = fmt.Errorf("memrepo: no column videos.%s", col)
		}
		if err != nil {
			return fmt.Errorf("videos.%s: %w", col, err)
		}
	}
	return nil
}

func setString[T ~string](dst *T, v any) error {
	switch x := v.(type) {
	case string:
		*dst = T(x)
	case store.Status:
		*dst = T(x)
	case store.Stage:
		*dst = T(x)
	default:
		return fmt.Errorf("memrepo: %T is not a string", v)
	}
	return nil
}

func setInt[T int32 | int64](dst *T, v any) error {
	switch x := v.(type) {
	case int:
		*dst = T(x)
	case int32:
		*dst = T(x)
	case int64:
		*dst = T(x)
	default:
		return fmt.Errorf("memrepo: %T is not an integer", v)
	}
	return nil
}

func setFloat(dst *float64, v any) error {
	switch x := v.(type) {
	case float64:
		*dst = x
	case int:
		*dst = float64(x)
	default:
		return fmt.Errorf("memrepo: %T is not a number", v)
	}
	return nil
}

func setTime(dst **time.Time, v any) error {
	switch x := v.(type) {
	case nil:
		*dst = nil
	case time.Time:
		*dst = &x
	case *time.Time:
		if x == nil {
			*dst = nil
		} else {
			c := *x
			*dst = &c
		}
	default:
		return fmt.Errorf("memrepo: %T is not a time", v)
	}
	return nil
}
