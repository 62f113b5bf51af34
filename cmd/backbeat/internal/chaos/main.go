// Command chaos runs Backbeat in its production shape (a three-node
// JetStream cluster from the shipped deployments/nats/nats.conf, every
// service its own process and NATS user, Postgres and MinIO), renders a
// baseline batch of videos, then one batch per fault while the fault is
// injected (a nats-server leader SIGKILLed, a renderer SIGKILLed mid-job,
// Postgres restarted, the coordinator restarted and killed), and checks that
// every video became ready exactly once, every balance is exact, no webhook
// was sent twice and nothing is left in flight. It prints a report with the
// latency each fault added. scripts/chaos.sh (make chaos) builds the
// binaries, starts Postgres and MinIO and runs it:
//
//	cd cmd/backbeat && go run ./internal/chaos -root ../.. -song song.wav
//
// It needs TEST_DATABASE_URL and TEST_S3_* (eval "$(scripts/services.sh env)")
// and exits 1 when a check fails, keeping its logs.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/workspace"
)

// options are the command-line settings.
type options struct {
	root, bin, natsServer, song string
	baseline, batch             int
	region                      float64
	stagger, readyTimeout       time.Duration
	keep                        bool
	pgRestart                   string
	report                      string
	// faults are the names of the fault phases to run.
	faults map[string]bool
}

func main() {
	var o options
	flag.StringVar(&o.root, "root", "", "repository root (default: found above the working directory)")
	flag.StringVar(&o.bin, "bin", "", "directory of the service binaries (default ROOT/bin)")
	flag.StringVar(&o.natsServer, "nats-server", "", "nats-server binary (default ROOT/.cache/bin/nats-server)")
	flag.StringVar(&o.song, "song", "", "WAV file to render (default: scripts/demo-song.sh makes one)")
	flag.IntVar(&o.baseline, "baseline", 5, "videos of the baseline phase (as many as a fault phase: the same queueing)")
	flag.IntVar(&o.batch, "batch", 5, "videos of each fault phase")
	flag.Float64Var(&o.region, "region", 2, "seconds of song per video")
	flag.DurationVar(&o.stagger, "stagger", time.Second, "time between two submissions of a phase")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 150*time.Second, "how long one video may take from creation to ready")
	flag.BoolVar(&o.keep, "keep", false, "keep the state and logs directory even on success")
	flag.StringVar(&o.pgRestart, "pg-restart", "pg_ctlcluster 15 main restart", "command that restarts Postgres")
	flag.StringVar(&o.report, "report", "", "also write the report to this file")
	only := flag.String("faults", strings.Join(faultNames(), ","), "fault phases to run, comma-separated")
	flag.Parse()
	o.faults = map[string]bool{}
	for _, f := range strings.Split(*only, ",") {
		if f = strings.TrimSpace(f); f != "" {
			o.faults[f] = true
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := o.defaults(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	os.Exit(run(ctx, o))
}

func (o *options) defaults() error {
	p, err := workspace.Paths{Root: o.root, Bin: o.bin, NATSServer: o.natsServer}.Resolve()
	if err != nil {
		return err
	}
	o.root, o.bin, o.natsServer = p.Root, p.Bin, p.NATSServer
	for _, v := range []string{"TEST_DATABASE_URL", "TEST_S3_ENDPOINT", "TEST_S3_ACCESS_KEY", "TEST_S3_SECRET_KEY"} {
		if os.Getenv(v) == "" {
			return fmt.Errorf("%s unset: eval \"$(scripts/services.sh env)\" first", v)
		}
	}
	for f := range o.faults {
		if !slices.Contains(faultNames(), f) {
			return fmt.Errorf("-faults: unknown fault %q (known: %s)", f, strings.Join(faultNames(), ", "))
		}
	}
	if o.baseline < 1 || o.batch < 2 {
		return errors.New("-baseline must be at least 1 and -batch at least 2")
	}
	return nil
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// logf prints a progress line on stderr with the time since start.
func logf(start time.Time, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> %6.1fs %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}
