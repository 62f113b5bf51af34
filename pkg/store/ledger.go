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

// Ledger returns a user's credit movements, oldest first.
func (s *Store) Ledger(ctx context.Context, userID string) ([]LedgerEntry, error) {
	var out []LedgerEntry
	if err := s.DB.WithContext(ctx).Where("user_id = ?", userID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", userID, err)
	}
	return out, nil
}
