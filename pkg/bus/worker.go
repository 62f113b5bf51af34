package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/ids"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// Handler is the one function a worker writes. Return nil when the job is
// done, Permanent(err) when retrying cannot help, an error wrapping
// ErrNotCurrent to drop a job of a stale run, and any other error to retry.
type Handler[T proto.Message] func(ctx context.Context, m T) error

// Worker turns a Handler into a JetStream consumer: it decodes, heartbeats,
// and maps the handler's result onto Ack, NakWithDelay or TermWithReason. The
// retry policy lives here and nowhere else.
type Worker[T proto.Message] struct {
	// Step names the worker in logs, metrics and StepFailed events.
	Step string
	// New returns an empty message to decode into.
	New func() T
	// Handle does the work.
	Handle Handler[T]
	// Pub publishes StepFailed when a job will not succeed.
	Pub *Publisher
	// Log is the worker's logger.
	Log *zap.Logger
	// Policy is the consumer's delivery policy (Topology.Policy(step)).
	Policy Policy
	// Escalate reports retryable errors to the coordinator at once instead of
	// redelivering: renders move to the next pool rather than retry in place.
	Escalate bool
	// Name identifies this replica in StepFailed (hostname, pod).
	Name string
	// Metrics, when set, counts outcomes and durations.
	Metrics *Metrics
	// OnStuck, when set, hears of a message that keeps failing with a
	// retryable error (see StuckFunc).
	OnStuck StuckFunc
	// StarveEvery makes every Nth fetch of a Run over several consumers
	// start from the lowest priority (default DefaultStarveEvery); see
	// FetchOrder.
	StarveEvery int
	// PollInterval is the longest a Run over several consumers waits, when
	// none had a message, before trying them again. The doorbell (Subjects.Bell,
	// rung by JOBS once a job is stored) wakes it as soon as one of theirs
	// arrives, so this only bounds how late it finds a job that comes back
	// without a publish: a nak, an expired ack wait. Default DefaultRecheck;
	// DefaultPollInterval when the doorbell cannot be had (no Pub, or the
	// server refuses the subscription).
	PollInterval time.Duration
}

// StuckFunc is told that the message on subject failed again with err on its
// delivered-th delivery, which is Policy.AlertAfter or later: an outage that
// outlasts the backoffs, for an alert. It is called on the AlertAfter-th
// delivery and then once every AlertEvery deliveries of the same message,
// after the message was nakked, on the runner's goroutine (a slow hook holds
// a concurrency slot); a panic in it is recovered and logged. ctx carries
// the message's logger (Logger) and trace.
type StuckFunc func(ctx context.Context, subject string, delivered uint64, err error)

// Outcomes of one delivery, as logged and counted.
const (
	OutcomeAck     = "ack"
	OutcomeStale   = "stale"
	OutcomeRetry   = "retry"
	OutcomeTerm    = "term"
	OutcomeDecode  = "undecodable"
	OutcomeAborted = "shutdown"
	// OutcomePanic counts decoders and handlers that panicked: the panic was
	// recovered, reported as a permanent step.failed and the message
	// terminated, so one bad message cannot take the process down.
	OutcomePanic = "panic"
)

// Run fetches and processes messages from cons until ctx is done, at most
// concurrency at a time, then waits for the handlers in flight. It fetches
// only when a slot is free, so no message waits in a local buffer while its
// ack timer runs.
//
// cons are in priority order. With one consumer Run long-polls it: the
// server hands over a job the moment it is stored. JetStream has no pull
// that waits on several consumers at once, and a long poll left pending on
// a lower priority would take a job while this worker is busy with a higher
// one. So with several, Run tries them in FetchOrder without waiting and,
// when all are empty, waits for their doorbell (Subjects.Bell) or
// PollInterval, whichever comes first: an idle worker sends no request
// until a job arrives.
func (w *Worker[T]) Run(ctx context.Context, concurrency int, cons ...jetstream.Consumer) error {
	if len(cons) == 0 {
		return fmt.Errorf("worker %s: no consumer to run", w.Step)
	}
	if len(cons) == 1 {
		return runLoop(ctx, concurrency, longPoll(cons[0], w.log(), w.Step), nil, w.Process)
	}
	b := w.doorbell(cons)
	defer b.stop()
	poll := w.PollInterval
	if poll <= 0 {
		poll = DefaultRecheck
		if b == nil {
			poll = DefaultPollInterval
		}
	}
	return runLoop(ctx, concurrency, priorityPoll(cons, w.log(), w.Step, w.StarveEvery, poll, b), b.wakeups(), w.Process)
}

