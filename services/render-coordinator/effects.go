package coordinator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// kvState is the runs-KV entry of a run's persisted state.
func kvState(run store.Run) bus.RunState {
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
	return kv
}

// reload reads a run and reports whether it is its video's current run.
func (s *Service) reload(ctx context.Context, runID string) (store.Run, bool, error) {
	run, current, ok, err := s.repo.Auto(ctx).RunIsCurrent(runID)
	if err != nil {
		return run, false, fmt.Errorf("get run %s: %w", runID, err)
	}
	if !ok {
		return run, false, fmt.Errorf("run %s or its video: %w", runID, store.ErrNotFound)
	}
	return run, current, nil
}

// Effects are what follows from a run's persisted state: the runs-KV entry,
// the public objects of a ready run, the job for its stage and the status
// announcement. They are derived from the state as it is in the database
// when they are emitted (not as the caller last saw it), only for the
// video's current run, and published with deterministic ids, so emitting
// them again on a redelivered event is harmless; that is how a crash
// between commit and publish heals, and why a stale run's late effects never
// touch its successor.
//
// The runs-KV entry is written compare-and-set: the entry is read, then the
// database, then the entry is written at the revision read. A successor's
// create commits before its own KV write, so either this write sees the
// successor in the database and stops, or the successor's write comes later
// (and wins), or it came between the read and the write and the write fails
// on the revision and is decided again.
func (s *Service) emit(ctx context.Context, r store.Run) error {
	var run store.Run
	for i := 0; ; i++ {
		cur, rev, ok, err := s.runs.GetRevision(ctx, r.VideoID)
		if err != nil {
			return err
		}
		fresh, current, err := s.reload(ctx, r.ID)
		if err != nil {
			return err
		}
		if !current {
			s.logFor(ctx).Debug("effects of a run that is no longer current not emitted", zap.String("emit_run_id", r.ID))
			return nil
		}
		run = fresh
		want := kvState(run)
		if ok && cur == want {
			break
		}
		err = s.runs.CompareAndSet(ctx, r.VideoID, want, rev)
		if err == nil {
			break
		}
		if !errors.Is(err, bus.ErrRevisionConflict) || i == 20 {
			return err
		}
	}
	spec, err := specOf(run)
	if err != nil {
		return err
	}
	vid := run.VideoID
	switch {
	case run.Status == store.StatusPending && run.Stage == store.StageAudio:
		b := s.bundle(run.Bundle)
		job := &backbeatv1.AudioJob{
			VideoId: vid, RunId: run.ID, SourceKey: spec.AudioKey, SourceUrl: spec.AudioUrl,
			StartSeconds: spec.StartSeconds, EndSeconds: spec.EndSeconds,
			MaxRegionSeconds: b.MaxRegionSeconds, Fps: b.FPS,
		}
		if err := s.pub.Publish(ctx, s.subj.AudioJob(vid), job, bus.MsgID(run.ID, bus.StepAudio, 0, stageJob(run))); err != nil {
			return err
		}
		if err := s.jobPublished(ctx, run); err != nil {
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
		job := &backbeatv1.CdnJob{VideoId: vid, RunId: run.ID, Paths: publicPaths(run)}
		if err := s.pub.Publish(ctx, s.subj.CDNJob(vid), job, bus.MsgID(run.ID, bus.StepCDN, 0, stageJob(run))); err != nil {
			return err
		}
		if err := s.jobPublished(ctx, run); err != nil {
			return err
		}
	case run.Status == store.StatusReady:
		err := s.promote(ctx, run, map[string]any{"status": store.StatusReady, "reason": ""},
			promoted{run.VideoKey, keys.ObjectVideo, "video_url"}, promoted{run.MP3Key, keys.ObjectMP3, "mp3_url"})
		if err != nil {
			return err
		}
		th := &backbeatv1.ThumbnailJob{VideoId: vid, RunId: run.ID, VideoKey: run.VideoKey,
			ThumbnailKey:       keys.RunKey(vid, run.ID, keys.ObjectThumbnail),
			SquareThumbnailKey: keys.RunKey(vid, run.ID, keys.ObjectSquareThumbnail)}
		if err := s.pub.Publish(ctx, s.subj.ThumbnailJob(vid), th, bus.MsgID(run.ID, bus.StepThumbnail, 0, "job")); err != nil {
			return err
		}
	}
	if run.Status == store.StatusReady || run.Status == store.StatusError {
		if err := s.notify(ctx, run); err != nil {
			return err
		}
	}
	return s.announce(ctx, run)
}

// notify asks the notifier to tell the app how a run ended.
func (s *Service) notify(ctx context.Context, run store.Run) error {
	n := &backbeatv1.NotifyJob{VideoId: run.VideoID, RunId: run.ID, UserId: run.UserID, Status: statusProto(run.Status),
		Reason: run.Reason}
	if run.Status == store.StatusReady {
		n.VideoUrl = s.url(keys.PublicKey(run.VideoID, run.ID, keys.ObjectVideo))
	}
	return s.pub.Publish(ctx, s.subj.NotifyJob(run.VideoID), n, bus.MsgID(run.ID, bus.StepNotify, 0, "job"))
}

// jobPublished starts the deadline of the run's stage, once: when its job
// was first published.
func (s *Service) jobPublished(ctx context.Context, run store.Run) error {
	if run.JobAt != nil {
		return nil
	}
	// Lazy: if a database crash loses job_at, the sweeper publishes the job
	// again (deduplicated) and sets it then; the deadline starts late, no
	// more. Not waiting for the disk here keeps an fsync off every stage.
	err := s.repo.Lazy(ctx, func(tx repoTx) error {
		_, err := tx.UpdateRuns(runWhere{ID: run.ID, Stage: run.Stage, NoJobAt: true}, map[string]any{"job_at": s.now()})
		return err
	})
	if err != nil {
		return fmt.Errorf("start the %s deadline of %s: %w", run.Stage, run.ID, err)
	}
	return nil
}

// stageJob names the job of a run's stage for its message id: the same for as
// long as the run stays in the stage (a re-emit is a duplicate), new when a
// recover starts the stage again.
func stageJob(run store.Run) string {
	if run.StageAt == nil {
		return "job"
	}
	return "job." + strconv.FormatInt(run.StageAt.UnixNano(), 10)
}

// publicPaths are the public keys a run's objects get at ready: what the
// edges and the external CDN are told to forget (a 404 cached while the app
// polled must not outlive the promotion).
func publicPaths(run store.Run) []string {
	return []string{keys.PublicKey(run.VideoID, run.ID, keys.ObjectVideo), keys.PublicKey(run.VideoID, run.ID, keys.ObjectMP3),
		keys.PublicKey(run.VideoID, run.ID, keys.ObjectThumbnail), keys.PublicKey(run.VideoID, run.ID, keys.ObjectSquareThumbnail)}
}

// promoted is one of a run's private objects and the video column that gets
// its public URL.
type promoted struct{ src, name, col string }

// promote makes objects of a ready run public: a server-side copy from the
// run's private keys to its public keys (idempotent), then their URLs on the
// video, so an app never sees a URL before its object exists. Only a ready
// run is promoted, and a ready run is never refunded: nothing a user got back
// their credits for is ever served. The video and MP3 are promoted at ready,
// the thumbnails when they are made. also are more columns of the video to
// set with the URLs (at ready: the status, so a video never shows ready
// without its URL).
func (s *Service) promote(ctx context.Context, run store.Run, also map[string]any, objs ...promoted) error {
	if run.Status != store.StatusReady {
		return fmt.Errorf("promote run %s: it is %s, not ready", run.ID, run.Status)
	}
	upd := maps.Clone(also)
	if upd == nil {
		upd = map[string]any{}
	}
	for _, o := range objs {
		if o.src == "" {
			continue
		}
		dst := keys.PublicKey(run.VideoID, run.ID, o.name)
		_, err := s.blob.Copy(ctx, o.src, dst)
		if errors.Is(err, blob.ErrNotFound) {
			// A worker reported an object that is not there: retrying
			// cannot make it appear. The run stays ready without that URL.
			s.alertStep(run, "promote", fmt.Sprintf("%s is missing; %s not set", o.src, o.col))
			continue
		}
		if err != nil {
			return fmt.Errorf("promote %s: %w", o.src, err)
		}
		upd[o.col] = s.url(dst)
	}
	if len(upd) == 0 {
		return nil
	}
	if err := s.repo.Auto(ctx).UpdateVideoOfRun(run.VideoID, run.ID, upd); err != nil {
		return fmt.Errorf("set public urls of %s: %w", run.VideoID, err)
	}
	return nil
}

// announce publishes video.status for apps and watchers.
func (s *Service) announce(ctx context.Context, run store.Run) error {
	ev := &backbeatv1.VideoStatusChanged{VideoId: run.VideoID, RunId: run.ID, UserId: run.UserID,
		Status: statusProto(run.Status), Reason: run.Reason, RenderSeconds: run.RenderSeconds}
	if run.Status == store.StatusReady {
		ev.VideoUrl = s.url(keys.PublicKey(run.VideoID, run.ID, keys.ObjectVideo))
	}
	id := bus.MsgID(run.ID, "status", run.Attempt, string(run.Status)+"."+string(run.Stage))
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
		OutputKey: keys.RunKey(run.VideoID, run.ID, keys.ObjectVideo), Watermark: b.Watermark,
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

func statusProto(status store.Status) backbeatv1.VideoStatus {
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

func startStep(tx repoTx, run store.Run, name string, attempt int32, pool string, at time.Time) error {
	st := store.Step{RunID: run.ID, VideoID: run.VideoID, Name: name, Attempt: attempt, Pool: pool, StartedAt: at}
	if err := tx.StartStep(st); err != nil {
		return fmt.Errorf("start step %s: %w", name, err)
	}
	return nil
}

func endStep(tx repoTx, runID, name string, attempt int32, output, errText string, at time.Time) error {
	return endStepBy(tx, runID, name, attempt, output, errText, at, bus.Report{})
}

// endStepBy ends a step a worker did, with its report (bus.ReportOf).
func endStepBy(tx repoTx, runID, name string, attempt int32, output, errText string, at time.Time, by bus.Report) error {
	if err := tx.EndStep(runID, name, attempt, at, truncate(output, 2000), truncate(errText, 2000), by); err != nil {
		return fmt.Errorf("end step %s: %w", name, err)
	}
	return nil
}

// instantStep records a step that starts and ends at once (accepted, ready).
func instantStep(tx repoTx, run store.Run, name, output, errText string, at time.Time) error {
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
