package bus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Item is one part of the topology: a stream, a durable consumer or a KV
// bucket.
type Item struct {
	// Kind is "stream", "consumer" or "bucket".
	Kind string
	// Stream of a consumer.
	Stream string
	// Name of the stream, consumer or bucket.
	Name string
}

// The kinds of Item.
const (
	KindStream   = "stream"
	KindConsumer = "consumer"
	KindBucket   = "bucket"
)

// String names the item as an operator reads it: "stream EVENTS",
// "consumer JOBS/audio", "bucket runs".
func (i Item) String() string {
	if i.Kind == KindConsumer {
		return i.Kind + " " + i.Stream + "/" + i.Name
	}
	return i.Kind + " " + i.Name
}

// Change is what Provision did to one item: "created", "updated" or
// "unchanged".
type Change struct {
	Item   Item
	Action string
}

// Provision creates what is missing of the topology and updates what differs,
// and reports each item. It is idempotent. It needs the NATS admin user: no
// service user may create, update or delete a stream or durable consumer
// (deployments/nats/accounts.conf).
func (t Topology) Provision(ctx context.Context, js jetstream.JetStream) ([]Change, error) {
	var out []Change
	for _, cfg := range t.streamConfigs() {
		it := Item{Kind: KindStream, Name: cfg.Name}
		var before *jetstream.StreamConfig
		if s, err := js.Stream(ctx, cfg.Name); err == nil {
			c := s.CachedInfo().Config
			before = &c
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return out, fmt.Errorf("provision %s: %w", it, err)
		}
		s, err := js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			return out, fmt.Errorf("provision %s: %w", it, err)
		}
		out = append(out, Change{it, action(before, s.CachedInfo().Config)})
	}
	for _, cfg := range t.bucketConfigs() {
		it := Item{Kind: KindBucket, Name: cfg.Bucket}
		var before *jetstream.StreamConfig
		if s, err := js.Stream(ctx, "KV_"+cfg.Bucket); err == nil {
			c := s.CachedInfo().Config
			before = &c
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return out, fmt.Errorf("provision %s: %w", it, err)
		}
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return out, fmt.Errorf("provision %s: %w", it, err)
		}
		s, err := js.Stream(ctx, "KV_"+cfg.Bucket)
		if err != nil {
			return out, fmt.Errorf("provision %s: %w", it, err)
		}
		out = append(out, Change{it, action(before, s.CachedInfo().Config)})
	}
	for _, c := range t.consumerConfigs() {
		it := Item{Kind: KindConsumer, Stream: c.stream, Name: c.cfg.Durable}
		var before *jetstream.ConsumerConfig
		if cons, err := js.Consumer(ctx, c.stream, c.cfg.Durable); err == nil {
			cc := cons.CachedInfo().Config
			before = &cc
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return out, fmt.Errorf("provision %s: %w", it, err)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, c.stream, c.cfg)
		if err != nil {
			return out, fmt.Errorf("provision %s: %w", it, err)
		}
		out = append(out, Change{it, action(before, cons.CachedInfo().Config)})
	}
	return out, nil
}

func action[T any](before *T, after T) string {
	switch {
	case before == nil:
		return "created"
	case reflect.DeepEqual(*before, after):
		return "unchanged"
	default:
		return "updated"
	}
}

// Items lists every stream, bucket and durable consumer of the topology, in
// the order Provision handles them.
func (t Topology) Items() []Item {
	var out []Item
	for _, s := range t.streamConfigs() {
		out = append(out, Item{Kind: KindStream, Name: s.Name})
	}
	for _, b := range t.bucketConfigs() {
		out = append(out, Item{Kind: KindBucket, Name: b.Bucket})
	}
	for _, c := range t.consumerConfigs() {
		out = append(out, Item{Kind: KindConsumer, Stream: c.stream, Name: c.cfg.Durable})
	}
	return out
}

// Services, by the name their process runs as (boot.Start's name).
const (
	ServiceAPI         = "api"
	ServiceCoordinator = "render-coordinator"
	ServiceAudio       = "audio"
	ServiceRenderer    = "gpu-renderer"
	ServiceCDN         = "cdn"
	ServiceThumbnail   = "thumbnail"
)

