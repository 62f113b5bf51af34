package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// The path of a video to ready: the coordinator turns each event into the
// next job, a worker turns each job into the next event. pathSteps are the
// workers on it; the thumbnail and the notification come after ready.
var pathSteps = []string{bus.StepAudio, bus.StepRender, bus.StepCDN}

// coordinatorHops are the coordinator's turns on the path: from the event it
// handles (or the create the harness sent) to the job it publishes.
var coordinatorHops = []struct{ name, from, to string }{
	{"create→audio job", "created", "job:" + bus.StepAudio},
	{"audio.done→render job", "ev:" + bus.KindAudioDone, "job:" + bus.StepRender},
	{"render.done→cdn job", "ev:" + bus.KindRenderDone, "job:" + bus.StepCDN},
	{"cdn.done→ready", "ev:" + bus.KindCDNDone, "job:" + bus.StepNotify},
}

// trace records when each message of a video's flow was seen on the bus
// (core NATS subscriptions to every job and event subject: a JetStream
// publish reaches core subscribers too) and what the workers reported, and
// tells the load generator when a video is ready: when the coordinator
// publishes its notify job, which it does after the run became ready in the
// database and the promotion copied the video and set its URL (effects.go,
// emit), so at that moment the app can see the video ready.
type trace struct {
	subj bus.Subjects
	mu   sync.Mutex
	vids map[string]*videoTrace
}

// videoTrace is what the trace knows of one video.
type videoTrace struct {
	// seen maps a mark ("created", "job:<step>", "ev:<kind>") to the first
	// time it was seen.
	seen map[string]time.Time
	// busy and pickup are the workers' reports per step: Work's duration and
	// the job's queue wait (bus.QueueWait).
	busy, pickup map[string]time.Duration
	// status is the status of the notify job (READY, ERROR).
	status backbeatv1.VideoStatus
	ready  chan struct{}
}

func newTrace(subj bus.Subjects) *trace {
	return &trace{subj: subj, vids: map[string]*videoTrace{}}
}

// subscribe follows every job and event subject on nc until the returned
// function is called.
func (t *trace) subscribe(nc *nats.Conn) (stop func(), err error) {
	var subs []*nats.Subscription
	stop = func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for _, subject := range []string{t.subj.Prefix + ".jobs.>", t.subj.Events()} {
		s, err := nc.Subscribe(subject, t.onMsg)
		if err != nil {
			stop()
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		_ = s.SetPendingLimits(-1, -1)
		subs = append(subs, s)
	}
	if err := nc.Flush(); err != nil {
		stop()
		return nil, fmt.Errorf("flush subscriptions: %w", err)
	}
	return stop, nil
}

// start registers a video about to be created; its channel closes when the
// video's notify job is seen.
func (t *trace) start(vid string) <-chan struct{} {
	v := &videoTrace{seen: map[string]time.Time{"created": time.Now()}, busy: map[string]time.Duration{},
		pickup: map[string]time.Duration{}, ready: make(chan struct{})}
	t.mu.Lock()
	t.vids[vid] = v
	t.mu.Unlock()
	return v.ready
}

// worked records a worker's report on one job.
func (t *trace) worked(vid, step string, pickup, busy time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v := t.vids[vid]; v != nil {
		v.busy[step] += busy
		if _, ok := v.pickup[step]; !ok {
			v.pickup[step] = pickup
		}
	}
}

func (t *trace) onMsg(m *nats.Msg) {
	now := time.Now()
	vid := t.subj.VideoIDOf(m.Subject)
	var mark string
	if step := t.subj.JobStep(m.Subject); step != "" {
		mark = "job:" + step
	} else if _, kind, ok := strings.Cut(strings.TrimPrefix(m.Subject, t.subj.Prefix+".events."), "."); ok {
		mark = "ev:" + kind
	}
	var status backbeatv1.VideoStatus
	if mark == "job:"+bus.StepNotify {
		var n backbeatv1.NotifyJob
		if err := bus.Decode(m.Data, m.Header.Get(bus.HeaderContentType), &n); err == nil {
			status = n.GetStatus()
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.vids[vid]
	if v == nil || mark == "" {
		return
	}
	if _, ok := v.seen[mark]; ok {
		return
	}
	v.seen[mark] = now
	if mark == "job:"+bus.StepNotify {
		v.status = status
		close(v.ready)
	}
}

// figures are the measures of one video that became ready.
type figures struct {
	// total is create → ready; busy the sum of the path's workers' busy
	// times; overhead total − busy.
	total, busy, overhead time.Duration
	// pickup is each step's queue wait.
	pickup map[string]time.Duration
	// hops are the coordinator's turns (coordinatorHops), and hand-offs
	// each worker's job → done event minus its busy time.
	hops, handoffs map[string]time.Duration
}

// figuresOf computes the figures of vid; ok is false when it did not become
// ready or a mark is missing.
func (t *trace) figuresOf(vid string) (f figures, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.vids[vid]
	if v == nil || v.status != backbeatv1.VideoStatus_VIDEO_STATUS_READY {
		return f, false
	}
	f = figures{pickup: map[string]time.Duration{}, hops: map[string]time.Duration{}, handoffs: map[string]time.Duration{}}
	f.total = v.seen["job:"+bus.StepNotify].Sub(v.seen["created"])
	for _, s := range pathSteps {
		f.busy += v.busy[s]
		job, ok1 := v.seen["job:"+s]
		done, ok2 := v.seen["ev:"+s+".done"]
		if !ok1 || !ok2 {
			return f, false
		}
		f.handoffs[s] = done.Sub(job) - v.busy[s]
	}
	for s, p := range v.pickup {
		f.pickup[s] = p
	}
	for _, h := range coordinatorHops {
		from, ok1 := v.seen[h.from]
		to, ok2 := v.seen[h.to]
		if !ok1 || !ok2 {
			return f, false
		}
		f.hops[h.name] = to.Sub(from)
	}
	f.overhead = f.total - f.busy
	return f, true
}

// dump writes every video's marks (ms after its create), busy and pickup
// times as JSON lines, for a closer look at a run kept with -keep.
func (t *trace) dump(path string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("trace dump: %w", err)
	}
	enc := json.NewEncoder(f)
	for vid, v := range t.vids {
		line := map[string]any{"video_id": vid}
		for k, at := range v.seen {
			line[k] = ms(at.Sub(v.seen["created"]))
		}
		for k, d := range v.busy {
			line["busy:"+k] = ms(d)
		}
		for k, d := range v.pickup {
			line["pickup:"+k] = ms(d)
		}
		if err := enc.Encode(line); err != nil {
			f.Close()
			return fmt.Errorf("trace dump: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("trace dump: %w", err)
	}
	return nil
}