// Defaults of Worker.StarveEvery and Worker.PollInterval (DefaultRecheck
// with a doorbell, DefaultPollInterval without).
const (
	DefaultStarveEvery  = 4
	DefaultRecheck      = 5 * time.Second
	DefaultPollInterval = 250 * time.Millisecond
)

// runLoop is the fetch loop shared by Worker and Router: next returns one
// message, or nil and how long to pause (after a failure, or when every
// consumer was empty) once the slot is given back. A pause ends early when
// wake (nil: never) has a wake-up.
func runLoop(ctx context.Context, concurrency int, next func(context.Context) (jetstream.Msg, time.Duration), wake <-chan struct{}, process func(context.Context, jetstream.Msg)) error {
	if concurrency < 1 {
		concurrency = 1
	}
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case slots <- struct{}{}:
		}
		msg, pause := next(ctx)
		if msg == nil {
			<-slots
			if pause > 0 {
				waitWake(ctx, pause, wake)
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			process(ctx, msg)
		}()
	}
}

// longPoll fetches from one consumer, waiting up to 2 s for a message; it
// asks for a second's pause after a failed fetch.
func longPoll(cons jetstream.Consumer, log *zap.Logger, step string) func(context.Context) (jetstream.Msg, time.Duration) {
	return func(ctx context.Context) (jetstream.Msg, time.Duration) {
		msg, err := FetchOne(ctx, cons, 2*time.Second)
		if err != nil && ctx.Err() == nil {
			log.Warn("fetch failed", zap.String("step", step), zap.Error(err))
			return nil, time.Second
		}
		return msg, 0
	}
}

// priorityPoll takes one available message from cons (in priority order),
// trying them in FetchOrder without waiting, and asks for a pause of poll
// when all are empty (a doorbell ends it early). The n-th call uses
// FetchOrder(n, starveEvery, len(cons)).
//
// A bell (b, nil without one) rings once its job is stored, but the server
// tells the job's consumer just after, so a fetch woken by it can find the
// consumer still empty. When a round finds nothing though a bell rang, it
// therefore waits up to bellGrace on the first consumer whose bell rang (or
// finds its job was taken by another worker).
func priorityPoll(cons []jetstream.Consumer, log *zap.Logger, step string, starveEvery int, poll time.Duration, b *bell) func(context.Context) (jetstream.Msg, time.Duration) {
	if starveEvery <= 0 {
		starveEvery = DefaultStarveEvery
	}
	fetches := 0 // only the loop's goroutine calls next
	return func(ctx context.Context) (jetstream.Msg, time.Duration) {
		rang := b.take()
		order := FetchOrder(fetches, starveEvery, len(cons))
		fetches++
		for _, i := range order {
			if ctx.Err() != nil {
				return nil, 0
			}
			batch, err := cons[i].FetchNoWait(1)
			if err != nil {
				log.Warn("fetch failed", zap.String("step", step), zap.String("consumer", cons[i].CachedInfo().Name), zap.Error(err))
				continue
			}
			for m := range batch.Messages() {
				return m, 0
			}
		}
		for _, i := range order {
			if i >= len(rang) || !rang[i] {
				continue
			}
			m, err := FetchOne(ctx, cons[i], bellGrace)
			if err != nil {
				log.Warn("fetch failed", zap.String("step", step), zap.String("consumer", cons[i].CachedInfo().Name), zap.Error(err))
			}
			if m != nil {
				return m, 0
			}
			break
		}
		return nil, poll
	}
}

// FetchOrder is the order in which count consumers, given in priority order,
// are tried on the n-th fetch (from 0): highest first; but every
// starveEvery-th fetch starts from the lowest, so low jobs progress even
// while high ones keep arriving. For three: 0, 1, 2, and 2, 0, 1 on every
// starveEvery-th fetch.
func FetchOrder(n, starveEvery, count int) []int {
	order := make([]int, 0, count)
	if count > 1 && starveEvery > 0 && (n+1)%starveEvery == 0 {
		order = append(order, count-1)
		count--
	}
	for i := 0; i < count; i++ {
		order = append(order, i)
	}
	return order
}

// FetchOne pulls at most one message, waiting up to wait or until ctx is
// done; it returns nil, nil when none arrived.
func FetchOne(ctx context.Context, cons jetstream.Consumer, wait time.Duration) (jetstream.Msg, error) {
	if ctx.Err() != nil {
		return nil, nil
	}
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	batch, err := cons.Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, fmt.Errorf("fetch: %w", err)
	}
	for m := range batch.Messages() {
		return m, nil
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) &&
		!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	return nil, nil
}

