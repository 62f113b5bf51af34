package bus

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Router is a Worker for a consumer that carries several message kinds (the
// coordinator's view of EVENTS): it picks the handler by the event kind at the
// end of the subject, with the same ack policy as Worker.
type Router struct {
	// Step names the router in logs, metrics and StepFailed events.
	Step string
	// Pub publishes StepFailed when an event will not be handled.
	Pub *Publisher
	// Log is the router's logger.
	Log *zap.Logger
	// Policy is the consumer's delivery policy; the coordinator's should be
	// Topology.Policy(ConsumerCoordinator), which retries forever.
	Policy Policy
	// Name identifies this replica in StepFailed.
	Name string
	// Metrics, when set, counts outcomes and durations.
	Metrics *Metrics
	// OnStuck, when set, hears of an event that keeps failing with a
	// retryable error (see StuckFunc).
	OnStuck StuckFunc

	routes map[string]route
}

type route struct {
	decode func(data []byte, ct string) (proto.Message, error)
	handle func(ctx context.Context, m proto.Message) error
}

// Route registers the handler of one event kind (KindVideoCreate, …).
func Route[T proto.Message](r *Router, kind string, newT func() T, h Handler[T]) {
	if r.routes == nil {
		r.routes = map[string]route{}
	}
	r.routes[kind] = route{
		decode: func(data []byte, ct string) (proto.Message, error) {
			m := newT()
			return m, Decode(data, ct, m)
		},
		handle: func(ctx context.Context, m proto.Message) error { return h(ctx, m.(T)) },
	}
}

func (r *Router) processor() *processor {
	log := r.Log
	if log == nil {
		log = zap.NewNop()
	}
	return &processor{step: r.Step, pub: r.Pub, log: log, policy: r.Policy, name: r.Name, metrics: r.Metrics, onStuck: r.OnStuck}
}

// kindOf returns the event kind of an EVENTS subject: <p>.events.<vid>.<kind…>.
func kindOf(subject string) string {
	parts := strings.SplitN(subject, ".", 4)
	if len(parts) < 4 {
		return ""
	}
	return parts[3]
}

// Process handles one message, as the consumer span "<step> <kind>"
// ("coordinator audio.done"); a kind without a route is terminated.
func (r *Router) Process(ctx context.Context, msg jetstream.Msg) {
	kind := kindOf(msg.Subject())
	rt, ok := r.routes[kind]
	if !ok {
		rt = route{
			decode: func([]byte, string) (proto.Message, error) {
				return nil, fmt.Errorf("no handler for event kind %q", kind)
			},
		}
	}
	r.processor().process(ctx, msg, r.Step+" "+kind, rt.decode, rt.handle)
}

// Run fetches and processes messages until ctx is done, at most concurrency at
// a time.
func (r *Router) Run(ctx context.Context, cons jetstream.Consumer, concurrency int) error {
	return runLoop(ctx, concurrency, longPoll(cons, r.processor().log, r.Step), nil, r.Process)
}
