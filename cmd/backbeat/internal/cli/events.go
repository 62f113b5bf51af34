package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/backbeat/backbeat/pkg/bus"
	// Registers the Backbeat messages for decoding by their type header.
	"github.com/backbeat/backbeat/pkg/redact"
	_ "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// natsFlags are the connection flags of the operator commands, which talk to
// JetStream directly rather than through the API.
type natsFlags struct {
	url, creds, prefix string
}

func (n *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.url, "nats", "", "NATS URL (default $BACKBEAT_NATS_URL or nats://127.0.0.1:4222)")
	fs.StringVar(&n.creds, "creds", "", "NATS credentials file (default $BACKBEAT_NATS_CREDS); "+
		"a user and password come from $BACKBEAT_NATS_USER and $BACKBEAT_NATS_PASSWORD")
	fs.StringVar(&n.prefix, "prefix", "", "subject prefix (default $BACKBEAT_PREFIX or backbeat)")
}

// connect dials NATS once (an operator command fails fast rather than
// reconnecting forever) and returns the JetStream context and subjects.
func (n *natsFlags) connect(env Env) (*nats.Conn, jetstream.JetStream, bus.Subjects, error) {
	url := firstNonEmpty(n.url, env.Getenv("BACKBEAT_NATS_URL"), nats.DefaultURL)
	creds := firstNonEmpty(n.creds, env.Getenv("BACKBEAT_NATS_CREDS"))
	subj := bus.Subjects{Prefix: firstNonEmpty(n.prefix, env.Getenv("BACKBEAT_PREFIX"), bus.DefaultPrefix)}
	opts := []nats.Option{nats.Name("backbeat-cli"), nats.Timeout(5 * time.Second)}
	opts = append(opts, bus.DialOptions(url, bus.Credentials{User: env.Getenv("BACKBEAT_NATS_USER"),
		Password: env.Getenv("BACKBEAT_NATS_PASSWORD"), CredsFile: creds})...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, subj, fmt.Errorf("connect nats %s: %w", redact.URL(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, subj, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, subj, nil
}

// readEvents returns the EVENTS messages matching filter, oldest first,
// through an ordered consumer (ephemeral, no acks, nothing left behind).
func readEvents(ctx context.Context, js jetstream.JetStream, filter string) ([]jetstream.Msg, error) {
	st, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", bus.StreamEvents, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", bus.StreamEvents, err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return nil, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", filter, err)
	}
	var out []jetstream.Msg
	// Ask for exactly what is pending, so a fetch returns as soon as it is
	// served instead of waiting out its expiry for a full batch.
	want := total
	for want > 0 {
		batch, err := cons.Fetch(int(min(want, 512)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", filter, err)
		}
		n := len(out)
		for m := range batch.Messages() {
			out = append(out, m)
			if md, err := m.Metadata(); err == nil {
				want = md.NumPending
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", filter, err)
		}
		if len(out) == n {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decodeEvent decodes a stored event by its Backbeat-Type header.
func decodeEvent(m jetstream.Msg) (proto.Message, error) {
	typ := m.Headers().Get(bus.HeaderType)
	if typ == "" {
		return nil, fmt.Errorf("no %s header", bus.HeaderType)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typ))
	if err != nil {
		return nil, fmt.Errorf("unknown type %s: %w", typ, err)
	}
	pm := mt.New().Interface()
	if err := bus.Decode(m.Data(), m.Headers().Get(bus.HeaderContentType), pm); err != nil {
		return nil, err
	}
	return pm, nil
}

// describe renders an event as compact protojson, or says why it cannot.
func describe(m jetstream.Msg) string {
	pm, err := decodeEvent(m)
	if err != nil {
		return fmt.Sprintf("(%d bytes: %v)", len(m.Data()), err)
	}
	return compactJSON(pm)
}

// seqTime returns the stream sequence and store time of a message.
func seqTime(m jetstream.Msg) (uint64, time.Time) {
	md, err := m.Metadata()
	if err != nil {
		return 0, time.Time{}
	}
	return md.Sequence.Stream, md.Timestamp
}

// compactJSON is protojson with its deliberately unstable spacing removed,
// so output can be grepped and diffed.
func compactJSON(m proto.Message) string {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}