// waitWake waits d, or until ctx is done or wake (nil: never) has a wake-up.
func waitWake(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

func (w *Worker[T]) log() *zap.Logger {
	if w.Log == nil {
		return zap.NewNop()
	}
	return w.Log
}

// Process handles one delivered message to the end: it is always acked,
// nakked or terminated before Process returns.
func (w *Worker[T]) Process(ctx context.Context, msg jetstream.Msg) {
	w.processor().process(ctx, msg, func(data []byte, ct string) (proto.Message, error) {
		m := w.New()
		return m, Decode(data, ct, m)
	}, func(ctx context.Context, m proto.Message) error {
		return w.Handle(ctx, m.(T))
	})
}

func (w *Worker[T]) processor() *processor {
	return &processor{step: w.Step, pub: w.Pub, log: w.log(), policy: w.Policy, escalate: w.Escalate, name: w.Name, metrics: w.Metrics, onStuck: w.OnStuck}
}

// processor holds the ack policy shared by Worker and Router.
type processor struct {
	step     string
	pub      *Publisher
	log      *zap.Logger
	policy   Policy
	escalate bool
	name     string
	metrics  *Metrics
	onStuck  StuckFunc
}

func (w *processor) process(ctx context.Context, msg jetstream.Msg,
	decode func(data []byte, contentType string) (proto.Message, error),
	handle func(ctx context.Context, m proto.Message) error) {
	start := time.Now()
	var delivered uint64 = 1
	var wait time.Duration
	if meta, err := msg.Metadata(); err == nil {
		delivered = meta.NumDelivered
		if wait = start.Sub(meta.Timestamp); wait < 0 {
			wait = 0 // clocks of server and worker disagree
		}
		if w.metrics != nil {
			w.metrics.waited(w.step, meta.Consumer, wait)
		}
	}
	log := w.log.With(zap.String("step", w.step), zap.String("subject", msg.Subject()), zap.Uint64("delivery", delivered))
	defer w.recoverRunner(msg, log, start)

	var m proto.Message
	err := protect(func() (derr error) {
		m, derr = decode(msg.Data(), msg.Headers().Get(HeaderContentType))
		return derr
	})
	var perr *panicError
	if errors.As(err, &perr) {
		w.fail(ctx, msg, log.With(zap.String("stack", perr.stack)), nil, delivered, err, true)
		w.observe(OutcomePanic, start)
		return
	}
	if err != nil {
		w.fail(ctx, msg, log, nil, delivered, fmt.Errorf("undecodable %s message: %w", w.step, err), true)
		w.observe(OutcomeDecode, start)
		return
	}
	// Only ids the message has, so a handler that learns the run id (a create)
	// can add it without a duplicate key.
	if j, ok := m.(Job); ok {
		if v := j.GetVideoId(); v != "" {
			log = log.With(zap.String("video_id", v))
		}
		if r := j.GetRunId(); r != "" {
			log = log.With(zap.String("run_id", r))
		}
	}

	hctx := WithTraceparent(ctx, msg.Headers().Get(HeaderTraceparent))
	hctx = WithLogger(hctx, log)
	hctx = withDelivery(hctx, msg)
	hctx = context.WithValue(hctx, queueWaitKey{}, wait)
	stop := w.heartbeat(hctx, msg, log)
	err = protect(func() error { return handle(hctx, m) })
	stop()
	// A step.failed this handler's error leads to carries the worker's report.
	ctx = WithReport(ctx, Report{Worker: w.name, QueueWait: wait, RunTime: time.Since(start)})

	switch {
	case errors.As(err, &perr):
		// Before every other case: a panic is a bug, even during shutdown or
		// when its value wraps ErrNotCurrent, and the code would panic again.
		w.fail(ctx, msg, log.With(zap.String("stack", perr.stack)), m, delivered, err, true)
		w.observe(OutcomePanic, start)
	case err == nil:
		if aerr := msg.Ack(); aerr != nil {
			log.Warn("ack failed", zap.Error(aerr))
		}
		log.Info("message handled", zap.Duration("took", time.Since(start)))
		w.observe(OutcomeAck, start)
	case errors.Is(err, ErrNotCurrent):
		_ = msg.Ack()
		log.Info("message dropped: run no longer current", zap.Error(err))
		w.observe(OutcomeStale, start)
	case ctx.Err() != nil:
		// Shutting down: hand the job to another replica right away.
		_ = msg.NakWithDelay(0)
		log.Info("message released on shutdown", zap.Error(err))
		w.observe(OutcomeAborted, start)
	case IsPermanent(err):
		w.fail(ctx, msg, log, m, delivered, err, true)
		w.observe(OutcomeTerm, start)
	case w.escalate || w.policy.exhausted(delivered):
		w.fail(ctx, msg, log, m, delivered, err, false)
		w.observe(OutcomeTerm, start)
	default:
		d := w.policy.Delay(delivered)
		_ = msg.NakWithDelay(d)
		if w.policy.stuck(delivered) {
			log.Error("handler keeps failing, will retry", zap.Error(err), zap.Duration("retry_in", d))
			if w.onStuck != nil && w.policy.alertDue(delivered) {
				w.stuck(hctx, msg, delivered, err, log)
			}
		} else {
			log.Warn("handler failed, will retry", zap.Error(err), zap.Duration("retry_in", d))
		}
		w.observe(OutcomeRetry, start)
	}
}

// stuck calls onStuck; a panic in the hook costs an alert, not the process.
func (w *processor) stuck(ctx context.Context, msg jetstream.Msg, delivered uint64, cause error, log *zap.Logger) {
	err := protect(func() error {
		w.onStuck(ctx, msg.Subject(), delivered, cause)
		return nil
	})
	var perr *panicError
	if errors.As(err, &perr) {
		log.Error("OnStuck panicked", zap.Error(err), zap.String("stack", perr.stack))
	}
}

// fail terminates the message and tells the coordinator. The StepFailed is
// published before the Term, so a crash in between redelivers rather than
// loses the failure.
//
// A failure to handle a StepFailed of this very step (the coordinator's own
// report) is terminated without a new report: the new one would reach the
// same handler and fail the same way, one event after another, for ever.
func (w *processor) fail(ctx context.Context, msg jetstream.Msg, log *zap.Logger, m proto.Message, delivered uint64, cause error, permanent bool) {
	if own, ok := m.(*backbeatv1.StepFailed); ok && own.GetStep() == w.step {
		_ = msg.TermWithReason("failed to handle this step's own failure report")
		log.Error("failure report of this step could not be handled; terminated without a new report",
			zap.Error(cause), zap.Bool("permanent", permanent), zap.String("reported_reason", own.GetReason()))
		return
	}
	sf := &backbeatv1.StepFailed{Step: w.step, Reason: cause.Error(), Permanent: permanent, Worker: w.name}
	if j, ok := m.(Job); ok {
		sf.VideoId, sf.RunId = j.GetVideoId(), j.GetRunId()
	}
	if p, ok := m.(pooled); ok {
		sf.Pool = p.GetPool()
	}
	sf.Attempt = attemptOf(m)
	var seq uint64
	if meta, err := msg.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	if w.pub != nil {
		if sf.VideoId == "" {
			sf.VideoId = w.pub.Subjects().VideoIDOf(msg.Subject())
		}
		if ids.ValidateVideoID(sf.VideoId) == nil {
			id := "failed:" + w.step + ":" + strconv.FormatUint(seq, 10)
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := w.pub.Publish(pctx, w.pub.Subjects().Event(sf.VideoId, KindStepFailed), sf, id)
			cancel()
			if err != nil {
				// Leave the message for redelivery rather than lose the failure.
				_ = msg.NakWithDelay(w.policy.Delay(delivered))
				log.Error("could not report step failure; will redeliver", zap.Error(err), zap.NamedError("cause", cause))
				return
			}
		}
	}
	reason := cause.Error()
	if len(reason) > 200 {
		reason = reason[:200]
	}
	_ = msg.TermWithReason(reason)
	log.Error("message failed for good", zap.Error(cause), zap.Bool("permanent", permanent))
}

// heartbeat tells the server the job is still being worked on, a third of the
// ack wait apart, until stop is called.
func (w *processor) heartbeat(ctx context.Context, msg jetstream.Msg, log *zap.Logger) (stop func()) {
	every := w.policy.AckWait / 3
	if every <= 0 {
		every = 10 * time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("heartbeat failed", zap.Error(err))
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// panicError is a panic recovered from a decoder or a handler. It is
// reported as a permanent failure: the same message would panic again.
type panicError struct {
	value any
	// stack holds the first frames from the panic site, for the log only: the
	// step.failed event carries the value, not our source paths.
	stack string
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// panicFrames is how many frames of a panic's stack are logged.
const panicFrames = 8

// protect calls f and turns a panic in it into a *panicError, so that a bug
// in one handler fails its message instead of killing every handler in the
// process. It must be called on the goroutine that runs f: a panic on a
// goroutine the handler started cannot be recovered here.
func protect(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: panicStack()}
		}
	}()
	return f()
}

// panicStack formats the frames below the panic, from the panic site down,
// without the runtime's own frames. Call it from the deferred function that
// recovered.
func panicStack() string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	var all []runtime.Frame
	for {
		f, more := frames.Next()
		all = append(all, f)
		if !more {
			break
		}
	}
	from := 0
	for i, f := range all {
		if f.Function == "runtime.gopanic" {
			from = i + 1
			break
		}
	}
	for from < len(all)-1 && isRuntimeFrame(all[from].Function) {
		from++
	}
	var b strings.Builder
	for i := from; i < len(all) && i < from+panicFrames; i++ {
		fmt.Fprintf(&b, "%s\n\t%s:%d\n", all[i].Function, all[i].File, all[i].Line)
	}
	return b.String()
}

