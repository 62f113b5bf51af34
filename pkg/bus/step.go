package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/ids"
)

// Deps are what every worker service is given, under one name each: its
// main builds them from the process (boot.Process.Deps) and `backbeat dev`
// from its own connections, and both pass them to the service's New.
type Deps struct {
	// Blob is the object storage the step reads and writes.
	Blob blob.Store
	// Pub publishes the done events (and StepFailed).
	Pub *Publisher
	// Runs tells whether a job's run is still current (Runs.Guard).
	Runs *Runs
	// Topo holds each step's delivery policy (Policy); the zero Topology
	// stands for DefaultTopology.
	Topo Topology
	// Log is the service logger; nil logs nothing.
	Log *zap.Logger
	// Metrics, when set, counts job outcomes for /metrics.
	Metrics *Metrics
	// Name identifies this replica in StepFailed, RenderDone and progress;
	// "" is the host name.
	Name string
}

// WithDefaults fills a nil Log and an empty Name, the only defaults of Deps.
func (d Deps) WithDefaults() Deps {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "worker"
		}
		d.Name = h
	}
	return d
}

// Policy is the delivery policy of a step's consumers: Topo's, or
// DefaultTopology's when Topo is the zero Topology.
func (d Deps) Policy(step string) Policy {
	if d.Topo.Policies == nil {
		return DefaultTopology(DefaultPrefix, nil).Policy(step)
	}
	return d.Topo.Policy(step)
}

// Require returns an error naming the dependencies of step that are missing:
// Pub and Runs always, Blob when blob is true.
func (d Deps) Require(step string, blob bool) error {
	var errs []error
	if blob && d.Blob == nil {
		errs = append(errs, fmt.Errorf("%s: Deps.Blob is required", step))
	}
	if d.Pub == nil {
		errs = append(errs, fmt.Errorf("%s: Deps.Pub is required", step))
	}
	if d.Runs == nil {
		errs = append(errs, fmt.Errorf("%s: Deps.Runs is required", step))
	}
	return errors.Join(errs...)
}

// Step is one job step as a service describes it: how to check a job, the
// work, and the kind of event the work produces. The step does the rest of
// the skeleton every worker shares: it refuses bad ids, guards the run
// (Runs.Guard), turns the guard's cancellation into ErrNotCurrent (Cause),
// publishes the done event under its message id, and runs the JetStream
// worker (Worker) that heartbeats, retries by Policy and reports StepFailed.
//
// The video id is checked for every job, and the run id of a guarded one.
// The attempt the guard matches, and the one in the message id, is the
// job's GetAttempt when it has one (RenderJob), else 0.
type Step[J Job, D proto.Message] struct {
	// Name is the step (StepAudio, …): in logs, metrics, StepFailed, the
	// done event's message id and the default consumer's durable name.
	Name string
	// Done is the event kind of the work's result (KindAudioDone, …),
	// published on Subjects.Event(video, Done).
	Done string
	// Check, optional, refuses before the guard what no retry can fix; its
	// error is reported as permanent.
	Check func(job J) error
	// Work does the job under the run's guard and returns the done event: a
	// Permanent error for bad input, any other error to retry. Its ctx
	// carries the job's logger (Logger) and is cancelled when the run stops
	// being current.
	Work func(ctx context.Context, job J) (D, error)
	// Unguarded skips the run guard: for work that is always safe, even for
	// a run that is no longer current (the cdn's purges).
	Unguarded bool
	// Escalate reports retryable errors at once instead of redelivering
	// (Worker.Escalate): renders move to the next pool.
	Escalate bool
	// StarveEvery and PollInterval tune a Run over several consumers
	// (Worker.StarveEvery, Worker.PollInterval).
	StarveEvery  int
	PollInterval time.Duration
	// Deps are the service's dependencies; Blob is not used by the step.
	Deps Deps
}

