package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream, bucket and consumer names.
const (
	StreamEvents   = "EVENTS"
	StreamJobs     = "JOBS"
	StreamProgress = "PROGRESS"
	// StreamAdvisories keeps the server's max-deliveries advisories of JOBS,
	// so a job that no worker ever acked (it crashed or hung on every
	// delivery) still reaches the coordinator, even one that was down. A
	// consumer whose Policy retries forever has MaxDeliver -1 and never
	// produces such an advisory: that is intended (see Policy.RetryForever).
	StreamAdvisories = "ADVISORIES"
	// ConsumerExhausted is the coordinator's durable on ADVISORIES.
	ConsumerExhausted = "coordinator-exhausted"
	BucketRuns        = "runs"
	BucketPurges      = "purges"
	// ConsumerCoordinator is the coordinator's durable on EVENTS.
	ConsumerCoordinator = "coordinator"
)

// Policy is the delivery policy of one worker kind: how long a message may be
// held without a heartbeat, how often it is delivered, and the delays between
// deliveries after a retryable error.
type Policy struct {
	// AckWait is how long a delivery may go without an ack or a heartbeat
	// before the server delivers the message again.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of a message: the last one that fails
	// with a retryable error is reported as step.failed{permanent=false}.
	// Ignored when RetryForever is set.
	MaxDeliver int
	// Backoff is the delay before the next delivery after the n-th failure;
	// the last entry repeats.
	Backoff []time.Duration
	// MaxAckPending bounds messages in flight across all replicas.
	MaxAckPending int
	// RetryForever retries a non-permanent error for as long as it takes
	// (every Backoff, then the last one over and over) and never reports it
	// as step.failed. It is for a consumer where giving up costs more than
	// waiting: the coordinator's events, where a step.failed ends the run
	// with a refund although only Postgres was failing over. Permanent errors
	// and panics still fail at once. The consumer is created with MaxDeliver
	// -1, so the server never sends it a max-deliveries advisory (nor does
	// ADVISORIES keep one): that is intended, OnStuck is the alert instead.
	RetryForever bool
	// AlertAfter is the delivery from which a retryable failure means the
	// message is stuck: that failure and every later one is logged at Error
	// level, and OnStuck is called on it and every AlertEvery deliveries
	// after. 0 means DefaultAlertAfter.
	AlertAfter int
}

// DefaultAlertAfter is the AlertAfter of a Policy that does not set one.
const DefaultAlertAfter = 5

// AlertEvery spaces the OnStuck calls of one stuck message, in deliveries:
// with the coordinator's 30 s cap, one alert every five minutes rather than
// one every retry. It counts deliveries rather than keeping a clock per
// message, so every replica agrees and a restart forgets nothing.
const AlertEvery = 10

// consumerMaxDeliver is the consumer's MaxDeliver: -1 (unlimited) when the
// runner retries forever.
func (p Policy) consumerMaxDeliver() int {
	if p.RetryForever {
		return -1
	}
	return p.MaxDeliver
}

// exhausted says whether the n-th delivery was the last one allowed.
func (p Policy) exhausted(delivered uint64) bool {
	return !p.RetryForever && p.MaxDeliver > 0 && delivered >= uint64(p.MaxDeliver)
}

func (p Policy) alertAfter() uint64 {
	if p.AlertAfter <= 0 {
		return DefaultAlertAfter
	}
	return uint64(p.AlertAfter)
}

// stuck says whether a retryable failure of the n-th delivery is logged at
// Error level.
func (p Policy) stuck(delivered uint64) bool {
	return delivered >= p.alertAfter()
}

// alertDue says whether the n-th delivery's failure is passed to OnStuck:
// the AlertAfter-th, then one in every AlertEvery.
func (p Policy) alertDue(delivered uint64) bool {
	a := p.alertAfter()
	return delivered >= a && (delivered-a)%AlertEvery == 0
}

// Delay is the NakWithDelay for the n-th delivery (1-based) of a message.
func (p Policy) Delay(delivered uint64) time.Duration {
	if len(p.Backoff) == 0 {
		return time.Second
	}
	i := int(delivered) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(p.Backoff) {
		i = len(p.Backoff) - 1
	}
	return p.Backoff[i]
}

