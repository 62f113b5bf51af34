package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// level is one measured point: inflight videos kept in flight (a closed
// loop: a new one is created as one becomes ready) until videos are ready.
type level struct{ inflight, videos int }

// levelResult is what one run of a level measured.
type levelResult struct {
	level level
	figs  []figures
	// notReady counts the videos that did not become ready in time (or
	// failed).
	notReady int
	// window is the first create → the last ready.
	window time.Duration
	// events is the number of EVENTS messages the coordinator handled in
	// the window, eventsAll until everything settled (thumbnail.done and
	// notify.done of the last videos included).
	events, eventsAll uint64
	// statements is the number of SQL statements the coordinator ran in
	// the window (dev shapes only: counted by gorm callbacks).
	statements int64
	// cpu is the CPU time each part of stack.cpu used in the window.
	cpu map[string]time.Duration
}

// bundle is the users' bundle: pools gpu then cpu, priority normal.
const bundle = "pro"

// seedUsers creates n users with credits for any run (CreateInBatches: one
// statement per 500 users).
func seedUsers(ctx context.Context, st *store.Store, n int) ([]string, error) {
	users := make([]store.User, n)
	ids := make([]string, n)
	for i := range users {
		ids[i] = fmt.Sprintf("pb-user-%04d", i)
		users[i] = store.User{ID: ids[i], Balance: 1 << 40, Bundle: bundle}
	}
	if err := st.DB.WithContext(ctx).CreateInBatches(users, 500).Error; err != nil {
		return nil, fmt.Errorf("seed %d users: %w", n, err)
	}
	return ids, nil
}

// handled is how many EVENTS messages the coordinator's durable has had
// acknowledged (delivered minus pending acks: redeliveries count, each is
// handled again), and how many wait.
func handled(ctx context.Context, js jetstream.JetStream) (done, waiting uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, bus.StreamEvents, bus.ConsumerCoordinator)
	if err != nil {
		return 0, 0, fmt.Errorf("coordinator consumer: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("coordinator consumer info: %w", err)
	}
	return info.Delivered.Consumer - uint64(info.NumAckPending), info.NumPending + uint64(info.NumAckPending), nil
}

// load creates the videos of one level as the API does (a VideoCreate on
// Subjects.Event(vid, KindVideoCreate), message id create:<vid>:<request
// id>), each for one of users, keeping lv.inflight in flight, and waits for
// each to be ready (at most timeout).
func load(ctx context.Context, st *stack, tr *trace, users []string, lv level,
	tag string, region float64, timeout time.Duration) (*levelResult, error) {
	pub, js := st.pub, st.js
	res := &levelResult{level: lv}
	before, _, err := handled(ctx, js)
	if err != nil {
		return nil, err
	}
	sqlBefore := st.statements.Load()
	cpuBefore := map[string]time.Duration{}
	for k, f := range st.cpu {
		cpuBefore[k] = f()
	}
	var (
		mu       sync.Mutex
		vids     []string
		firstErr error
		wg       sync.WaitGroup
	)
	slots := make(chan struct{}, lv.inflight)
	start := time.Now()
	for i := 0; i < lv.videos && ctx.Err() == nil; i++ {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		vid := fmt.Sprintf("%s-%05d", tag, i)
		user := users[i%len(users)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ready := tr.start(vid)
			m := &backbeatv1.VideoCreate{VideoId: vid, UserId: user, AudioKey: keys.UploadPrefix(vid) + "audio.wav",
				EndSeconds: region, Template: "spectrum", Format: backbeatv1.Format_FORMAT_SQUARE,
				Title: "pipebench", Artist: "stub", RequestId: "req-" + vid}
			err := pub.Publish(ctx, pub.Subjects().Event(vid, bus.KindVideoCreate), m, "create:"+vid+":"+m.RequestId)
			if err == nil {
				select {
				case <-ready:
				case <-time.After(timeout):
					err = fmt.Errorf("video %s not ready within %s", vid, timeout)
				case <-ctx.Done():
					err = ctx.Err()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			vids = append(vids, vid)
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("video %s: %w", vid, err)
			}
		}()
	}
	wg.Wait()
	end := time.Now()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	after, _, err := handled(ctx, js)
	if err != nil {
		return nil, err
	}
	res.window, res.events = end.Sub(start), after-before
	res.statements = st.statements.Load() - sqlBefore
	res.cpu = map[string]time.Duration{}
	for k, f := range st.cpu {
		res.cpu[k] = f() - cpuBefore[k]
	}
	for _, vid := range vids {
		if f, ok := tr.figuresOf(vid); ok {
			res.figs = append(res.figs, f)
		} else {
			res.notReady++
		}
	}
	// The thumbnails and notifications of the last videos are still on their
	// way: wait for the coordinator's durable to drain to count them.
	last := ^uint64(0)
	for deadline := time.Now().Add(30 * time.Second); ; {
		all, waiting, err := handled(ctx, js)
		if err != nil {
			return nil, err
		}
		if (waiting == 0 && all == last) || time.Now().After(deadline) {
			res.eventsAll = all - before
			break
		}
		last = all
		time.Sleep(250 * time.Millisecond)
	}
	if res.notReady > 0 && firstErr == nil {
		firstErr = errors.New("a video ended without its notify job saying ready")
	}
	if firstErr != nil {
		return res, fmt.Errorf("%d of %d videos not ready: %w", res.notReady, lv.videos, firstErr)
	}
	return res, nil
}
