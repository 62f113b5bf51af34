package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
	// js asks the stream leader when a watch's replica says a run is not
	// current (see Guard).
	js jetstream.JetStream
}

// NewRuns wraps the runs bucket of js.
func NewRuns(js jetstream.JetStream, kv jetstream.KeyValue) *Runs { return &Runs{kv: kv, js: js} }

// OpenRuns opens the runs bucket created by `backbeat provision`.
func OpenRuns(ctx context.Context, js jetstream.JetStream) (*Runs, error) {
	kv, err := KV(ctx, js, BucketRuns)
	if err != nil {
		return nil, err
	}
	return NewRuns(js, kv), nil
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
//
// A watch is an R1 consumer that the server may place on any replica of the
// bucket, including one that restarted and has not caught up: its replay can
// be empty or older than what the coordinator wrote before it published the
// job. So "not current" is never taken from the watch alone: Guard confirms
// it with the stream leader (leaderGet), and when the leader cannot be asked
// it returns an error that is not ErrNotCurrent, so the job is retried rather
// than dropped. Watch entries at or below the revision the decision was made
// on are ignored: a lagging replica delivers the key's history as it catches
// up, and an old revision must not cancel the current run.
func (r *Runs) Guard(ctx context.Context, videoID, runID string, attempt int32) (context.Context, context.CancelFunc, error) {
	gctx, cancel := context.WithCancelCause(ctx)
	w, err := r.kv.Watch(gctx, videoID)
	if err != nil {
		cancel(nil)
		return nil, nil, fmt.Errorf("watch run state of %s: %w", videoID, err)
	}
	check := func(e jetstream.KeyValueEntry) bool {
		if e.Operation() != jetstream.KeyValuePut {
			return false
		}
		var s RunState
		if json.Unmarshal(e.Value(), &s) != nil {
			return false
		}
		return s.Current(runID, attempt)
	}
	fail := func(err error) (context.Context, context.CancelFunc, error) {
		_ = w.Stop()
		cancel(err)
		return nil, nil, err
	}
	// The watcher first replays the latest value, then a nil marker.
	current, base := false, uint64(0)
	for e := range w.Updates() {
		if e == nil {
			break
		}
		current, base = check(e), e.Revision()
	}
	if !current {
		s, rev, ok, err := r.leaderGet(ctx, videoID)
		if err != nil {
			return fail(fmt.Errorf("video %s: the watch says run %s is not current, and the stream leader could not confirm it: %w",
				videoID, runID, err))
		}
		if !ok {
			return fail(fmt.Errorf("video %s has no current run: %w", videoID, ErrNotCurrent))
		}
		if !s.Current(runID, attempt) {
			return fail(fmt.Errorf("video %s run %s attempt %d: %w", videoID, runID, attempt, ErrNotCurrent))
		}
		base = rev // the watch's replica lags; it catches up behind this revision
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
				if e != nil && e.Revision() > base && !check(e) {
					cancel(ErrNotCurrent)
					return
				}
			}
		}
	}()
	return gctx, func() { cancel(nil) }, nil
}

// leaderGetTimeout bounds the leader read: during an election no one answers.
const leaderGetTimeout = 5 * time.Second

// jsNoMessageFound is JetStream's error code for "no message found".
const jsNoMessageFound = 10037

// leaderGet reads a video's entry from the bucket's stream leader: a
// STREAM.MSG.GET last by subject, which only the leader answers, unlike the
// direct get that kv.Get uses and any replica may serve. ok is false when the
// key has no value (never written, deleted or purged).
func (r *Runs) leaderGet(ctx context.Context, videoID string) (s RunState, rev uint64, ok bool, err error) {
	bucket := r.kv.Bucket()
	req, err := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + videoID})
	if err != nil {
		return RunState{}, 0, false, fmt.Errorf("encode message request: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, leaderGetTimeout)
	defer cancel()
	msg, err := r.js.Conn().RequestWithContext(rctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return RunState{}, 0, false, fmt.Errorf("get %s from the leader of KV_%s: %w", videoID, bucket, err)
	}
	var resp struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return RunState{}, 0, false, fmt.Errorf("decode the leader's answer for %s: %w", videoID, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == jsNoMessageFound:
		return RunState{}, 0, false, nil
	case resp.Error != nil:
		return RunState{}, 0, false, fmt.Errorf("get %s from the leader of KV_%s: %s (%d)", videoID, bucket,
			resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return RunState{}, 0, false, fmt.Errorf("get %s from the leader of KV_%s: empty answer", videoID, bucket)
	}
	// A delete or purge is a message with a KV-Operation header and no value.
	if bytes.Contains(resp.Message.Hdrs, []byte("KV-Operation")) {
		return RunState{}, resp.Message.Seq, false, nil
	}
	if err := json.Unmarshal(resp.Message.Data, &s); err != nil {
		return RunState{}, 0, false, fmt.Errorf("decode run state of %s: %w", videoID, err)
	}
	return s, resp.Message.Seq, true, nil
}

// Cause translates a guarded context's cancellation into ErrNotCurrent when
// that is why it ended, so handlers can return it and be acked quietly.
func Cause(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), ErrNotCurrent) {
		return fmt.Errorf("%v: %w", err, ErrNotCurrent)
	}
	return err
}