// Topology is the JetStream layout of one Backbeat deployment. Provision
// (`backbeat provision`) creates or updates all of it, once, with the admin
// user; a service only Checks that the parts it uses exist, since its NATS
// user may not change them.
type Topology struct {
	Subjects Subjects
	// Pools are the render worker pools (gpu, cpu, …) that get consumers.
	Pools []string
	// Replicas of streams and buckets: 1 for dev, 3 in a cluster.
	Replicas int
	// EventsMaxAge bounds the replayable history.
	EventsMaxAge time.Duration
	// ProgressMaxAge bounds how long the last progress of a video is kept.
	ProgressMaxAge time.Duration
	// DuplicateWindow is how long a Nats-Msg-Id is remembered.
	DuplicateWindow time.Duration
	// Policies per step (StepAudio, StepRender, …); missing steps get DefaultPolicy.
	Policies map[string]Policy
	// Memory stores streams in memory (tests); production uses files.
	Memory bool
}

// CoordinatorPolicy is the coordinator's, on its EVENTS durable
// (ConsumerCoordinator): an event is retried for as long as the failure
// lasts, since its step.failed would end the run with a refund. Topology.Policy
// returns it for ConsumerCoordinator when Policies has no entry of that name.
var CoordinatorPolicy = Policy{
	AckWait:       30 * time.Second,
	RetryForever:  true,
	AlertAfter:    DefaultAlertAfter,
	Backoff:       []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second},
	MaxAckPending: 256,
}

// DefaultPolicy is used for a step without its own policy.
var DefaultPolicy = Policy{
	AckWait:       30 * time.Second,
	MaxDeliver:    5,
	Backoff:       []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute},
	MaxAckPending: 256,
}

// DefaultTopology is the production default for a prefix and pools.
func DefaultTopology(prefix string, pools []string) Topology {
	return Topology{
		Subjects:        Subjects{Prefix: prefix},
		Pools:           pools,
		Replicas:        1,
		EventsMaxAge:    30 * 24 * time.Hour,
		ProgressMaxAge:  time.Hour,
		DuplicateWindow: 15 * time.Minute,
		Policies: map[string]Policy{
			// A render is delivered twice on its pool (a crashed worker is replaced
			// through redelivery); failures move it to the next pool instead.
			StepRender: {AckWait: 30 * time.Second, MaxDeliver: 2, Backoff: []time.Duration{2 * time.Second}, MaxAckPending: 64},
			StepAudio:  {AckWait: 30 * time.Second, MaxDeliver: 4, Backoff: []time.Duration{time.Second, 5 * time.Second, 20 * time.Second}, MaxAckPending: 64},
			StepCDN:    {AckWait: 30 * time.Second, MaxDeliver: 3, Backoff: []time.Duration{2 * time.Second, 10 * time.Second}, MaxAckPending: 256},
			// The coordinator's events: an outage is waited out, never refunded.
			ConsumerCoordinator: CoordinatorPolicy,
		},
	}
}

// Policy returns the policy of a step, or of ConsumerCoordinator.
func (t Topology) Policy(step string) Policy {
	if p, ok := t.Policies[step]; ok {
		return p
	}
	if step == ConsumerCoordinator {
		return CoordinatorPolicy
	}
	return DefaultPolicy
}

