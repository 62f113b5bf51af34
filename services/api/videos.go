package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// CreateRequest is POST /v1/videos: the fields of backbeatv1.VideoCreate
// except the user, which always comes from the API key.
type CreateRequest struct {
	VideoID          string            `json:"video_id"`
	AudioKey         string            `json:"audio_key,omitempty"`
	AudioURL         string            `json:"audio_url,omitempty"`
	StartSeconds     float64           `json:"start_seconds"`
	EndSeconds       float64           `json:"end_seconds"`
	Template         string            `json:"template"`
	TemplateSettings map[string]string `json:"template_settings,omitempty"`
	// Format is "square", "portrait" or "landscape" (or the enum name).
	Format    string `json:"format"`
	HDR       bool   `json:"hdr,omitempty"`
	Title     string `json:"title,omitempty"`
	Artist    string `json:"artist,omitempty"`
	CoverKey  string `json:"cover_key,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// AcceptedResponse answers the requests that become events: the work is
// queued, follow it with GET /v1/videos/{id}.
type AcceptedResponse struct {
	VideoID   string `json:"video_id"`
	RequestID string `json:"request_id"`
}

// ActionRequest is the optional body of cancel and recover.
type ActionRequest struct {
	Reason    string `json:"reason,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

var (
	requestIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	templateRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

// Limits on free-text fields, so a message stays small.
const (
	maxTextLen     = 256
	maxSettings    = 64
	maxSettingSize = 1024
)

// ParseFormat accepts "square", "portrait", "landscape" or the enum names.
func ParseFormat(s string) (backbeatv1.Format, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "FORMAT_") {
		name = "FORMAT_" + name
	}
	v, ok := backbeatv1.Format_value[name]
	if !ok || v == int32(backbeatv1.Format_FORMAT_UNSPECIFIED) {
		return 0, fmt.Errorf("format must be square, portrait or landscape, not %q", s)
	}
	return backbeatv1.Format(v), nil
}

// NewRequestID makes an idempotency key when the app sends none.
func NewRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "q" + hex.EncodeToString(b[:])
}

// toMessage validates the request and builds the event for userID.
func (req CreateRequest) toMessage(userID string) (*backbeatv1.VideoCreate, error) {
	if err := ids.ValidateVideoID(req.VideoID); err != nil {
		return nil, err
	}
	vid := req.VideoID
	switch {
	case req.AudioKey == "" && req.AudioURL == "":
		return nil, errors.New("audio_key or audio_url is required")
	case req.AudioKey != "" && req.AudioURL != "":
		return nil, errors.New("give audio_key or audio_url, not both")
	case req.AudioKey != "":
		if err := uploadKeyOf(vid, req.AudioKey, "audio_key"); err != nil {
			return nil, err
		}
	default:
		u, err := url.Parse(req.AudioURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("audio_url must be an https URL without credentials, not %q", req.AudioURL)
		}
	}
	if req.CoverKey != "" {
		if err := uploadKeyOf(vid, req.CoverKey, "cover_key"); err != nil {
			return nil, err
		}
	}
	for _, f := range []float64{req.StartSeconds, req.EndSeconds} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errors.New("start_seconds and end_seconds must be numbers")
		}
	}
	if req.StartSeconds < 0 {
		return nil, fmt.Errorf("start_seconds must not be negative (got %g)", req.StartSeconds)
	}
	if req.EndSeconds <= req.StartSeconds {
		return nil, fmt.Errorf("end_seconds (%g) must be after start_seconds (%g)", req.EndSeconds, req.StartSeconds)
	}
	if !templateRE.MatchString(req.Template) {
		return nil, fmt.Errorf("template must be a template name like \"bars\", not %q", req.Template)
	}
	format, err := ParseFormat(req.Format)
	if err != nil {
		return nil, err
	}
	if len(req.Title) > maxTextLen || len(req.Artist) > maxTextLen {
		return nil, fmt.Errorf("title and artist are limited to %d bytes", maxTextLen)
	}
	if len(req.TemplateSettings) > maxSettings {
		return nil, fmt.Errorf("at most %d template_settings", maxSettings)
	}
	for k, v := range req.TemplateSettings {
		if k == "" || len(k) > maxTextLen || len(v) > maxSettingSize {
			return nil, fmt.Errorf("template setting %q: empty or too long", k)
		}
	}
	if req.RequestID != "" && !requestIDRE.MatchString(req.RequestID) {
		return nil, fmt.Errorf("request_id must be 1-128 characters of [A-Za-z0-9._:-], not %q", req.RequestID)
	}
	return &backbeatv1.VideoCreate{
		VideoId: vid, UserId: userID, AudioKey: req.AudioKey, AudioUrl: req.AudioURL,
		StartSeconds: req.StartSeconds, EndSeconds: req.EndSeconds,
		Template: req.Template, TemplateSettings: req.TemplateSettings, Format: format,
		Hdr: req.HDR, Title: req.Title, Artist: req.Artist, CoverKey: req.CoverKey,
		RequestId: req.RequestID,
	}, nil
}

