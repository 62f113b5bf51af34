package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// The simulation's parts: a bus that stores what the coordinator publishes
// (EVENTS, JOBS, PROGRESS), a runs KV with revisions, and object storage in
// memory. Every call the coordinator makes into them is a point where the
// simulation may suspend the handler (cooperative scheduling), fail the call
// (a crash between commit and publish, an outage) or let it through.

// errSimCrash is what a suspended handler sees when the simulated coordinator
// process dies under it.
var errSimCrash = errors.New("sim: coordinator crashed")

// errSimOutage is what the simulated infrastructure answers while it is down.
var errSimOutage = errors.New("sim: infrastructure outage")

// simMsg is one message on the simulated bus.
type simMsg struct {
	seq      uint64
	subject  string
	kind     string // event kind, or job step
	vid      string
	msg      proto.Message
	id       string
	replayOf uint64

	deliveries int
	notBefore  time.Time
	inFlight   bool
	deliverAt  time.Time
}

// simTask is a coordinator handler running on its own goroutine, one at a
// time: it runs until it returns or reaches an interception point.
type simTask struct {
	name    string
	ev      *simMsg // nil for the watchdog or a sweep
	resume  chan bool
	yielded chan struct{}
	done    chan error
	// crashed is set when the task is resumed only to die.
	crashed bool
}

type taskKey struct{}

// point is an interception point: the simulation may suspend the running
// handler there, or fail the call.
func (w *sim) point(ctx context.Context, what string) error {
	t, _ := ctx.Value(taskKey{}).(*simTask)
	if t == nil {
		return nil
	}
	// After a crash every call fails at once: a handler that goes on after
	// an error (the watchdog checks the next video) must not suspend again,
	// since nothing would resume it.
	if t.crashed {
		return errSimCrash
	}
	if w.rng.Float64() < w.pYield {
		w.logf("  %s suspended at %s", t.name, what)
		t.yielded <- struct{}{}
		if ok := <-t.resume; !ok {
			t.crashed = true
			return errSimCrash
		}
		w.logf("  %s resumed at %s", t.name, what)
	}
	if w.pubDown > 0 {
		return fmt.Errorf("%s: %w", what, errSimOutage)
	}
	return nil
}

// simBus is EVENTS + JOBS + PROGRESS with JetStream's duplicate window (the
// whole simulation: it is shorter than 15 minutes of simulated time in most
// seeds, and longer windows only drop more).
type simBus struct {
	w      *sim
	subj   bus.Subjects
	seq    uint64
	seen   map[string]bool
	events []*simMsg // the coordinator's consumer
	jobs   []*simMsg // the work queue
	all    []*simMsg // EVENTS history, for replay
}

func (b *simBus) Subjects() bus.Subjects { return b.subj }

func (b *simBus) Publish(ctx context.Context, subject string, m proto.Message, msgID string) error {
	if err := b.w.point(ctx, "publish "+b.short(subject)); err != nil {
		return err
	}
	b.add(subject, m, msgID, 0)
	return nil
}

// add stores a message; a repeated non-empty id is dropped (duplicate window).
func (b *simBus) add(subject string, m proto.Message, msgID string, replayOf uint64) *simMsg {
	if msgID != "" {
		if b.seen[msgID] {
			return nil
		}
		b.seen[msgID] = true
	}
	b.seq++
	sm := &simMsg{seq: b.seq, subject: subject, msg: proto.Clone(m), id: msgID, replayOf: replayOf,
		vid: b.subj.VideoIDOf(subject), notBefore: b.w.now}
	p := b.subj.Prefix + "."
	switch {
	case strings.HasPrefix(subject, p+"events."):
		// <prefix>.events.<vid>.<kind>: video ids have no dots, kinds do.
		if _, kind, ok := strings.Cut(strings.TrimPrefix(subject, p+"events."), "."); ok {
			sm.kind = kind
		}
		b.all = append(b.all, sm)
		if sm.kind != bus.KindVideoStatus {
			b.events = append(b.events, sm)
		}
	case strings.HasPrefix(subject, p+"jobs."):
		sm.kind = b.subj.JobStep(subject)
		b.jobs = append(b.jobs, sm)
	default:
		panic("sim: publish to unexpected subject " + subject)
	}
	b.w.logf("  published %s (%s)", b.short(subject), msgID)
	return sm
}

func (b *simBus) short(subject string) string { return strings.TrimPrefix(subject, b.subj.Prefix+".") }

func (b *simBus) removeEvent(m *simMsg) { b.events = without(b.events, m) }
func (b *simBus) removeJob(m *simMsg)   { b.jobs = without(b.jobs, m) }

