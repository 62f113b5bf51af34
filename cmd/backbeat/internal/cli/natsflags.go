package cli

import (
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/redact"
)

// natsFlags are the connection flags of `backbeat provision`, which talks to
// JetStream directly (as the NATS admin user) rather than through the API.
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