// uploadKeyOf checks that key is an upload of this video, so a create cannot
// point the pipeline at another video's files or at arbitrary objects.
func uploadKeyOf(vid, key, field string) error {
	if err := keys.ValidKey(key); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if !strings.HasPrefix(key, keys.UploadPrefix(vid)) {
		return fmt.Errorf("%s must be an upload of this video (%s…), not %q", field, keys.UploadPrefix(vid), key)
	}
	return nil
}

// createVideo validates and publishes a VideoCreate; the coordinator does
// the rest. With an Idempotency-Key (or a request_id in the body) a retry
// publishes the same create again, which is charged once
// (IdempotencyKeyHeader).
func (s *Service) createVideo(w http.ResponseWriter, r *http.Request, c caller) error {
	if c.Admin {
		return errorf(http.StatusForbidden, "videos belong to users: create them with a user's API key")
	}
	idemKey, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	var req CreateRequest
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if idemKey != "" {
		if req.RequestID != "" && req.RequestID != idemKey {
			return badRequest("request_id %q and %s %q differ: send one of them", req.RequestID, IdempotencyKeyHeader, idemKey)
		}
		req.RequestID = idemKey
	}
	m, err := req.toMessage(c.UserID)
	if err != nil {
		return badRequest("%v", err)
	}
	ctx := r.Context()
	if err := s.checkOwner(r, c, m.VideoId); err != nil {
		return err
	}
	for _, k := range []string{m.AudioKey, m.CoverKey} {
		if k == "" {
			continue
		}
		if _, err := s.blob.Stat(ctx, k); errors.Is(err, blob.ErrNotFound) {
			return badRequest("%s was not uploaded: POST /v1/uploads first", k)
		} else if err != nil {
			return fmt.Errorf("stat %s: %w", k, err)
		}
	}
	if err := s.claimVideo(ctx, c, m.VideoId); err != nil {
		return err
	}
	if m.RequestId != "" {
		hash, err := bodyHash(req, c.UserID, m.Format.String())
		if err != nil {
			return err
		}
		rec := store.CreateRequest{VideoID: m.VideoId, RequestID: m.RequestId, UserID: c.UserID, BodyHash: hash}
		if err := s.recordCreate(ctx, rec); err != nil {
			return err
		}
	} else {
		m.RequestId = NewRequestID()
	}
	subj := s.pub.Subjects().Event(m.VideoId, bus.KindVideoCreate)
	// The video id is part of the message id so that two apps choosing the
	// same request id for different videos do not deduplicate each other.
	if err := s.pub.Publish(ctx, subj, m, "create:"+m.VideoId+":"+m.RequestId); err != nil {
		return fmt.Errorf("publish create of %s: %w", m.VideoId, err)
	}
	bus.Logger(ctx, s.log).Info("video create published", zap.String("video_id", m.VideoId),
		zap.String("user_id", m.UserId), zap.String("request_id", m.RequestId))
	writeJSON(w, http.StatusAccepted, AcceptedResponse{VideoID: m.VideoId, RequestID: m.RequestId})
	return nil
}