func isRuntimeFrame(fn string) bool {
	return strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/runtime/")
}

// recoverRunner is the last resort for a panic in the runner itself, outside
// the decoder and the handler (say, an error whose Error method panics):
// the process survives and the message is terminated, without a step.failed,
// since reporting is what may have panicked. Deferred by process.
func (w *processor) recoverRunner(msg jetstream.Msg, log *zap.Logger, start time.Time) {
	v := recover()
	if v == nil {
		return
	}
	reason := fmt.Sprintf("panic in message runner: %v", v)
	if len(reason) > 200 {
		reason = reason[:200]
	}
	if err := msg.TermWithReason(reason); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		log.Warn("term after runner panic failed", zap.Error(err))
	}
	log.Error("panic in message runner; message terminated without a step.failed",
		zap.String("panic", fmt.Sprint(v)), zap.String("stack", panicStack()))
	w.observe(OutcomePanic, start)
}

func (w *processor) observe(outcome string, start time.Time) {
	if w.metrics != nil {
		w.metrics.observe(w.step, outcome, time.Since(start))
	}
}

// Job is what the worker reads of a message: the video and run it belongs
// to. Every job and event message of backbeat.v1 has both getters; a message
// without them is still handled, without the ids in its logs and StepFailed.
type Job interface {
	proto.Message
	GetVideoId() string
	GetRunId() string
}

