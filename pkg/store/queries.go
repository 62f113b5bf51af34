package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// UpsertUser creates a user with a starting balance, or leaves an existing one
// alone (dev seeding, tests, the API's admin endpoint).
func (s *Store) UpsertUser(ctx context.Context, u User) error {
	err := s.DB.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&u).Error
	if err != nil {
		return fmt.Errorf("upsert user %s: %w", u.ID, err)
	}
	return nil
}

// GetUser returns a user or an error wrapping ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	return byID[User](ctx, s.DB, "user", id)
}

// GetVideo returns a video or an error wrapping ErrNotFound.
func (s *Store) GetVideo(ctx context.Context, id string) (Video, error) {
	return byID[Video](ctx, s.DB, "video", id)
}

// GetRun returns a run or an error wrapping ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (Run, error) {
	return byID[Run](ctx, s.DB, "run", id)
}

// byID reads the row of a T whose id is id; what names the table in errors.
func byID[T any](ctx context.Context, db *gorm.DB, what, id string) (T, error) {
	var row T
	err := db.WithContext(ctx).Where("id = ?", id).First(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, fmt.Errorf("%s %s: %w", what, id, ErrNotFound)
	}
	if err != nil {
		return row, fmt.Errorf("get %s %s: %w", what, id, err)
	}
	return row, nil
}

// Steps returns a run's timeline in order.
func (s *Store) Steps(ctx context.Context, runID string) ([]Step, error) {
	var steps []Step
	if err := s.DB.WithContext(ctx).Where("run_id = ?", runID).Order("started_at, id").Find(&steps).Error; err != nil {
		return nil, fmt.Errorf("steps of %s: %w", runID, err)
	}
	return steps, nil
}
