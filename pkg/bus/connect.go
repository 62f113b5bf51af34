package bus

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/redact"
)

// Credentials name the NATS user a process connects as. A service has its own
// user and password (BACKBEAT_NATS_USER, BACKBEAT_NATS_PASSWORD; see
// deployments/nats/accounts.conf), or a .creds file; `backbeat dev` and the
// tests' embedded server need neither.
type Credentials struct {
	User     string
	Password string
	// CredsFile is a decentralised-auth .creds file (JWT and nkey seed).
	CredsFile string
}

// InboxPrefix is the reply-subject prefix of a NATS user: every user gets its
// own (_INBOX_<user>), so accounts.conf can let each subscribe only to its own
// replies; with the shared _INBOX.> one service could read the jobs pulled by
// another.
func InboxPrefix(user string) string {
	if user == "" {
		return nats.InboxPrefix[:len(nats.InboxPrefix)-1]
	}
	return "_INBOX_" + user
}

// DialOptions are the options that authenticate as cr on rawURL: the user
// (from cr, else from the URL's user info) and its own inbox prefix.
func DialOptions(rawURL string, cr Credentials) []nats.Option {
	var opts []nats.Option
	user := cr.User
	if user != "" {
		opts = append(opts, nats.UserInfo(cr.User, cr.Password))
	} else if u := urlUser(rawURL); u != "" {
		user = u
	}
	if cr.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cr.CredsFile))
	}
	if user != "" {
		opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(user)))
	}
	return opts
}

// urlUser is the user name in the first URL of a comma-separated list.
func urlUser(rawURL string) string {
	first, _, _ := strings.Cut(rawURL, ",")
	u, err := url.Parse(strings.TrimSpace(first))
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

// Connect dials NATS as cr with reconnects forever (a service outlives a NATS
// rolling restart) and returns the connection and its JetStream context. No
// password reaches a log line or an error: URLs are redacted.
func Connect(rawURL string, cr Credentials, name string, log *zap.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", zap.String("url", c.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			fields := []zap.Field{zap.Error(err)}
			if sub != nil {
				fields = append(fields, zap.String("subject", sub.Subject))
			}
			log.Error("nats error", fields...)
		}),
	}
	opts = append(opts, DialOptions(rawURL, cr)...)
	nc, err := nats.Connect(rawURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect nats %s as %q: %w", redact.URL(rawURL), userOf(rawURL, cr), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

func userOf(rawURL string, cr Credentials) string {
	if cr.User != "" {
		return cr.User
	}
	return urlUser(rawURL)
}

// Ready is a readiness check: the connection is up and JetStream answers.
func Ready(nc *nats.Conn, js jetstream.JetStream) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats not connected (%s)", nc.Status())
		}
		if _, err := js.AccountInfo(ctx); err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		return nil
	}
}