// attempted is a message of one render attempt (RenderJob, RenderDone, …).
type attempted interface{ GetAttempt() int32 }

// pooled is a message of one render pool.
type pooled interface{ GetPool() string }

// attemptOf is the attempt a message names, 0 when it names none.
func attemptOf(m proto.Message) int32 {
	if a, ok := m.(attempted); ok {
		return a.GetAttempt()
	}
	return 0
}

type logKey struct{}

type deliveryKey struct{}

type queueWaitKey struct{}

// QueueWait is how long the message being handled waited between being
// stored in its stream and this worker starting on it (for a redelivery,
// since it was first stored); 0 outside a handler. The same figure is the
// backbeat_job_queue_wait_seconds histogram.
func QueueWait(ctx context.Context) time.Duration {
	d, _ := ctx.Value(queueWaitKey{}).(time.Duration)
	return d
}

func withDelivery(ctx context.Context, msg jetstream.Msg) context.Context {
	return context.WithValue(ctx, deliveryKey{}, msg)
}

// HeaderReplayOf carries, on a re-published event, the stream sequence of the
// original, so that a replay is recognised as the same event.
const HeaderReplayOf = "Backbeat-Replay-Of"

// IsReplay reports whether the event being handled was re-published by an
// operator's replay (it carries HeaderReplayOf).
func IsReplay(ctx context.Context) bool {
	msg, ok := ctx.Value(deliveryKey{}).(jetstream.Msg)
	return ok && msg.Headers().Get(HeaderReplayOf) != ""
}

// OriginalSequence is the stream sequence of the event being handled, or of
// the original when it is a replay (HeaderReplayOf); 0 outside a handler.
// The coordinator keys a create without request id by it.
func OriginalSequence(ctx context.Context) uint64 {
	msg, ok := ctx.Value(deliveryKey{}).(jetstream.Msg)
	if !ok {
		return 0
	}
	if h := msg.Headers().Get(HeaderReplayOf); h != "" {
		if n, err := strconv.ParseUint(h, 10, 64); err == nil {
			return n
		}
	}
	meta, err := msg.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}

// WithLogger puts a logger (already carrying video_id, run_id, step) in ctx.
func WithLogger(ctx context.Context, l *zap.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, l)
}

// Logger returns the logger in ctx, or fallback when there is none.
func Logger(ctx context.Context, fallback *zap.Logger) *zap.Logger {
	if l, ok := ctx.Value(logKey{}).(*zap.Logger); ok {
		return l
	}
	if fallback == nil {
		return zap.NewNop()
	}
	return fallback
}
