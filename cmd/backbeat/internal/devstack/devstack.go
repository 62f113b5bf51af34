// Package devstack runs every Backbeat service in one process on an embedded
// nats-server, SQLite and a local blob folder: `backbeat dev`, and the
// end-to-end tests (which swap in Postgres and MinIO).
package devstack

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/logging"
)

// Flags registers the `backbeat dev` flags on fs and returns the options
// they fill.
func Flags(fs *flag.FlagSet) *Options {
	o := &Options{}
	fs.StringVar(&o.Dir, "dir", ".data/dev", "state directory (NATS, SQLite, blobs, API and admin keys)")
	fs.IntVar(&o.NATSPort, "nats-port", 4222, "port of the embedded NATS server (-1: any free port)")
	fs.StringVar(&o.HTTPAddr, "http", "127.0.0.1:8080", "address of the API and the edge")
	fs.StringVar(&o.DatabaseURL, "database", "", "database URL (default sqlite://DIR/backbeat.db; postgres://… works too)")
	fs.DurationVar(&o.StallTimeout, "stall-timeout", 0, "a render without progress this long is stalled (default: the coordinator's, 2m)")
	fs.StringVar(&o.AlertWebhook, "alert-webhook", "", "chat webhook for alerts (Slack/Discord style)")
	fs.IntVar(&o.GCPercent, "gogc", DevGCPercent, "GOGC of this process, unless the environment sets GOGC (0: leave it)")
	return o
}

// Main runs `backbeat dev` until ctx is done.
func Main(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	opts := Flags(fs)
	level := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	// The root has no service: the stack names each service on its lines.
	root, err := logging.NewRoot(*level, "stderr")
	if err != nil {
		return err
	}
	opts.Log = root
	log := root.With(zap.String("service", "backbeat-dev"))
	st, err := Start(ctx, *opts)
	if err != nil {
		return fmt.Errorf("start dev stack: %w", err)
	}
	defer st.Stop()
	PrintBanner(os.Stderr, st)
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

// PrintBanner tells a newcomer where everything is.
func PrintBanner(w io.Writer, st *Stack) {
	fmt.Fprintf(w, `
Backbeat dev stack is up.
  API and edge   %s
  NATS           %s
  state          %s
  dev API key    %s  (also in %s/api-key)
  user           %s (bundle %s, %d credits)
  dashboard      %s/dashboard  (admin key %s, also in %s/admin-key)

Try:  backbeat submit song.wav --start 10 --end 25 --template spectrum --format square --title T --artist A --wait
`, st.BaseURL, st.NATS.ClientURL(), st.Opts.Dir, st.APIKey, st.Opts.Dir, DevUser, st.Opts.DevBundle, st.Opts.DevBalance,
		st.BaseURL, st.AdminKey, st.Opts.Dir)
	st.log.Info("dev stack ready", zap.String("api", st.BaseURL), zap.String("nats", st.NATS.ClientURL()))
}
