package bus

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Header names set on every publish.
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
}

// NewPublisher wraps a JetStream context with the subjects of one prefix.
func NewPublisher(js jetstream.JetStream, s Subjects) *Publisher {
	return &Publisher{js: js, subj: s}
}

// Subjects returns the subject builder this publisher was made with.
func (p *Publisher) Subjects() Subjects { return p.subj }

// JetStream exposes the underlying context for callers that need streams or KV.
func (p *Publisher) JetStream() jetstream.JetStream { return p.js }

// Publish sends m to subject and waits for the stream's ack. msgID must be
// deterministic for anything that can be published twice (see MsgID): the
// stream drops a duplicate inside its duplicate window.
func (p *Publisher) Publish(ctx context.Context, subject string, m proto.Message, msgID string) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(HeaderType, string(m.ProtoReflect().Descriptor().FullName()))
	msg.Header.Set(HeaderContentType, ContentTypeProto)
	msg.Header.Set(HeaderTraceparent, childTraceparent(ctx, msgID))
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

type traceKey struct{}

// WithTraceparent returns a context carrying an incoming W3C traceparent, so
// that what a handler publishes continues the same trace.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, tp)
}

// TraceID returns the trace id carried by ctx, or "".
func TraceID(ctx context.Context) string {
	tp, _ := ctx.Value(traceKey{}).(string)
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		return ""
	}
	return parts[1]
}

// childTraceparent continues the trace in ctx, or starts one, with a span id
// derived from msgID so that a republished message carries the same span.
func childTraceparent(ctx context.Context, msgID string) string {
	trace := TraceID(ctx)
	if trace == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		trace = hex.EncodeToString(b[:])
	}
	var span string
	if msgID != "" {
		sum := sha256.Sum256([]byte(trace + msgID))
		span = hex.EncodeToString(sum[:8])
	} else {
		var b [8]byte
		_, _ = rand.Read(b[:])
		span = hex.EncodeToString(b[:])
	}
	return "00-" + trace + "-" + span + "-01"
}
