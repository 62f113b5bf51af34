package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// migration is one versioned, forward-only change of the schema.
type migration struct {
	Version int
	Name    string
	Up      func(tx *gorm.DB) error
}

// migrations are applied in order, all of them in the one transaction of
// Migrate, and recorded in schema_migrations. Never edit an applied one: add
// the next version.
var migrations = []migration{
	{1, "initial schema", func(tx *gorm.DB) error {
		// Version 1 auto-migrates the models as they are now, not as first
		// released: on a new database it creates every column a later
		// version adds, so each later version must tolerate finding its
		// change already made (version 2 checks HasColumn) and must never
		// re-run AutoMigrate itself.
		return tx.AutoMigrate(&User{}, &Video{}, &Run{}, &Step{}, &LedgerEntry{}, &APIKey{})
	}},
	{2, "runs: the watchdog's marks (progress_attempt, progress_frames, progress_at), stage_at and job_at", func(tx *gorm.DB) error {
		// Version 1 auto-migrates the current models, so on a new database
		// the columns exist already.
		for _, col := range []string{"ProgressAttempt", "ProgressFrames", "ProgressAt", "StageAt", "JobAt"} {
			if tx.Migrator().HasColumn(&Run{}, col) {
				continue
			}
			if err := tx.Migrator().AddColumn(&Run{}, col); err != nil {
				return fmt.Errorf("add runs.%s: %w", col, err)
			}
		}
		// Runs in flight at the upgrade: their stage began no later than
		// their last update.
		if err := tx.Exec("UPDATE runs SET stage_at = updated_at, job_at = updated_at WHERE stage_at IS NULL").Error; err != nil {
			return fmt.Errorf("backfill runs.stage_at: %w", err)
		}
		return nil
	}},
	{3, "create_requests: the body behind each request id of a create", func(tx *gorm.DB) error {
		return tx.Migrator().CreateTable(&createRequestV3{})
	}},
	{4, "steps: a partial index of the open steps, for the watchdog's deadline scan", func(tx *gorm.DB) error {
		// The watchdog lists the open steps of one name every few seconds
		// (OpenSteps); without it that is a scan of every step ever taken.
		// Only open steps are indexed, so the index stays as small as the
		// work in flight. Postgres and SQLite both have partial indexes.
		return tx.Exec("CREATE INDEX IF NOT EXISTS " + OpenStepsIndex + " ON steps (name, started_at) WHERE ended_at IS NULL").Error
	}},
	{5, "operators: runs.template, the steps' worker, queue wait and run time, the admin_actions audit trail", func(tx *gorm.DB) error {
		for _, c := range []struct {
			model any
			table string
			col   string
		}{
			{&Run{}, "runs", "Template"},
			{&Step{}, "steps", "Worker"},
			{&Step{}, "steps", "QueueWaitMS"},
			{&Step{}, "steps", "RunMS"},
		} {
			if tx.Migrator().HasColumn(c.model, c.col) {
				continue
			}
			if err := tx.Migrator().AddColumn(c.model, c.col); err != nil {
				return fmt.Errorf("add %s.%s: %w", c.table, c.col, err)
			}
		}
		if err := tx.Exec("CREATE INDEX IF NOT EXISTS idx_runs_template ON runs (template)").Error; err != nil {
			return fmt.Errorf("index runs.template: %w", err)
		}
		if err := tx.Exec("CREATE INDEX IF NOT EXISTS idx_runs_created_at ON runs (created_at)").Error; err != nil {
			return fmt.Errorf("index runs.created_at: %w", err)
		}
		if tx.Migrator().HasTable(&adminActionV5{}) {
			return nil
		}
		return tx.Migrator().CreateTable(&adminActionV5{})
	}},
}

// LatestSchemaVersion is the version of the last migration, the one a
// migrated database reports (SchemaVersion).
func LatestSchemaVersion() int { return migrations[len(migrations)-1].Version }

// OpenStepsIndex is the partial index of the steps not yet ended.
const OpenStepsIndex = "idx_steps_open"

// createRequestV3 is CreateRequest as migration 3 creates it, kept apart so
// that a later change of the model cannot change what the migration did.
type createRequestV3 struct {
	VideoID   string `gorm:"primaryKey;size:64"`
	RequestID string `gorm:"primaryKey;size:128"`
	UserID    string `gorm:"size:64;not null"`
	BodyHash  string `gorm:"size:64;not null"`
	CreatedAt time.Time
}

func (createRequestV3) TableName() string { return "create_requests" }

// adminActionV5 is AdminAction as migration 5 creates it.
type adminActionV5 struct {
	ID        uint   `gorm:"primaryKey"`
	RequestID string `gorm:"size:128;uniqueIndex:idx_admin_actions_request_id;not null"`
	Actor     string `gorm:"size:128;not null"`
	Action    string `gorm:"size:16;not null;index:idx_admin_actions_action"`
	Target    string `gorm:"size:64;index:idx_admin_actions_target"`
	Filter    string `gorm:"type:text"`
	DryRun    bool
	Result    string `gorm:"type:text"`
	Videos    int
	CreatedAt time.Time `gorm:"index:idx_admin_actions_created_at"`
}

func (adminActionV5) TableName() string { return "admin_actions" }

type schemaMigration struct {
	Version   int `gorm:"primaryKey;autoIncrement:false"`
	Name      string
	AppliedAt time.Time
}

func (schemaMigration) TableName() string { return "schema_migrations" }

// Migrate applies every migration not yet recorded, all in one transaction.
// On Postgres an advisory lock makes services that start together on a fresh
// database (coordinator and api) take turns instead of racing to create the
// same tables; DDL is transactional there, so a failed migration leaves
// nothing behind.
func (s *Store) Migrate(ctx context.Context) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if s.postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", migrationLock).Error; err != nil {
				return fmt.Errorf("lock migrations: %w", err)
			}
		}
		if err := tx.AutoMigrate(&schemaMigration{}); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		for _, m := range migrations {
			var n int64
			if err := tx.Model(&schemaMigration{}).Where("version = ?", m.Version).Count(&n).Error; err != nil {
				return fmt.Errorf("read schema_migrations: %w", err)
			}
			if n > 0 {
				continue
			}
			if err := tx.Create(&schemaMigration{Version: m.Version, Name: m.Name, AppliedAt: time.Now().UTC()}).Error; err != nil {
				return fmt.Errorf("migration %d (%s): record: %w", m.Version, m.Name, err)
			}
			if err := m.Up(tx); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
			}
		}
		return nil
	})
}

// migrationLock is the advisory lock key of Migrate ("bbmigrat" in ASCII).
const migrationLock int64 = 0x62626d6967726174

// SchemaVersion is the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.DB.WithContext(ctx).Model(&schemaMigration{}).Select("COALESCE(MAX(version), 0)").Scan(&v).Error
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}