// Needs lists what a service uses of the topology, which Check verifies at
// its start: the streams it publishes to or reads, the durable consumers it
// pulls and the buckets it opens. A renderer needs the consumers of every
// pool in t.Pools (any replica may be moved to any pool by configuration).
func (t Topology) Needs(service string) ([]Item, error) {
	stream := func(n string) Item { return Item{Kind: KindStream, Name: n} }
	cons := func(s, n string) Item { return Item{Kind: KindConsumer, Stream: s, Name: n} }
	runs := Item{Kind: KindBucket, Name: BucketRuns}
	switch service {
	case ServiceAPI:
		return []Item{stream(StreamEvents), stream(StreamProgress), runs}, nil
	case ServiceCoordinator:
		return []Item{stream(StreamEvents), stream(StreamJobs), stream(StreamAdvisories), stream(StreamProgress), runs,
			cons(StreamEvents, ConsumerCoordinator), cons(StreamAdvisories, ConsumerExhausted),
			cons(StreamJobs, StepNotify)}, nil
	case ServiceAudio:
		return []Item{stream(StreamEvents), stream(StreamJobs), runs, cons(StreamJobs, StepAudio)}, nil
	case ServiceRenderer:
		out := []Item{stream(StreamEvents), stream(StreamJobs), stream(StreamProgress), runs}
		for _, pool := range t.Pools {
			for _, prio := range Priorities {
				out = append(out, cons(StreamJobs, RenderConsumer(pool, prio)))
			}
		}
		return out, nil
	case ServiceCDN:
		return []Item{stream(StreamEvents), stream(StreamJobs), runs, {Kind: KindBucket, Name: BucketPurges},
			cons(StreamJobs, StepCDN)}, nil
	case ServiceThumbnail:
		return []Item{stream(StreamEvents), stream(StreamJobs), runs, cons(StreamJobs, StepThumbnail)}, nil
	}
	return nil, fmt.Errorf("topology needs: unknown service %q", service)
}

// MissingError says which parts of the topology a service needs are absent.
type MissingError struct {
	Service string
	Missing []Item
}

func (e *MissingError) Error() string {
	names := make([]string, len(e.Missing))
	for i, it := range e.Missing {
		names[i] = it.String()
	}
	return fmt.Sprintf("JetStream topology not provisioned for %s: missing %s; run `backbeat provision` "+
		"with the NATS admin user (Kubernetes: the backbeat-provision Job)", e.Service, strings.Join(names, ", "))
}

// checkTimeout bounds each look-up of Check: a NATS user without the
// permission to read an item gets no answer at all, only a timeout.
const checkTimeout = 10 * time.Second

// Check verifies that every item a service needs exists, and returns a
// *MissingError naming all that do not. It changes nothing: a service's NATS
// user may only read the topology. Drift lists the consumers whose delivery
// settings differ from this build's (a provision is due); they still work.
func (t Topology) Check(ctx context.Context, js jetstream.JetStream, service string) (drift []string, err error) {
	need, err := t.Needs(service)
	if err != nil {
		return nil, err
	}
	want := map[string]jetstream.ConsumerConfig{}
	for _, c := range t.consumerConfigs() {
		want[c.stream+"/"+c.cfg.Durable] = c.cfg
	}
	miss := &MissingError{Service: service}
	for _, it := range need {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		var err error
		switch it.Kind {
		case KindStream:
			_, err = js.Stream(cctx, it.Name)
		case KindBucket:
			_, err = js.KeyValue(cctx, it.Name)
		case KindConsumer:
			var c jetstream.Consumer
			if c, err = js.Consumer(cctx, it.Stream, it.Name); err == nil {
				if w, ok := want[it.Stream+"/"+it.Name]; ok {
					if d := consumerDrift(w, c.CachedInfo().Config); d != "" {
						drift = append(drift, it.String()+": "+d)
					}
				}
			}
		}
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrConsumerNotFound),
			errors.Is(err, jetstream.ErrBucketNotFound):
			miss.Missing = append(miss.Missing, it)
		case errors.Is(err, context.DeadlineExceeded):
			return drift, fmt.Errorf("check %s: no answer in %s (may this NATS user read it? see deployments/nats/accounts.conf): %w", it, checkTimeout, err)
		default:
			return drift, fmt.Errorf("check %s: %w", it, err)
		}
	}
	if len(miss.Missing) > 0 {
		return drift, miss
	}
	return drift, nil
}

// consumerDrift describes how a consumer's delivery settings differ from
// what Provision would set, or "". A zero wanted value is the server's
// default and matches whatever the server filled in.
func consumerDrift(want, got jetstream.ConsumerConfig) string {
	var d []string
	if want.AckWait != 0 && want.AckWait != got.AckWait {
		d = append(d, fmt.Sprintf("ack_wait %s, want %s", got.AckWait, want.AckWait))
	}
	if want.MaxDeliver != got.MaxDeliver {
		d = append(d, fmt.Sprintf("max_deliver %d, want %d", got.MaxDeliver, want.MaxDeliver))
	}
	if want.MaxAckPending != 0 && want.MaxAckPending != got.MaxAckPending {
		d = append(d, fmt.Sprintf("max_ack_pending %d, want %d", got.MaxAckPending, want.MaxAckPending))
	}
	if want.FilterSubject != got.FilterSubject || !slices.Equal(want.FilterSubjects, got.FilterSubjects) {
		d = append(d, "filter subjects differ")
	}
	return strings.Join(d, "; ")
}
