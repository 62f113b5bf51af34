package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"

	"gorm.io/gorm/clause"

	"github.com/backbeat/backbeat/pkg/store"
)

// IdempotencyKeyHeader is the header an app sets on POST /v1/videos so that
// a create it retries (its first answer lost) is charged once. The key
// becomes the VideoCreate's request_id: the API publishes the retry under
// the same message id (JetStream drops it within its duplicate window), and
// the coordinator, which keys a create by req:<video>:<request_id>, makes
// no second run or hold after that window either.
//
// A key names one request: the same key with another body for the same
// video is a 422, nothing published (the create_requests table remembers the
// first body's hash, recorded before the first publish). Otherwise the
// second body would be answered 202 and silently dropped in favour of the
// first. A key is recorded only once the create passed validation, so a
// request refused with a 400 can be corrected and retried under its key; a
// create recorded and then not published (NATS down: 500) is published by
// the first retry with the same body. Keys are per video: the same key on
// two videos is two creates, as it is for the coordinator.
//
// The body's request_id field, which predates the header, is the same key
// by another name and is checked the same way; sending both with different
// values is a 400. Without either, every POST is a new request.
const IdempotencyKeyHeader = "Idempotency-Key"

var idempotencyKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// idempotencyKey returns the request's Idempotency-Key, "" when it has
// none, or a 400 when it is malformed or repeated.
func idempotencyKey(r *http.Request) (string, error) {
	vals, ok := r.Header[http.CanonicalHeaderKey(IdempotencyKeyHeader)]
	if !ok {
		return "", nil
	}
	if len(vals) != 1 || !idempotencyKeyRE.MatchString(vals[0]) {
		return "", badRequest("%s must be 1-64 characters of [A-Za-z0-9_-] (one header), not %q", IdempotencyKeyHeader, vals)
	}
	return vals[0], nil
}

// bodyHash is the identity of a create for its request id: the validated
// request with the request id left out, the format in its canonical
// spelling and the user it is for, as JSON (struct fields in order, map keys
// sorted), hashed.
func bodyHash(req CreateRequest, userID, format string) (string, error) {
	req.RequestID, req.Format = "", format
	data, err := json.Marshal(struct {
		UserID string        `json:"user_id"`
		Create CreateRequest `json:"create"`
	}{userID, req})
	if err != nil {
		return "", fmt.Errorf("hash create: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// recordCreate remembers the body of a create under its request id, or
// checks that it is the body already remembered (422 otherwise). The insert
// does nothing on a conflict and the row is read back, so two requests that
// race with different bodies see the same winner.
func (s *Service) recordCreate(ctx context.Context, rec store.CreateRequest) error {
	db := s.store.DB.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&rec).Error; err != nil {
		return fmt.Errorf("record request %s of video %s: %w", rec.RequestID, rec.VideoID, err)
	}
	var got store.CreateRequest
	if err := db.Where("video_id = ? AND request_id = ?", rec.VideoID, rec.RequestID).First(&got).Error; err != nil {
		return fmt.Errorf("read request %s of video %s: %w", rec.RequestID, rec.VideoID, err)
	}
	if got.BodyHash != rec.BodyHash || got.UserID != rec.UserID {
		return errorf(http.StatusUnprocessableEntity,
			"%s %s was used for another request on video %s (at %s): use a new key for a new request",
			IdempotencyKeyHeader, rec.RequestID, rec.VideoID, got.CreatedAt.Format("2006-01-02T15:04:05Z"))
	}
	return nil
}