func (t Topology) storage() jetstream.StorageType {
	if t.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

func (t Topology) replicas() int {
	if t.Replicas < 1 {
		return 1
	}
	return t.Replicas
}

// streamConfigs are the streams of the topology, as Provision creates them.
func (t Topology) streamConfigs() []jetstream.StreamConfig {
	s := t.Subjects
	dup := t.DuplicateWindow
	if dup == 0 {
		dup = 15 * time.Minute
	}
	streams := []jetstream.StreamConfig{
		{
			Name: StreamEvents, Subjects: []string{s.Events()},
			Retention: jetstream.LimitsPolicy, Storage: t.storage(), Replicas: t.replicas(),
			MaxAge: t.EventsMaxAge, Duplicates: dup,
		},
		{
			Name: StreamJobs, Subjects: []string{s.p() + ".jobs.>"},
			Retention: jetstream.WorkQueuePolicy, Storage: t.storage(), Replicas: t.replicas(),
			Duplicates: dup,
			// The doorbell: once a job is stored, its headers alone go out on
			// <p>.bell.<rest>, so that a worker over several consumers waits
			// for one instead of polling them (Worker.Conn). Stored first,
			// then rung: a fetch woken by the bell finds the job.
			RePublish: &jetstream.RePublish{Source: s.p() + ".jobs.>", Destination: s.Bells(), HeadersOnly: true},
		},
		{
			Name: StreamAdvisories, Subjects: []string{MaxDeliveriesAdvisory + "." + StreamJobs + ".>"},
			Retention: jetstream.LimitsPolicy, Storage: t.storage(), Replicas: t.replicas(),
			MaxAge: 7 * 24 * time.Hour,
		},
		{
			Name: StreamProgress, Subjects: []string{s.p() + ".progress.*"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.MemoryStorage, Replicas: t.replicas(),
			MaxMsgsPerSubject: 1, MaxAge: t.ProgressMaxAge, Duplicates: time.Minute,
		},
	}
	for i := range streams {
		if streams[i].MaxAge > 0 && streams[i].Duplicates > streams[i].MaxAge {
			streams[i].Duplicates = streams[i].MaxAge
		}
	}
	return streams
}

// bucketConfigs are the KV buckets of the topology.
func (t Topology) bucketConfigs() []jetstream.KeyValueConfig {
	var out []jetstream.KeyValueConfig
	for _, b := range []string{BucketRuns, BucketPurges} {
		out = append(out, jetstream.KeyValueConfig{Bucket: b, History: 5, Storage: t.storage(), Replicas: t.replicas()})
	}
	return out
}

// streamConsumer is a durable consumer and the stream it reads.
type streamConsumer struct {
	stream string
	cfg    jetstream.ConsumerConfig
}

// consumerConfigs are the durable consumers of the topology.
func (t Topology) consumerConfigs() []streamConsumer {
	s := t.Subjects
	cp := t.Policy(ConsumerCoordinator)
	cons := []streamConsumer{
		{StreamEvents, jetstream.ConsumerConfig{
			Durable: ConsumerCoordinator, AckPolicy: jetstream.AckExplicitPolicy,
			// No BackOff: on a consumer it replaces AckWait for the first
			// deliveries; the runner's NakWithDelay spaces retries instead.
			AckWait: cp.AckWait, MaxDeliver: cp.consumerMaxDeliver(),
			MaxAckPending:  cp.MaxAckPending,
			FilterSubjects: coordinatorKinds(s),
		}},
		{StreamAdvisories, jetstream.ConsumerConfig{
			Durable: ConsumerExhausted, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: 30 * time.Second, MaxDeliver: 10,
		}},
	}
	add := func(name, subject, step string) {
		p := t.Policy(step)
		cons = append(cons, streamConsumer{StreamJobs, jetstream.ConsumerConfig{
			Durable: name, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: subject,
			AckWait: p.AckWait, MaxDeliver: p.consumerMaxDeliver(), MaxAckPending: p.MaxAckPending,
		}})
	}
	add(StepAudio, s.AudioJob("*"), StepAudio)
	add(StepCDN, s.CDNJob("*"), StepCDN)
	add(StepThumbnail, s.ThumbnailJob("*"), StepThumbnail)
	add(StepNotify, s.NotifyJob("*"), StepNotify)
	for _, pool := range t.Pools {
		for _, prio := range Priorities {
			add(RenderConsumer(pool, prio), s.RenderJob(pool, prio, "*"), StepRender)
		}
	}
	return cons
}

// Ensure creates or updates the streams, consumers and buckets, and is
// idempotent. It is the provisioning step (`backbeat provision`, with the
// NATS admin user) and what `backbeat dev` and the tests run on their
// embedded server; services only Check. Provision says what it changed.
func (t Topology) Ensure(ctx context.Context, js jetstream.JetStream) error {
	_, err := t.Provision(ctx, js)
	return err
}

// MaxDeliveriesAdvisory prefixes the server's advisories for messages that
// reached a consumer's MaxDeliver: <prefix>.<stream>.<consumer>. A consumer
// with MaxDeliver -1 (Policy.RetryForever) never produces one, by design.
const MaxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// coordinatorKinds are the events the coordinator acts on (not its own
// video.status announcements).
func coordinatorKinds(s Subjects) []string {
	kinds := []string{KindVideoCreate, KindVideoCancel, KindVideoRecover, KindAudioDone, KindRenderDone,
		KindCDNDone, KindThumbnailDone, KindNotifyDone, KindStepFailed}
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = s.EventsOfKind(k)
	}
	return out
}

// Consumer looks up a durable consumer created by Ensure.
func Consumer(ctx context.Context, js jetstream.JetStream, stream, name string) (jetstream.Consumer, error) {
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", name, stream, err)
	}
	return c, nil
}

// KV opens a bucket created by Ensure.
func KV(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", bucket, err)
	}
	return kv, nil
}

// IsNotFound reports whether err is a JetStream "no such message/key" error.
func IsNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrMsgNotFound)
}