// Handle does one job to the end: nil once the done event is published, a
// Permanent error for a job no retry can fix, an error wrapping ErrNotCurrent
// when the run is (or becomes) no longer current, any other error to retry.
// Run calls it for each delivered job; tests call it directly.
func (s *Step[J, D]) Handle(ctx context.Context, job J) error {
	vid, run, attempt := job.GetVideoId(), job.GetRunId(), attemptOf(job)
	if err := s.check(job); err != nil {
		return Permanent(fmt.Errorf("%s job: %w", s.Name, err))
	}
	deps := s.Deps.WithDefaults()
	// The worker's logger already names the video and run; a direct call's
	// does not.
	log := Logger(ctx, deps.Log.With(zap.String("step", s.Name), zap.String("video_id", vid), zap.String("run_id", run)))
	if attempt != 0 {
		log = log.With(zap.Int32("attempt", attempt))
	}
	gctx := WithLogger(ctx, log)
	if !s.Unguarded {
		var release context.CancelFunc
		var err error
		gctx, release, err = deps.Runs.Guard(gctx, vid, run, attempt)
		if err != nil {
			return fmt.Errorf("guard run: %w", err)
		}
		defer release()
	}
	start := time.Now()
	done, err := s.Work(gctx, job)
	if err != nil {
		return Cause(gctx, err)
	}
	if err := gctx.Err(); err != nil {
		return Cause(gctx, err)
	}
	msgID := MsgID(run, s.Name, attempt, s.Done)
	pctx := WithReport(gctx, Report{Worker: deps.Name, QueueWait: QueueWait(ctx), RunTime: time.Since(start)})
	if err := deps.Pub.Publish(pctx, deps.Pub.Subjects().Event(vid, s.Done), done, msgID); err != nil {
		return Cause(gctx, fmt.Errorf("publish %s: %w", s.Done, err))
	}
	return nil
}

// check refuses a bad video id, a bad run id of a guarded job, and what
// Check refuses.
func (s *Step[J, D]) check(job J) error {
	if err := ids.ValidateVideoID(job.GetVideoId()); err != nil {
		return err
	}
	if !s.Unguarded {
		if err := ids.ValidateRunID(job.GetRunId()); err != nil {
			return fmt.Errorf("video %s: %w", job.GetVideoId(), err)
		}
	}
	if s.Check != nil {
		return s.Check(job)
	}
	return nil
}

// Run handles the jobs of the durables (on StreamJobs, in priority order;
// none: the one named Name) until ctx is done, at most concurrency at a
// time, then waits for the jobs in flight.
func (s *Step[J, D]) Run(ctx context.Context, js jetstream.JetStream, concurrency int, durables ...string) error {
	if len(durables) == 0 {
		durables = []string{s.Name}
	}
	cons := make([]jetstream.Consumer, len(durables))
	for i, name := range durables {
		c, err := Consumer(ctx, js, StreamJobs, name)
		if err != nil {
			return fmt.Errorf("%s worker: %w", s.Name, err)
		}
		cons[i] = c
	}
	deps := s.Deps.WithDefaults()
	w := &Worker[J]{
		Step:         s.Name,
		New:          newOf[J](),
		Handle:       s.Handle,
		Pub:          deps.Pub,
		Log:          deps.Log,
		Policy:       deps.Policy(s.Name),
		Escalate:     s.Escalate,
		Name:         deps.Name,
		Metrics:      deps.Metrics,
		StarveEvery:  s.StarveEvery,
		PollInterval: s.PollInterval,
	}
	deps.Log.Info("worker started", zap.String("step", s.Name), zap.Strings("consumers", durables),
		zap.Int("concurrency", concurrency), zap.String("worker", deps.Name))
	if err := w.Run(ctx, concurrency, cons...); err != nil {
		return fmt.Errorf("%s worker: %w", s.Name, err)
	}
	return nil
}

// newOf returns a constructor of empty messages of type J.
func newOf[J proto.Message]() func() J {
	var zero J
	mt := zero.ProtoReflect().Type()
	return func() J { return mt.New().Interface().(J) }
}
