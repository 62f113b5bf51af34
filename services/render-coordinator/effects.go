package coordinator

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"gorm.io/gorm"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// Effects are what follows from a run's persisted state: the runs-KV entry,
// the job for its stage and the status announcement. They are derived from the
// state alone and published with deterministic ids, so emitting them again on
// a redelivered event is harmless; that is how a crash between commit and
// publish heals.
func (s *Service) emit(ctx context.Context, run store.Run) error {
	spec, err := specOf(run)
	if err != nil {
		return err
	}
	vid := run.VideoID
	kv := bus.RunState{RunID: run.ID, Attempt: run.Attempt, State: bus.RunActive}
	switch run.Status {
	case store.StatusReady:
		kv.State = bus.RunDone
	case store.StatusError:
		kv.State = bus.RunFailed
	case store.StatusCancelled:
		kv.State = bus.RunCancelled
	case store.StatusStalled:
		kv.State = bus.RunStalled
	}
	// A cancelled run that was superseded must not overwrite its successor.
	if cur, ok, err := s.runs.Get(ctx, vid); err != nil {
		return err
	} else if !ok || cur.RunID == run.ID || run.Status != store.StatusCancelled {
		if err := s.runs.Set(ctx, vid, kv); err != nil {
			return err
		}
	}

	switch {
	case run.Status == store.StatusPending && run.Stage == store.StageAudio:
		b := s.bundle(run.Bundle)
		job := &backbeatv1.AudioJob{
			VideoId: vid, RunId: run.ID, SourceKey: spec.AudioKey, SourceUrl: spec.AudioUrl,
			StartSeconds: spec.StartSeconds, EndSeconds: spec.EndSeconds,
			MaxRegionSeconds: b.MaxRegionSeconds, Fps: b.FPS,
		}
		if err := s.pub.Publish(ctx, s.subj.AudioJob(vid), job, bus.MsgID(run.ID, bus.StepAudio, 0, "job")); err != nil {
			return err
		}
	case run.Status == store.StatusProcessing && run.Stage == store.StageRender:
		b := s.bundle(run.Bundle)
		job := s.renderJob(run, spec, b)
		subj := s.subj.RenderJob(run.Pool, b.Priority, vid)
		if err := s.pub.Publish(ctx, subj, job, bus.MsgID(run.ID, bus.StepRender, run.Attempt, "job")); err != nil {
			return err
		}
	case run.Status == store.StatusProcessing && run.Stage == store.StageCDN:
		job := &backbeatv1.CdnJob{VideoId: vid, RunId: run.ID, Paths: []string{ids.VideoKey(vid), ids.ThumbnailKey(vid), ids.SquareThumbnailKey(vid)}}
		if err := s.pub.Publish(ctx, s.subj.CDNJob(vid), job, bus.MsgID(run.ID, bus.StepCDN, 0, "job")); err != nil {
			return err
		}
	case run.Status == store.StatusReady:
		th := &backbeatv1.ThumbnailJob{VideoId: vid, RunId: run.ID, VideoKey: run.VideoKey,
			ThumbnailKey: ids.ThumbnailKey(vid), SquareThumbnailKey: ids.SquareThumbnailKey(vid)}
		if err := s.pub.Publish(ctx, s.subj.ThumbnailJob(vid), th, bus.MsgID(run.ID, bus.StepThumbnail, 0, "job")); err != nil {
			return err
		}
	}
	if run.Status == store.StatusReady || run.Status == store.StatusError {
		n := &backbeatv1.NotifyJob{VideoId: vid, RunId: run.ID, UserId: run.UserID, Status: statusProto(run.Status),
			Reason: run.Reason}
		if run.Status == store.StatusReady {
			n.VideoUrl = s.url(run.VideoKey)
			n.ThumbnailUrl = s.url(ids.ThumbnailKey(vid))
		}
		if err := s.pub.Publish(ctx, s.subj.NotifyJob(vid), n, bus.MsgID(run.ID, bus.StepNotify, 0, "job")); err != nil {
			return err
		}
	}
	return s.announce(ctx, run)
}

