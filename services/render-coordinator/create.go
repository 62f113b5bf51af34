package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// createKey identifies a create for idempotency: the app's request id, or the
// stream sequence of the (original, when replayed) event when it has none.
func createKey(ctx context.Context, m *backbeatv1.VideoCreate) string {
	if m.RequestId != "" {
		return "req:" + m.VideoId + ":" + m.RequestId
	}
	return "seq:" + strconv.FormatUint(eventSequence(ctx), 10)
}

type sequenceKey struct{}

type replayKey struct{}

// isReplay reports whether the event being handled was re-published by an
// operator's replay.
func isReplay(ctx context.Context) bool {
	if r, ok := ctx.Value(replayKey{}).(bool); ok {
		return r
	}
	return bus.IsReplay(ctx)
}

// withEventSequence sets the stream sequence eventSequence reports; the
// simulation, which has no JetStream message to carry it, uses it.
func withEventSequence(ctx context.Context, seq uint64, replay bool) context.Context {
	return context.WithValue(context.WithValue(ctx, sequenceKey{}, seq), replayKey{}, replay)
}

// eventSequence is the EVENTS sequence of the event being handled, or of the
// original when it is a replay (bus.OriginalSequence).
func eventSequence(ctx context.Context) uint64 {
	if seq, ok := ctx.Value(sequenceKey{}).(uint64); ok {
		return seq
	}
	return bus.OriginalSequence(ctx)
}

// validateCreate returns the reason a create cannot be rendered, or "".
func validateCreate(m *backbeatv1.VideoCreate, b Bundle) string {
	switch {
	case m.StartSeconds < 0:
		return fmt.Sprintf("region start %.3fs is negative", m.StartSeconds)
	case m.EndSeconds <= m.StartSeconds:
		return fmt.Sprintf("region end %.3fs must be after its start %.3fs", m.EndSeconds, m.StartSeconds)
	case m.EndSeconds-m.StartSeconds > b.MaxRegionSeconds+1e-6:
		return fmt.Sprintf("region of %.1fs is longer than the %s bundle allows (%.0fs)", m.EndSeconds-m.StartSeconds, b.Name, b.MaxRegionSeconds)
	case m.Format == backbeatv1.Format_FORMAT_UNSPECIFIED:
		return "format is required (square, portrait or landscape)"
	case m.Template == "":
		return "template is required"
	case m.AudioKey == "" && m.AudioUrl == "":
		return "audio_key or audio_url is required"
	case m.AudioKey != "" && m.AudioUrl != "":
		return "give audio_key or audio_url, not both"
	}
	if m.AudioKey != "" {
		if err := keys.ValidKey(m.AudioKey); err != nil || !strings.HasPrefix(m.AudioKey, keys.UploadPrefix(m.VideoId)) {
			return fmt.Sprintf("audio_key %q must be an upload of this video (%s…)", m.AudioKey, keys.UploadPrefix(m.VideoId))
		}
	}
	if m.AudioUrl != "" && !strings.HasPrefix(m.AudioUrl, "https://") {
		return fmt.Sprintf("audio_url %q must be https", m.AudioUrl)
	}
	if m.CoverKey != "" {
		if err := keys.ValidKey(m.CoverKey); err != nil || !strings.HasPrefix(m.CoverKey, keys.UploadPrefix(m.VideoId)) {
			return fmt.Sprintf("cover_key %q must be an upload of this video (%s…)", m.CoverKey, keys.UploadPrefix(m.VideoId))
		}
	}
	if len(m.Title) > 200 || len(m.Artist) > 200 {
		return "title and artist must be at most 200 bytes"
	}
	return ""
}

// errRollbackRefused undoes a create's transaction whose hold failed, so that
// it is recorded again as a refusal that supersedes nothing.
var errRollbackRefused = errors.New("create refused: roll back")

// onCreate starts a run: one per create event, whatever is redelivered. A
// create is validated and its credits held before it supersedes anything: a
// run in flight for the same video is superseded (cancelled and refunded) in
// the same transaction that holds the new run's credits, and a refused create
// (bad region, unknown user, not enough credits) leaves the run in flight
// alone.
func (s *Service) onCreate(ctx context.Context, m *backbeatv1.VideoCreate) error {
	if err := ids.ValidateVideoID(m.VideoId); err != nil {
		return bus.Permanent(err)
	}
	if err := ids.ValidateUserID(m.UserId); err != nil {
		return bus.Permanent(err)
	}
	log := s.logFor(ctx)
	key := createKey(ctx, m)
	spec, err := protojson.Marshal(m)
	if err != nil {
		return bus.Permanent(fmt.Errorf("encode spec: %w", err))
	}
	var res createResult
	for _, forced := range []string{"", "insufficient"} {
		res = createResult{}
		err = s.repo.Tx(ctx, func(tx repoTx) error {
			return s.createTx(tx, m, key, string(spec), forced, &res)
		})
		if !errors.Is(err, errRollbackRefused) {
			break
		}
	}
	if err != nil {
		return err
	}
	if res.stale {
		log.Info("retry not applied: the video's current run is no longer the failed one",
			zap.String("retry_of", m.RetryOf), zap.String("create_key", key))
		return nil
	}
	if res.duplicate != nil {
		log.Info("create already handled", zap.String("run_id", res.duplicate.ID), zap.String("create_key", key))
		// emit re-derives the effects only if that run is still current.
		return s.emit(ctx, *res.duplicate)
	}
	created := res.created
	if res.superseded != nil {
		log.Info("run superseded", zap.String("old_run_id", res.superseded.ID), zap.String("new_run_id", created.ID))
		if err := s.announce(ctx, *res.superseded); err != nil {
			return err
		}
	}
	if created.Status == store.StatusError {
		log.Warn("create refused", zap.String("run_id", created.ID), zap.String("reason", created.Reason))
		if !res.current {
			// The video keeps its run; the app still hears of the refusal.
			if err := s.notify(ctx, created); err != nil {
				return err
			}
			return s.announce(ctx, created)
		}
	} else {
		log.Info("run started", zap.String("run_id", created.ID), zap.Int64("units", created.Units))
	}
	return s.emit(ctx, created)
}

