// Package devstack runs every Backbeat service in one process on an embedded
// nats-server, SQLite and a local blob folder: `backbeat dev`, and the
// end-to-end tests.
package devstack

import (
	"context"
	"errors"
)

// Main runs `backbeat dev` with its command-line args until ctx is done.
func Main(ctx context.Context, args []string) error {
	return errors.New("backbeat dev: not wired yet")
}