// announce publishes video.status for apps and watchers.
func (s *Service) announce(ctx context.Context, run store.Run) error {
	ev := &backbeatv1.VideoStatusChanged{VideoId: run.VideoID, RunId: run.ID, UserId: run.UserID,
		Status: statusProto(run.Status), Reason: run.Reason, RenderSeconds: run.RenderSeconds}
	if run.Status == store.StatusReady {
		ev.VideoUrl = s.url(run.VideoKey)
	}
	id := bus.MsgID(run.ID, "status", run.Attempt, run.Status+"."+run.Stage)
	return s.pub.Publish(ctx, s.subj.Event(run.VideoID, bus.KindVideoStatus), ev, id)
}

func (s *Service) renderJob(run store.Run, spec *backbeatv1.VideoCreate, b Bundle) *backbeatv1.RenderJob {
	encoder := "libx264"
	if run.Pool == "gpu" && b.Encoder != "" {
		encoder = b.Encoder
	}
	return &backbeatv1.RenderJob{
		VideoId: run.VideoID, RunId: run.ID, Attempt: run.Attempt, Pool: run.Pool,
		Priority: b.PriorityProto(), Template: spec.Template, TemplateSettings: spec.TemplateSettings,
		Format: spec.Format, Title: spec.Title, Artist: spec.Artist, CoverKey: spec.CoverKey,
		AudioKey: run.AudioKey, AnalysisKey: run.AnalysisKey, DurationSeconds: run.Duration,
		Encoding: &backbeatv1.Encoding{Crf: b.CRF, Preset: b.Preset, Fps: b.FPS, Hdr: spec.Hdr && b.HDR,
			Encoder: encoder, Concurrency: b.Concurrency},
		OutputKey: ids.VideoKey(run.VideoID), Watermark: b.Watermark,
	}
}

func (s *Service) bundle(name string) Bundle {
	if b, ok := s.cfg.Bundles[name]; ok {
		return b
	}
	return s.cfg.Bundles["free"]
}

func specOf(run store.Run) (*backbeatv1.VideoCreate, error) {
	var spec backbeatv1.VideoCreate
	if err := protojson.Unmarshal([]byte(run.Spec), &spec); err != nil {
		return nil, fmt.Errorf("run %s spec: %w", run.ID, err)
	}
	return &spec, nil
}

func statusProto(status string) backbeatv1.VideoStatus {
	switch status {
	case store.StatusPending:
		return backbeatv1.VideoStatus_VIDEO_STATUS_PENDING
	case store.StatusProcessing:
		return backbeatv1.VideoStatus_VIDEO_STATUS_PROCESSING
	case store.StatusReady:
		return backbeatv1.VideoStatus_VIDEO_STATUS_READY
	case store.StatusError:
		return backbeatv1.VideoStatus_VIDEO_STATUS_ERROR
	case store.StatusStalled:
		return backbeatv1.VideoStatus_VIDEO_STATUS_STALLED
	case store.StatusCancelled:
		return backbeatv1.VideoStatus_VIDEO_STATUS_CANCELLED
	}
	return backbeatv1.VideoStatus_VIDEO_STATUS_UNSPECIFIED
}

// Timeline helpers. Steps are keyed (run, name, attempt): starting a step
// twice keeps the first start; ending it twice keeps the first end.

func startStep(tx *gorm.DB, run store.Run, name string, attempt int32, pool string, at time.Time) error {
	st := store.Step{RunID: run.ID, VideoID: run.VideoID, Name: name, Attempt: attempt, Pool: pool, StartedAt: at}
	if err := tx.Where(store.Step{RunID: run.ID, Name: name, Attempt: attempt}).FirstOrCreate(&st).Error; err != nil {
		return fmt.Errorf("start step %s: %w", name, err)
	}
	return nil
}

func endStep(tx *gorm.DB, runID, name string, attempt int32, output, errText string, at time.Time) error {
	res := tx.Model(&store.Step{}).Where("run_id = ? AND name = ? AND attempt = ? AND ended_at IS NULL", runID, name, attempt).
		Updates(map[string]any{"ended_at": at, "output": truncate(output, 2000), "error": truncate(errText, 2000)})
	if res.Error != nil {
		return fmt.Errorf("end step %s: %w", name, res.Error)
	}
	return nil
}

// instantStep records a step that starts and ends at once (accepted, ready).
func instantStep(tx *gorm.DB, run store.Run, name, output, errText string, at time.Time) error {
	if err := startStep(tx, run, name, 0, "", at); err != nil {
		return err
	}
	return endStep(tx, run.ID, name, 0, output, errText, at)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