func without(list []*simMsg, m *simMsg) []*simMsg {
	for i, x := range list {
		if x == m {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

// simKV is the runs bucket: a value and a revision per video.
type simKV struct {
	w   *sim
	m   map[string]bus.RunState
	rev map[string]uint64
	n   uint64
}

func (k *simKV) GetRevision(ctx context.Context, vid string) (bus.RunState, uint64, bool, error) {
	if err := k.w.point(ctx, "kv get "+vid); err != nil {
		return bus.RunState{}, 0, false, err
	}
	s, ok := k.m[vid]
	return s, k.rev[vid], ok, nil
}

func (k *simKV) CompareAndSet(ctx context.Context, vid string, s bus.RunState, rev uint64) error {
	if err := k.w.point(ctx, "kv set "+vid); err != nil {
		return err
	}
	if k.rev[vid] != rev {
		k.w.logf("  kv %s: revision %d is not %d, refused", vid, rev, k.rev[vid])
		return fmt.Errorf("kv %s: %w", vid, bus.ErrRevisionConflict)
	}
	k.n++
	k.m[vid], k.rev[vid] = s, k.n
	k.w.logf("  kv %s = %s/%d %s", vid, s.RunID, s.Attempt, s.State)
	return nil
}

// simProgress is the PROGRESS stream: the last message per video.
type simProgress struct {
	last map[string]*backbeatv1.RenderProgress
	at   map[string]time.Time
}

func (p *simProgress) Last(_ context.Context, vid string) (*backbeatv1.RenderProgress, time.Time, error) {
	return p.last[vid], p.at[vid], nil
}

// memBlob is object storage in memory; each object's bytes are the id of the
// run that wrote it, so the edge invariant can name the writer.
type memBlob struct {
	w       *sim
	objs    map[string][]byte
	version uint64 // bumped by every change of objs (and of w.writers)
}

var _ blob.Store = (*memBlob)(nil)

func (b *memBlob) Put(ctx context.Context, key string, r io.Reader, _ int64, ct string) (blob.Info, error) {
	if err := b.w.point(ctx, "blob put "+key); err != nil {
		return blob.Info{}, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return blob.Info{}, err
	}
	b.objs[key] = data
	b.version++
	return blob.Info{Key: key, Size: int64(len(data)), ContentType: ct}, nil
}

func (b *memBlob) PutFile(ctx context.Context, key, path, ct string) (blob.Info, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return blob.Info{}, err
	}
	return b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), ct)
}

func (b *memBlob) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	if err := b.w.point(ctx, "blob get "+key); err != nil {
		return nil, blob.Info{}, err
	}
	data, ok := b.objs[key]
	if !ok {
		return nil, blob.Info{}, fmt.Errorf("%s: %w", key, blob.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), blob.Info{Key: key, Size: int64(len(data))}, nil
}

func (b *memBlob) GetFile(ctx context.Context, key, path string) (blob.Info, error) {
	rc, info, err := b.Get(ctx, key)
	if err != nil {
		return info, err
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	return info, os.WriteFile(path, data, 0o600)
}

func (b *memBlob) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := b.w.point(ctx, "blob stat "+key); err != nil {
		return blob.Info{}, err
	}
	data, ok := b.objs[key]
	if !ok {
		return blob.Info{}, fmt.Errorf("%s: %w", key, blob.ErrNotFound)
	}
	return blob.Info{Key: key, Size: int64(len(data))}, nil
}

func (b *memBlob) Delete(ctx context.Context, key string) error {
	if err := b.w.point(ctx, "blob delete "+key); err != nil {
		return err
	}
	delete(b.objs, key)
	b.version++
	b.w.logf("  blob delete %s", key)
	return nil
}

func (b *memBlob) Copy(ctx context.Context, src, dst string) (blob.Info, error) {
	if err := b.w.point(ctx, "blob copy "+dst); err != nil {
		return blob.Info{}, err
	}
	data, ok := b.objs[src]
	if !ok {
		return blob.Info{}, fmt.Errorf("%s: %w", src, blob.ErrNotFound)
	}
	b.objs[dst] = data
	b.version++
	if b.w.writers[dst] == nil {
		b.w.writers[dst] = map[string]bool{}
	}
	for v := range b.w.writers[src] {
		b.w.writers[dst][v] = true
	}
	b.w.logf("  blob copy %s -> %s", src, dst)
	return blob.Info{Key: dst, Size: int64(len(data))}, nil
}

func (b *memBlob) Ping(context.Context) error { return nil }

// keys returns the stored keys in order, for deterministic iteration.
func (b *memBlob) keys() []string {
	out := make([]string, 0, len(b.objs))
	for k := range b.objs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
