package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Run states kept in the runs KV. Workers only care whether their run is
// current; the coordinator's database holds the full story.
const (
	RunActive    = "active"
	RunDone      = "done"
	RunCancelled = "cancelled"
	RunStalled   = "stalled"
	RunFailed    = "failed"
)

// RunState is the value of key <vid> in the runs bucket.
type RunState struct {
	RunID   string `json:"run_id"`
	Attempt int32  `json:"attempt"`
	State   string `json:"state"`
}

// Current reports whether the state names runID (and attempt, unless it is 0)
// as work worth doing. A finished run is still current for the steps after
// ready (thumbnails, notify).
func (s RunState) Current(runID string, attempt int32) bool {
	if s.RunID != runID {
		return false
	}
	if attempt != 0 && s.Attempt != attempt {
		return false
	}
	return s.State == RunActive || s.State == RunDone
}

// Runs reads and writes the runs bucket.
type Runs struct {
	kv jetstream.KeyValue
}

// NewRuns wraps the runs bucket.
func NewRuns(kv jetstream.KeyValue) *Runs { return &Runs{kv: kv} }

// OpenRuns opens the runs bucket created by Topology.Ensure.
func OpenRuns(ctx context.Context, js jetstream.JetStream) (*Runs, error) {
	kv, err := KV(ctx, js, BucketRuns)
	if err != nil {
		return nil, err
	}
	return NewRuns(kv), nil
}

// Set writes the current run of a video. Only the coordinator calls it.
func (r *Runs) Set(ctx context.Context, videoID string, s RunState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode run state: %w", err)
	}
	if _, err := r.kv.Put(ctx, videoID, b); err != nil {
		return fmt.Errorf("put run state of %s: %w", videoID, err)
	}
	return nil
}

// ErrRevisionConflict is returned (wrapped) by CompareAndSet when the entry
// changed since it was read.
var ErrRevisionConflict = errors.New("runs: entry changed since it was read")

// GetRevision returns the run state of a video and its revision; ok is false
// (and the revision 0) when there is none.
func (r *Runs) GetRevision(ctx context.Context, videoID string) (s RunState, rev uint64, ok bool, err error) {
	e, err := r.kv.Get(ctx, videoID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return RunState{}, 0, false, nil
	}
	if err != nil {
		return RunState{}, 0, false, fmt.Errorf("get run state of %s: %w", videoID, err)
	}
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return RunState{}, 0, false, fmt.Errorf("decode run state of %s: %w", videoID, err)
	}
	return s, e.Revision(), true, nil
}

// CompareAndSet writes the run state of a video only if its entry is still at
// revision rev (0: only if there is no entry). A lost race is an error
// wrapping ErrRevisionConflict: the caller reads again and decides again.
func (r *Runs) CompareAndSet(ctx context.Context, videoID string, s RunState, rev uint64) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode run state: %w", err)
	}
	if rev == 0 {
		_, err = r.kv.Create(ctx, videoID, b)
	} else {
		_, err = r.kv.Update(ctx, videoID, b, rev)
	}
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyExists), errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		return fmt.Errorf("put run state of %s at revision %d: %w", videoID, rev, ErrRevisionConflict)
	default:
		return fmt.Errorf("put run state of %s at revision %d: %w", videoID, rev, err)
	}
}

// Get returns the run state of a video; ok is false when there is none.
func (r *Runs) Get(ctx context.Context, videoID string) (s RunState, ok bool, err error) {
	e, err := r.kv.Get(ctx, videoID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return RunState{}, false, nil
	}
	if err != nil {
		return RunState{}, false, fmt.Errorf("get run state of %s: %w", videoID, err)
	}
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return RunState{}, false, fmt.Errorf("decode run state of %s: %w", videoID, err)
	}
	return s, true, nil
}

// Guard returns a context that is cancelled, with cause ErrNotCurrent, as soon
// as the video's entry stops naming runID/attempt as current; the returned
// error wraps ErrNotCurrent when it already does not. The watch is pushed by
// the server, so a cancelled worker learns of it within milliseconds.
func (r *Runs) Guard(ctx context.Context, videoID, runID string, attempt int32) (context.Context, context.CancelFunc, error) {
	gctx, cancel := context.WithCancelCause(ctx)
	w, err := r.kv.Watch(gctx, videoID)
	if err != nil {
		cancel(nil)
		return nil, nil, fmt.Errorf("watch run state of %s: %w", videoID, err)
	}
	check := func(e jetstream.KeyValueEntry) bool {
		if e == nil {
			return true
		}
		if e.Operation() != jetstream.KeyValuePut {
			return false
		}
		var s RunState
		if json.Unmarshal(e.Value(), &s) != nil {
			return false
		}
		return s.Current(runID, attempt)
	}
	// The watcher first replays the latest value, then a nil marker.
	var seen bool
	for e := range w.Updates() {
		if e == nil {
			break
		}
		seen = true
		if !check(e) {
			_ = w.Stop()
			cancel(ErrNotCurrent)
			return nil, nil, fmt.Errorf("video %s run %s attempt %d: %w", videoID, runID, attempt, ErrNotCurrent)
		}
	}
	if !seen {
		_ = w.Stop()
		cancel(ErrNotCurrent)
		return nil, nil, fmt.Errorf("video %s has no current run: %w", videoID, ErrNotCurrent)
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-gctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil && !check(e) {
					cancel(ErrNotCurrent)
					return
				}
			}
		}
	}()
	return gctx, func() { cancel(nil) }, nil
}

// Cause translates a guarded context's cancellation into ErrNotCurrent when
// that is why it ended, so handlers can return it and be acked quietly.
func Cause(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), ErrNotCurrent) {
		return fmt.Errorf("%v: %w", err, ErrNotCurrent)
	}
	return err
}
