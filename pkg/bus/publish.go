package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Header names set on every publish. HeaderTraceparent is written by the
// W3C trace-context propagator (Propagator), lower case as it names it.
const (
	HeaderType        = "Backbeat-Type"
	HeaderTraceparent = "traceparent"
	HeaderContentType = "Content-Type"
	// ContentTypeJSON marks a protojson body, for operators publishing by hand.
	ContentTypeJSON = "application/json"
	// ContentTypeProto marks a binary protobuf body (the default).
	ContentTypeProto = "application/protobuf"
)

// Publisher publishes protobuf messages to JetStream with the headers every
// Backbeat message carries. It is safe for concurrent use.
type Publisher struct {
	js   jetstream.JetStream
	subj Subjects
	tp   trace.TracerProvider
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithTracerProvider makes the publisher's spans, and those of the workers
// and routers that publish through it (Tracer), with tp: the provider of the
// service the publisher belongs to. Without it they use the global provider.
func WithTracerProvider(tp trace.TracerProvider) PublisherOption {
	return func(p *Publisher) { p.tp = tp }
}

// NewPublisher wraps a JetStream context with the subjects of one prefix.
func NewPublisher(js jetstream.JetStream, s Subjects, opts ...PublisherOption) *Publisher {
	p := &Publisher{js: js, subj: s}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Subjects returns the subject builder this publisher was made with.
func (p *Publisher) Subjects() Subjects { return p.subj }

// JetStream exposes the underlying context for callers that need streams or KV.
func (p *Publisher) JetStream() jetstream.JetStream { return p.js }

// Publish sends m to subject and waits for the stream's ack. msgID must be
// deterministic for anything that can be published twice (see MsgID): the
// stream drops a duplicate inside its duplicate window.
//
// Publish is a producer span, a child of the span in ctx (the request or
// message being handled; a new trace when there is none), and the message's
// traceparent names that span, so its consumer continues the trace. A
// message the stream drops as a duplicate keeps the traceparent of the copy
// it stored.
func (p *Publisher) Publish(ctx context.Context, subject string, m proto.Message, msgID string) (err error) {
	name := string(m.ProtoReflect().Descriptor().FullName())
	ctx, span := Tracer(p).Start(ctx, "publish "+kindName(subject), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(append(MessageAttributes(m), AttrSystem.String("nats"), AttrOperation.String("send"),
			AttrDestination.String(subject), AttrMessageID.String(msgID), AttrMsgType.String(name))...))
	defer func() {
		Fail(span, err)
		span.End()
	}()
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", name, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(HeaderType, name)
	msg.Header.Set(HeaderContentType, ContentTypeProto)
	Inject(ctx, msg.Header)
	setReport(ctx, msg.Header)
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	// A message with an id is idempotent (the stream drops a copy), so it is
	// retried while the stream has no leader: an election after a node
	// fails takes seconds, and failing the publish would turn a finished
	// step into a failed one (found by `make chaos`). Without an id, once.
	delay, deadline := 100*time.Millisecond, time.Now().Add(PublishRetryFor)
	for {
		_, err := p.js.PublishMsg(ctx, msg, opts...)
		if err == nil {
			return nil
		}
		if msgID == "" || !transient(err) || ctx.Err() != nil || time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("publish %s to %s: %w", m.ProtoReflect().Descriptor().FullName(), subject, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish %s to %s: %w (after %v)", m.ProtoReflect().Descriptor().FullName(), subject, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// PublishRetryFor bounds how long Publish retries a message with an id while
// its stream does not answer (a leader election).
var PublishRetryFor = 20 * time.Second

// transient says whether a publish failed for want of a stream leader (no
// answer, no responders) rather than for what was published.
func transient(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// Decode fills m from a message body: protojson when Content-Type says
// application/json, binary protobuf otherwise. Unknown JSON fields are refused
// so that a typo in a hand-published message is an error, not a silent zero.
func Decode(data []byte, contentType string, m proto.Message) error {
	if strings.HasPrefix(contentType, ContentTypeJSON) {
		if err := protojson.Unmarshal(data, m); err != nil {
			return fmt.Errorf("decode json %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
		}
		return nil
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("decode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}
