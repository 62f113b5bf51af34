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
	// delivery) still reaches the coordinator, even one that was down.
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
	AckWait    time.Duration
	MaxDeliver int
	Backoff    []time.Duration
	// MaxAckPending bounds messages in flight across all replicas.
	MaxAckPending int
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

// Topology is the JetStream layout of one Backbeat deployment. Ensure creates
// or updates all of it, so every service can call it at start-up.
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
		},
	}
}

// Policy returns the policy of a step.
func (t Topology) Policy(step string) Policy {
	if p, ok := t.Policies[step]; ok {
		return p
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

// Ensure creates or updates the streams, consumers and buckets. It is
// idempotent: running it on every start of every service is the intended use.
func (t Topology) Ensure(ctx context.Context, js jetstream.JetStream) error {
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
	for _, cfg := range streams {
		if cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge {
			cfg.Duplicates = cfg.MaxAge
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	for _, b := range []string{BucketRuns, BucketPurges} {
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: b, History: 5, Storage: t.storage(), Replicas: t.replicas(),
		})
		if err != nil {
			return fmt.Errorf("ensure kv %s: %w", b, err)
		}
	}
	cons := []struct {
		stream string
		cfg    jetstream.ConsumerConfig
	}{
		{StreamEvents, jetstream.ConsumerConfig{
			Durable: ConsumerCoordinator, AckPolicy: jetstream.AckExplicitPolicy,
			// No BackOff: on a consumer it replaces AckWait for the first
			// deliveries; the runner's NakWithDelay spaces retries instead.
			AckWait: 30 * time.Second, MaxDeliver: 10,
			MaxAckPending:  256,
			FilterSubjects: coordinatorKinds(s),
		}},
	}
	cons = append(cons, struct {
		stream string
		cfg    jetstream.ConsumerConfig
	}{StreamAdvisories, jetstream.ConsumerConfig{
		Durable: ConsumerExhausted, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxDeliver: 10,
	}})
	add := func(name, subject, step string) {
		p := t.Policy(step)
		cons = append(cons, struct {
			stream string
			cfg    jetstream.ConsumerConfig
		}{StreamJobs, jetstream.ConsumerConfig{
			Durable: name, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: subject,
			AckWait: p.AckWait, MaxDeliver: p.MaxDeliver, MaxAckPending: p.MaxAckPending,
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
	for _, c := range cons {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.stream, c.cfg); err != nil {
			return fmt.Errorf("ensure consumer %s on %s: %w", c.cfg.Durable, c.stream, err)
		}
	}
	return nil
}

// MaxDeliveriesAdvisory prefixes the server's advisories for messages that
// reached a consumer's MaxDeliver: <prefix>.<stream>.<consumer>.
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
