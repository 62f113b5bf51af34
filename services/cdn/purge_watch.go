package cdn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// PurgeRecord is the value of a key in the purges bucket. Edges only look at
// the key (any update purges it); the value says who asked and when, for
// operators reading the bucket.
type PurgeRecord struct {
	RunID string    `json:"run_id"`
	At    time.Time `json:"at"`
}

// Encode marshals the record for the bucket.
func (p PurgeRecord) Encode() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode purge record: %w", err)
	}
	return b, nil
}

// watchRetry is the pause before re-establishing a lost purge watch.
const watchRetry = time.Second

// WatchPurges evicts every key written to the purges bucket from this
// replica's cache, until ctx is done. It first receives the latest value of
// every key (which evicts nothing from a fresh cache, but closes the gap
// between the edge starting to serve and the watch starting); after that each
// update evicts its key. If the watch is lost it flushes the whole cache,
// since purges may have been missed, and watches again.
func (e *Edge) WatchPurges(ctx context.Context, kv jetstream.KeyValue) error {
	for {
		err := e.watchOnce(ctx, kv)
		if ctx.Err() != nil {
			return nil
		}
		e.log.Warn("purge watch lost; flushing cache and watching again", zap.Error(err))
		e.Flush()
		t := time.NewTimer(watchRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (e *Edge) watchOnce(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return fmt.Errorf("watch purges: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case entry, ok := <-w.Updates():
			if !ok {
				return errors.New("watch purges: updates channel closed")
			}
			if entry == nil {
				// End of the initial values.
				continue
			}
			if e.Purge(entry.Key()) {
				e.log.Info("purged from edge cache", zap.String("key", entry.Key()),
					zap.Uint64("revision", entry.Revision()))
			}
		}
	}
}
