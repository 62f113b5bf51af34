package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"gorm.io/gorm/clause"

	"github.com/backbeat/backbeat/pkg/store"
)

// A video id belongs to the user who first uses it: the first upload or
// create under an unused id claims it by inserting the video's row (status
// pending, no run), exactly the row the coordinator's create inserts when it
// finds none. From then on only that user may upload under the id or
// create the video; others get a 403. The coordinator enforces the same rule
// on its side (a create from a user who is not the row's owner is refused),
// so a create published before the claim, or by another path, cannot take a
// claimed id either.
//
// A claimed video with no run is not yet a video: GET answers 404, as for
// an unknown id, which is what `backbeat watch` expects while a create is
// queued, and cancel and recover answer 409. Claims are never released: an
// app that uploads and never creates keeps the id, as it keeps its files.
// Operators (the admin key) may act on every video but upload or create none.

// checkOwner refuses a video id that belongs to another user. It only reads,
// so it can run before a request's body is read; claimVideo decides.
func (s *Service) checkOwner(r *http.Request, c caller, vid string) error {
	v, err := s.store.GetVideo(r.Context(), vid)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check owner of %s: %w", vid, err)
	}
	if !c.owns(v.UserID) {
		return errOtherUsersVideo(vid)
	}
	return nil
}

// claimVideo makes the caller the owner of an unused video id, or checks
// that the caller already is. Two users racing for the same id both insert
// with ON CONFLICT DO NOTHING and then read the row: one insert wins, and
// both see its owner.
func (s *Service) claimVideo(ctx context.Context, c caller, vid string) error {
	if c.UserID == "" {
		return errorf(http.StatusForbidden, "videos belong to users: use a user's API key")
	}
	claim := store.Video{ID: vid, UserID: c.UserID, Status: store.StatusPending}
	if err := s.store.DB.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&claim).Error; err != nil {
		return fmt.Errorf("claim video %s: %w", vid, err)
	}
	v, err := s.store.GetVideo(ctx, vid)
	if err != nil {
		return fmt.Errorf("claim video %s: %w", vid, err)
	}
	if v.UserID != c.UserID {
		return errOtherUsersVideo(vid)
	}
	return nil
}

func errOtherUsersVideo(vid string) error {
	return errorf(http.StatusForbidden, "video id %s belongs to another user: choose another id", vid)
}