// createResult is what a create's transaction did.
type createResult struct {
	created    store.Run
	superseded *store.Run
	duplicate  *store.Run
	// stale: a retry (RetryOf) of a run that is no longer current; nothing
	// was written.
	stale bool
	// current: the created run is now the video's run.
	current bool
}

// createTx records one create. forced is "insufficient" on the second try of
// a create whose hold failed: it is then recorded as refused.
func (s *Service) createTx(tx repoTx, m *backbeatv1.VideoCreate, key, spec, forced string, res *createResult) error {
	now := s.now()
	existing, found, err := tx.RunByCreateKey(key)
	if err != nil {
		return fmt.Errorf("look up create: %w", err)
	}
	if found {
		res.duplicate = &existing
		return nil
	}
	user, known, err := tx.User(m.UserId)
	if err != nil {
		return fmt.Errorf("look up user: %w", err)
	}
	// The video row is the per-video lock.
	if err := tx.InsertVideoIfAbsent(store.Video{ID: m.VideoId, UserID: m.UserId, Status: store.StatusPending}); err != nil {
		return fmt.Errorf("create video: %w", err)
	}
	video, err := lockVideo(tx, m.VideoId)
	if err != nil {
		return err
	}
	if video.UserID != m.UserId {
		return bus.Permanentf("video %s belongs to another user", m.VideoId)
	}
	if m.RetryOf != "" && video.RunID != m.RetryOf {
		// An operator's retry of a run that is no longer the video's own:
		// the user asked again since, and the retry must not supersede that.
		res.stale = true
		return nil
	}
	b := s.bundle(user.Bundle)
	run := store.Run{ID: s.newRunID(), VideoID: m.VideoId, UserID: m.UserId, CreateKey: key,
		Status: TCreate.To, Stage: TCreate.ToStage, StageAt: &now, Bundle: b.Name, Template: m.Template, Spec: spec}
	var reason string
	switch {
	case !known:
		reason = fmt.Sprintf("unknown user %q", m.UserId)
	default:
		reason = validateCreate(m, b)
	}
	if reason == "" {
		run.Units = b.Units(m.EndSeconds - m.StartSeconds)
	}
	if reason == "" && forced != "" {
		reason = fmt.Sprintf("insufficient credits: this video costs %d units, the balance is %d", run.Units, user.Balance)
	}
	var old *store.Run
	if video.RunID != "" {
		o, ok, err := tx.Run(video.RunID)
		if err != nil {
			return fmt.Errorf("load current run: %w", err)
		}
		if ok {
			old = &o
		}
	}
	if reason == "" {
		// Supersede the run in flight, then hold: the refund may be what
		// pays for the new run. If the hold fails, all of it rolls back.
		if old != nil && TSupersede.Allows(old.Status, old.Stage) {
			why := "superseded by a new request (run " + run.ID + ")"
			if _, err := s.finish(tx, old, TSupersede, why, now); err != nil {
				return err
			}
			res.superseded = old
		}
		if err := tx.Hold(run.ID, m.UserId, run.Units); err != nil {
			if errors.Is(err, store.ErrInsufficientCredits) {
				return errRollbackRefused
			}
			return err
		}
	}
	// A refused create becomes the video's run only where it hides nothing:
	// no run yet, or one that ended without a result.
	res.current = reason == "" || old == nil || old.Status == store.StatusError || old.Status == store.StatusCancelled
	if reason != "" {
		run.Status, run.Stage, run.Reason, run.FinishedAt, run.Units = TRefuse.To, TRefuse.ToStage, reason, &now, 0
	}
	if err := tx.InsertRun(run); err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	out := fmt.Sprintf("held %d units (%s bundle)", run.Units, b.Name)
	if reason != "" {
		out = ""
	}
	if err := instantStep(tx, run, "accepted", out, reason, now); err != nil {
		return err
	}
	if reason == "" {
		if err := startStep(tx, run, bus.StepAudio, 0, "", now); err != nil {
			return err
		}
	}
	if res.current {
		upd := map[string]any{"run_id": run.ID, "status": run.Status, "reason": run.Reason, "video_url": "",
			"thumbnail_url": "", "square_thumbnail_url": "", "mp3_url": "", "render_seconds": 0}
		if err := tx.UpdateVideo(m.VideoId, upd); err != nil {
			return fmt.Errorf("update video: %w", err)
		}
	}
	res.created = run
	return nil
}
