package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// onAudioDone moves a run from audio to its first render attempt.
func (s *Service) onAudioDone(ctx context.Context, m *backbeatv1.AudioDone) error {
	_, _, err := s.apply(ctx, m.VideoId, m.RunId, func(tx repoTx, run *store.Run) error {
		for _, k := range []string{m.AudioKey, m.AnalysisKey} {
			if !keys.IsRunKey(k, run.VideoID, run.ID) {
				return bus.Permanentf("audio.done carries %q, not an object of run %s", k, run.ID)
			}
		}
		if m.Mp3Key != "" && !keys.IsRunKey(m.Mp3Key, run.VideoID, run.ID) {
			return bus.Permanentf("audio.done carries %q, not an object of run %s", m.Mp3Key, run.ID)
		}
		now := s.now()
		b := s.bundle(run.Bundle)
		_, err := s.advance(tx, run, TAudioDone, map[string]any{
			"attempt": 1, "pool": b.PoolFor(1),
			"audio_key": m.AudioKey, "mp3_key": m.Mp3Key, "analysis_key": m.AnalysisKey, "duration": m.DurationSeconds,
			"render_started_at": now, "reason": "",
		})
		if err != nil {
			return err
		}
		out := fmt.Sprintf("%s, %s (%.3fs)", m.AudioKey, m.AnalysisKey, m.DurationSeconds)
		if err := endStepBy(tx, run.ID, bus.StepAudio, 0, out, "", now, bus.ReportOf(ctx)); err != nil {
			return err
		}
		return startStep(tx, *run, bus.StepRender, 1, run.Pool, now)
	}, func(r store.Run) bool {
		return r.Status == store.StatusProcessing && r.Stage == store.StageRender && r.Attempt == 1
	})
	return err
}

// onRenderDone records the render and asks every edge to purge the paths.
func (s *Service) onRenderDone(ctx context.Context, m *backbeatv1.RenderDone) error {
	_, _, err := s.apply(ctx, m.VideoId, m.RunId, func(tx repoTx, run *store.Run) error {
		if run.Attempt != m.Attempt {
			return errNoChange
		}
		if !keys.IsRunKey(m.VideoKey, run.VideoID, run.ID) {
			return bus.Permanentf("render.done carries %q, not an object of run %s", m.VideoKey, run.ID)
		}
		now := s.now()
		_, err := s.advance(tx, run, TRenderDone, map[string]any{"video_key": m.VideoKey, "render_seconds": m.RenderSeconds, "reason": ""})
		if err != nil {
			return err
		}
		out := fmt.Sprintf("%s: %d frames in %.2fs with %s on %s", m.VideoKey, m.Frames, m.RenderSeconds, m.Encoder, m.Worker)
		if err := endStepBy(tx, run.ID, bus.StepRender, m.Attempt, out, "", now, bus.ReportOf(ctx)); err != nil {
			return err
		}
		return startStep(tx, *run, bus.StepCDN, 0, "", now)
	}, func(r store.Run) bool {
		return r.Status == store.StatusProcessing && r.Stage == store.StageCDN && r.Attempt == m.Attempt
	})
	return err
}

// onCDNDone makes the video ready. Purge errors are recorded, never fatal.
func (s *Service) onCDNDone(ctx context.Context, m *backbeatv1.CdnDone) error {
	errText := strings.Join(m.Errors, "; ")
	return s.ready(ctx, m.VideoId, m.RunId, strings.Join(m.PurgedPaths, ", "), errText)
}

// ready closes the cdn step and marks the run and video ready.
func (s *Service) ready(ctx context.Context, videoID, runID, cdnOutput, cdnErr string) error {
	changed, run, err := s.apply(ctx, videoID, runID, func(tx repoTx, run *store.Run) error {
		now := s.now()
		_, err := s.advance(tx, run, TReady, map[string]any{"finished_at": now, "reason": ""})
		if err != nil {
			return err
		}
		if err := endStepBy(tx, run.ID, bus.StepCDN, 0, cdnOutput, cdnErr, now, bus.ReportOf(ctx)); err != nil {
			return err
		}
		// The URLs are set by the promotion (emit), once the objects exist.
		if err := tx.UpdateVideoOfRun(run.VideoID, run.ID, map[string]any{"render_seconds": run.RenderSeconds}); err != nil {
			return fmt.Errorf("set render time: %w", err)
		}
		if err := instantStep(tx, *run, string(store.StatusReady), s.url(keys.PublicKey(run.VideoID, run.ID, keys.ObjectVideo)), "", now); err != nil {
			return err
		}
		if err := startStep(tx, *run, bus.StepThumbnail, 0, "", now); err != nil {
			return err
		}
		return startStep(tx, *run, bus.StepNotify, 0, "", now)
	}, func(r store.Run) bool { return r.Status == store.StatusReady })
	if changed {
		s.logFor(ctx).Info("video ready", zap.Float64("render_seconds", run.RenderSeconds))
		if cdnErr != "" {
			s.alertStep(run, bus.StepCDN, cdnErr)
		}
	}
	return err
}

// onThumbnailDone records the thumbnails on the timeline, makes them public
// and, only now that they exist, gives their URLs to the video.
func (s *Service) onThumbnailDone(ctx context.Context, m *backbeatv1.ThumbnailDone) error {
	if !keys.IsRunKey(m.ThumbnailKey, m.VideoId, m.RunId) || !keys.IsRunKey(m.SquareThumbnailKey, m.VideoId, m.RunId) {
		return bus.Permanentf("thumbnail.done carries keys %q, %q that are not objects of run %s", m.ThumbnailKey, m.SquareThumbnailKey, m.RunId)
	}
	if err := s.endAfterReady(ctx, m.VideoId, m.RunId, bus.StepThumbnail, m.ThumbnailKey+", "+m.SquareThumbnailKey, ""); err != nil {
		return err
	}
	run, current, err := s.reload(ctx, m.RunId)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (!current || run.Status != store.StatusReady)) {
		return nil // only the current, ready run's thumbnails are made public
	}
	if err != nil {
		return err
	}
	return s.promote(ctx, run, nil, promoted{m.ThumbnailKey, keys.ObjectThumbnail, "thumbnail_url"},
		promoted{m.SquareThumbnailKey, keys.ObjectSquareThumbnail, "square_thumbnail_url"})
}

// onNotifyDone records the notification on the timeline.
func (s *Service) onNotifyDone(ctx context.Context, m *backbeatv1.NotifyDone) error {
	return s.endAfterReady(ctx, m.VideoId, m.RunId, bus.StepNotify, m.Channel, "")
}

// endAfterReady closes a step that runs after the run finished; it never
// changes the run's status.
func (s *Service) endAfterReady(ctx context.Context, videoID, runID, step, output, errText string) error {
	return s.repo.Tx(ctx, func(tx repoTx) error {
		run, err := s.loadRun(tx, videoID, runID)
		if err == errNoChange {
			return nil
		}
		if err != nil {
			return err
		}
		return endStepBy(tx, run.ID, step, 0, output, errText, s.now(), bus.ReportOf(ctx))
	})
}
