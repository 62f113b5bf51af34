package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/backbeat/backbeat/pkg/redact"
)

// PostgresConns is the connection pool of one process on Postgres: enough
// for the coordinator's concurrent events (render-coordinator's default
// Concurrency) with its watchdog and notifier, or the API's requests, while
// a few replicas of each stay under Postgres's default max_connections
// (100).
const PostgresConns = 24

// Store wraps the gorm handle with the operations the services need.
type Store struct {
	DB       *gorm.DB
	postgres bool
}

// Open connects to postgres://… or sqlite://path (sqlite::memory: for a
// throwaway database) and applies pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	// SkipDefaultTransaction: a single write outside a transaction is its
	// own statement, committed at once, instead of gorm's BEGIN, statement,
	// COMMIT (two round trips more). The models have no associations, so no
	// single gorm call writes more than one statement; work that must be
	// atomic across statements uses DB.Transaction.
	cfg := &gorm.Config{Logger: logger.Discard, NowFunc: func() time.Time { return time.Now().UTC() }, SkipDefaultTransaction: true}
	var (
		db  *gorm.DB
		err error
		pg  bool
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		pg = true
		db, err = gorm.Open(postgres.Open(dsn), cfg)
	case strings.HasPrefix(dsn, "sqlite://"):
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path != ":memory:" {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, fmt.Errorf("create database dir: %w", err)
			}
		}
		// WAL with synchronous=NORMAL: a commit survives the process
		// crashing, not the machine losing power (the last commits can
		// be lost then). SQLite is `backbeat dev`'s database, where that
		// buys a commit without an fsync; production runs Postgres.
		db, err = gorm.Open(sqlite.Open(path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"), cfg)
	default:
		return nil, fmt.Errorf("database url %q: want postgres://… or sqlite://path", redact.URL(dsn))
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("database handle: %w", err)
	}
	conns := PostgresConns
	if !pg {
		// SQLite has one writer; one connection serialises transactions
		// instead of failing them with SQLITE_BUSY.
		conns = 1
	}
	// As many idle as open: database/sql keeps 2 idle by default, so a
	// service busier than that closed and reopened a connection (a new
	// Postgres backend process) for most statements.
	sqlDB.SetMaxOpenConns(conns)
	sqlDB.SetMaxIdleConns(conns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{DB: db, postgres: pg}
	if err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Postgres reports whether the store is on Postgres (else SQLite).
func (s *Store) Postgres() bool { return s.postgres }

// Close releases the connections.
func (s *Store) Close() error {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks the database answers (for /readyz).
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// ForUpdate locks the selected rows on Postgres; SQLite serialises writers.
func (s *Store) ForUpdate(tx *gorm.DB) *gorm.DB {
	if s.postgres {
		return tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx
}

// ErrNotFound is returned (wrapped) for a missing row.
var ErrNotFound = errors.New("not found")
