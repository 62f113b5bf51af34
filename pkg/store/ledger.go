package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ErrInsufficientCredits is returned when a hold exceeds the balance.
var ErrInsufficientCredits = errors.New("insufficient credits")

// ErrUnknownUser is returned when a user id has no row.
var ErrUnknownUser = errors.New("unknown user")

// Hold takes units from the user for a run, once: a second Hold of the same
// run changes nothing. The balance and the ledger move in tx together.
func Hold(tx *gorm.DB, runID, userID string, units int64) error {
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&LedgerEntry{RunID: runID, Kind: LedgerHold, UserID: userID, Amount: units})
	if res.Error != nil {
		return fmt.Errorf("ledger hold: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil
	}
	upd := tx.Model(&User{}).Where("id = ? AND balance >= ?", userID, units).
		Update("balance", gorm.Expr("balance - ?", units))
	if upd.Error != nil {
		return fmt.Errorf("debit balance: %w", upd.Error)
	}
	if upd.RowsAffected != 1 {
		// Take back the row inserted above: a caller that records the refusal
		// and commits must not keep a hold whose balance never moved.
		if err := tx.Where("run_id = ? AND kind = ?", runID, LedgerHold).Delete(&LedgerEntry{}).Error; err != nil {
			return fmt.Errorf("undo ledger hold: %w", err)
		}
		var n int64
		if err := tx.Model(&User{}).Where("id = ?", userID).Count(&n).Error; err != nil {
			return fmt.Errorf("look up user: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("user %q: %w", userID, ErrUnknownUser)
		}
		return fmt.Errorf("user %q needs %d units: %w", userID, units, ErrInsufficientCredits)
	}
	return nil
}

// Refund gives back what a run held, at most once, and only if it held
// anything. It reports whether credits moved.
func Refund(tx *gorm.DB, runID string) (bool, error) {
	var hold LedgerEntry
	err := tx.Where("run_id = ? AND kind = ?", runID, LedgerHold).First(&hold).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find hold: %w", err)
	}
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&LedgerEntry{RunID: runID, Kind: LedgerRefund, UserID: hold.UserID, Amount: hold.Amount})
	if res.Error != nil {
		return false, fmt.Errorf("ledger refund: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	if err := tx.Model(&User{}).Where("id = ?", hold.UserID).Update("balance", gorm.Expr("balance + ?", hold.Amount)).Error; err != nil {
		return false, fmt.Errorf("credit balance: %w", err)
	}
	return true, nil
}

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
	var u User
	err := s.DB.WithContext(ctx).Where("id = ?", id).First(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return u, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, nil
}

// GetVideo returns a video or an error wrapping ErrNotFound.
func (s *Store) GetVideo(ctx context.Context, id string) (Video, error) {
	var v Video
	err := s.DB.WithContext(ctx).Where("id = ?", id).First(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return v, fmt.Errorf("video %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("get video %s: %w", id, err)
	}
	return v, nil
}

// GetRun returns a run or an error wrapping ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (Run, error) {
	var r Run
	err := s.DB.WithContext(ctx).Where("id = ?", id).First(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return r, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("get run %s: %w", id, err)
	}
	return r, nil
}

// Steps returns a run's timeline in order.
func (s *Store) Steps(ctx context.Context, runID string) ([]Step, error) {
	var steps []Step
	if err := s.DB.WithContext(ctx).Where("run_id = ?", runID).Order("started_at, id").Find(&steps).Error; err != nil {
		return nil, fmt.Errorf("steps of %s: %w", runID, err)
	}
	return steps, nil
}

// Ledger returns a user's credit movements, oldest first.
func (s *Store) Ledger(ctx context.Context, userID string) ([]LedgerEntry, error) {
	var out []LedgerEntry
	if err := s.DB.WithContext(ctx).Where("user_id = ?", userID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", userID, err)
	}
	return out, nil
}
