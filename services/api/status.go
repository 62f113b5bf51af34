package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
)

// VideoView is GET /v1/videos/{id}: what the app shows and the CLI draws.
type VideoView struct {
	VideoID            string       `json:"video_id"`
	Status             store.Status `json:"status"`
	Reason             string       `json:"reason,omitempty"`
	RunID              string       `json:"run_id,omitempty"`
	Stage              store.Stage  `json:"stage,omitempty"`
	Attempt            int32        `json:"attempt,omitempty"`
	Pool               string       `json:"pool,omitempty"`
	VideoURL           string       `json:"video_url,omitempty"`
	ThumbnailURL       string       `json:"thumbnail_url,omitempty"`
	SquareThumbnailURL string       `json:"square_thumbnail_url,omitempty"`
	MP3URL             string       `json:"mp3_url,omitempty"`
	RenderSeconds      float64      `json:"render_seconds,omitempty"`
	// Progress is the live render progress of the current run, when any.
	Progress  *ProgressView `json:"progress,omitempty"`
	Steps     []StepView    `json:"steps"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// Terminal reports whether the status will not change without a new request.
func (v VideoView) Terminal() bool {
	switch v.Status {
	case store.StatusReady, store.StatusError, store.StatusCancelled, store.StatusStalled:
		return true
	}
	return false
}

// StepView is one line of the run's timeline.
type StepView struct {
	Name      string     `json:"name"`
	Attempt   int32      `json:"attempt"`
	Pool      string     `json:"pool,omitempty"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	Output    string     `json:"output,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// ProgressView is the last RenderProgress of the current run.
type ProgressView struct {
	Attempt     int32   `json:"attempt"`
	FramesDone  int64   `json:"frames_done"`
	FramesTotal int64   `json:"frames_total"`
	Percent     float64 `json:"percent"`
	Pool        string  `json:"pool,omitempty"`
	Worker      string  `json:"worker,omitempty"`
}

func (s *Service) getVideo(w http.ResponseWriter, r *http.Request, c caller) error {
	v, err := s.ownedVideo(r, c)
	if err != nil {
		return err
	}
	if v.RunID == "" {
		// Claimed by an upload, not created yet (claims.go): no video to
		// show, and clients that wait for a queued create expect a 404.
		return errorf(http.StatusNotFound, "video %s not found: it has uploads but was not created yet", v.ID)
	}
	view, err := s.view(r.Context(), v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, view)
	return nil
}

// view joins the video row, its current run and timeline, and the live progress.
func (s *Service) view(ctx context.Context, v store.Video) (VideoView, error) {
	out := VideoView{
		VideoID: v.ID, Status: v.Status, Reason: v.Reason, RunID: v.RunID,
		VideoURL: v.VideoURL, ThumbnailURL: v.ThumbnailURL, SquareThumbnailURL: v.SquareThumbnailURL,
		MP3URL: v.MP3URL, RenderSeconds: v.RenderSeconds, Steps: []StepView{},
		CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt,
	}
	if v.RunID == "" {
		return out, nil
	}
	run, err := s.store.GetRun(ctx, v.RunID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return out, err
	default:
		out.Stage, out.Attempt, out.Pool = run.Stage, run.Attempt, run.Pool
	}
	steps, err := s.store.Steps(ctx, v.RunID)
	if err != nil {
		return out, err
	}
	for _, st := range steps {
		out.Steps = append(out.Steps, StepView{
			Name: st.Name, Attempt: st.Attempt, Pool: st.Pool, StartedAt: st.StartedAt,
			EndedAt: st.EndedAt, Output: st.Output, Error: st.Error,
		})
	}
	if v.Status == store.StatusPending || v.Status == store.StatusProcessing || v.Status == store.StatusStalled {
		p, _, err := s.progress.Last(ctx, v.ID)
		if err != nil {
			// Progress is a nicety: the status without it is still right.
			bus.Logger(ctx, s.log).Warn("read progress", zap.String("video_id", v.ID), zap.Error(err))
		} else if p != nil && p.GetRunId() == v.RunID {
			out.Progress = &ProgressView{
				Attempt: p.GetAttempt(), FramesDone: p.GetFramesDone(), FramesTotal: p.GetFramesTotal(),
				Percent: p.GetPercent(), Pool: p.GetPool(), Worker: p.GetWorker(),
			}
		}
	}
	return out, nil
}