// ownedVideo loads the path's video if the caller may act on it; others'
// videos are 404, like missing ones, so ids do not leak.
func (s *Service) ownedVideo(r *http.Request, c caller) (store.Video, error) {
	vid := r.PathValue("id")
	if err := ids.ValidateVideoID(vid); err != nil {
		return store.Video{}, badRequest("%v", err)
	}
	v, err := s.store.GetVideo(r.Context(), vid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !c.owns(v.UserID)) {
		return store.Video{}, notFound("video " + vid)
	}
	if err != nil {
		return store.Video{}, err
	}
	return v, nil
}

// readAction reads the optional body of cancel/recover and fills the request id.
func readAction(w http.ResponseWriter, r *http.Request) (ActionRequest, error) {
	var a ActionRequest
	if err := readJSON(w, r, &a, true); err != nil {
		return a, err
	}
	if a.RequestID != "" && !requestIDRE.MatchString(a.RequestID) {
		return a, badRequest("request_id must be 1-128 characters of [A-Za-z0-9._:-]")
	}
	if len(a.Reason) > maxTextLen {
		return a, badRequest("reason is limited to %d bytes", maxTextLen)
	}
	if a.RequestID == "" {
		a.RequestID = NewRequestID()
	}
	return a, nil
}

// currentRun is the run a cancel or recover names: the one the API sees as
// the video's current run. Naming it means a command the coordinator handles
// late, after a newer create, acts on the run the user saw, not on the newer
// one. A claimed video that was never created has none: 409.
func currentRun(v store.Video, action string) (string, error) {
	if v.RunID == "" {
		return "", errorf(http.StatusConflict, "video %s has no run to %s: it was never created (POST /v1/videos)", v.ID, action)
	}
	return v.RunID, nil
}

func (s *Service) cancelVideo(w http.ResponseWriter, r *http.Request, c caller) error {
	v, err := s.ownedVideo(r, c)
	if err != nil {
		return err
	}
	run, err := currentRun(v, "cancel")
	if err != nil {
		return err
	}
	a, err := readAction(w, r)
	if err != nil {
		return err
	}
	if a.Reason == "" {
		a.Reason = "cancelled by the user"
	}
	m := &backbeatv1.VideoCancel{VideoId: v.ID, RunId: run, Reason: a.Reason, RequestId: a.RequestID}
	subj := s.pub.Subjects().Event(v.ID, bus.KindVideoCancel)
	if err := s.pub.Publish(r.Context(), subj, m, "cancel:"+v.ID+":"+a.RequestID); err != nil {
		return fmt.Errorf("publish cancel of %s: %w", v.ID, err)
	}
	bus.Logger(r.Context(), s.log).Info("video cancel published", zap.String("video_id", v.ID), zap.String("run_id", run))
	writeJSON(w, http.StatusAccepted, AcceptedResponse{VideoID: v.ID, RequestID: a.RequestID})
	return nil
}

func (s *Service) recoverVideo(w http.ResponseWriter, r *http.Request, c caller) error {
	if !c.Admin && !s.cfg.OwnersMayRecover {
		return errorf(http.StatusForbidden, "admin key required")
	}
	v, err := s.ownedVideo(r, c)
	if err != nil {
		return err
	}
	run, err := currentRun(v, "recover")
	if err != nil {
		return err
	}
	a, err := readAction(w, r)
	if err != nil {
		return err
	}
	m := &backbeatv1.VideoRecover{VideoId: v.ID, RunId: run, RequestId: a.RequestID}
	subj := s.pub.Subjects().Event(v.ID, bus.KindVideoRecover)
	if err := s.pub.Publish(r.Context(), subj, m, "recover:"+v.ID+":"+a.RequestID); err != nil {
		return fmt.Errorf("publish recover of %s: %w", v.ID, err)
	}
	bus.Logger(r.Context(), s.log).Info("video recover published", zap.String("video_id", v.ID), zap.String("run_id", run))
	writeJSON(w, http.StatusAccepted, AcceptedResponse{VideoID: v.ID, RequestID: a.RequestID})
	return nil
}
