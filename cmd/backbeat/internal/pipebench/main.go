// Command pipebench measures the pipeline's own overhead: the real
// render-coordinator with stub workers that do no media work (real bus.Step
// workers whose Work writes placeholder objects), so that what create →
// ready costs beyond the workers' busy time is the pipeline's. It keeps N
// videos in flight at several levels, in the dev shape (one process,
// embedded NATS, SQLite or Postgres, a local blob folder) and the production
// shape (nats-server from the shipped config, the render-coordinator binary
// on Postgres, MinIO), and prints Markdown tables: overhead p50/p99, job
// pickup, the coordinator's events/s and videos/s, and where the time goes.
// With -real it also renders a real video on `backbeat dev` and reports the
// overhead around each worker's busy time. scripts/bench/pipeline.sh builds
// the coordinator and runs it:
//
//	cd cmd/backbeat && go run ./internal/pipebench -root ../.. -levels 1,10 -runs 1
//
// The prod and dev-postgres shapes need TEST_DATABASE_URL and TEST_S3_*
// (eval "$(scripts/services.sh env)").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/scratch"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/workspace"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
)

// options are the command-line settings.
type options struct {
	root, bin, natsServer, tmp string
	shapes                     []string
	levels                     []int
	// videos, when set, is the count of every level; else
	// max(minVideos, factor × in flight).
	videos, minVideos, factor int
	runs                      int
	workerConcurrency         int
	coordinatorConcurrency    int
	region                    float64
	timeout                   time.Duration
	keep                      bool
	// deadline, when set, ends the whole run (cleaning up) after it.
	deadline time.Duration
	out      string
	// cpuProfile, when set, receives a CPU profile of the whole run (in
	// the dev shapes it covers the coordinator, NATS and the stubs).
	cpuProfile string
	// real renders realVideos real videos of realSong on `backbeat dev`.
	real       bool
	realSong   string
	realVideos int
}

// videosFor is the number of videos of a level.
func (o options) videosFor(inflight int) int {
	if o.videos > 0 {
		return o.videos
	}
	return max(o.minVideos, o.factor*inflight)
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipebench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.deadline)
		defer cancel()
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "pipebench: cpu profile:", err)
			os.Exit(2)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	report, err := run(ctx, o)
	fmt.Print(report)
	if o.out != "" && report != "" {
		if werr := os.WriteFile(o.out, []byte(report), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "pipebench: write report:", werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipebench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("pipebench", flag.ContinueOnError)
	fs.StringVar(&o.root, "root", "", "repository root (default: found above the working directory)")
	fs.StringVar(&o.bin, "bin", "", "directory holding the render-coordinator binary (default ROOT/bin)")
	fs.StringVar(&o.natsServer, "nats-server", "", "nats-server binary (default ROOT/.cache/bin/nats-server)")
	fs.StringVar(&o.tmp, "tmp", os.TempDir(), "where each run's state directory is made")
	shapes := fs.String("shapes", strings.Join([]string{ShapeDevSQLite, ShapeDevPostgres, ShapeProd}, ","), "shapes to measure, comma-separated")
	levels := fs.String("levels", "1,10,100,1000", "videos in flight, comma-separated")
	fs.IntVar(&o.videos, "videos", 0, "videos per level (default max(-min-videos, -factor × in flight))")
	fs.IntVar(&o.minVideos, "min-videos", 40, "fewest videos of a level")
	fs.IntVar(&o.factor, "factor", 2, "videos per level as a multiple of those in flight")
	fs.IntVar(&o.runs, "runs", 3, "runs per shape and level (a fresh stack each)")
	fs.IntVar(&o.workerConcurrency, "worker-concurrency", 16, "jobs at a time of each stub worker")
	fs.IntVar(&o.coordinatorConcurrency, "coordinator-concurrency", 0, "the coordinator's event concurrency (0: its default)")
	fs.Float64Var(&o.region, "region", 10, "seconds of song per video")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long one video may take from create to ready")
	fs.DurationVar(&o.deadline, "deadline", 0, "stop the whole run, cleaning up, after this long (0: no limit)")
	fs.BoolVar(&o.keep, "keep", false, "keep each run's state directory (logs, SQLite, NATS)")
	fs.StringVar(&o.out, "out", "", "also write the report to this file")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	fs.BoolVar(&o.real, "real", false, "also render real videos on `backbeat dev` and report the overhead per step")
	fs.StringVar(&o.realSong, "real-song", "", "WAV file of the real run (default: scripts/demo-song.sh makes one)")
	fs.IntVar(&o.realVideos, "real-videos", 2, "videos of the real run, one at a time")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, s := range strings.Split(*shapes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains([]string{ShapeDevSQLite, ShapeDevPostgres, ShapeProd}, s) {
			return o, fmt.Errorf("-shapes: unknown shape %q", s)
		}
		o.shapes = append(o.shapes, s)
	}
	for _, l := range strings.Split(*levels, ",") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return o, fmt.Errorf("-levels: %q is not a positive count", l)
		}
		o.levels = append(o.levels, n)
	}
	if o.runs < 1 || o.workerConcurrency < 1 || o.region <= 0 {
		return o, errors.New("-runs, -worker-concurrency and -region must be positive")
	}
	return o, o.defaults()
}

func (o *options) defaults() error {
	p, err := workspace.Paths{Root: o.root, Bin: o.bin, NATSServer: o.natsServer}.Resolve()
	if err != nil {
		return err
	}
	o.root, o.bin, o.natsServer = p.Root, p.Bin, p.NATSServer
	if slices.Contains(o.shapes, ShapeDevPostgres) || slices.Contains(o.shapes, ShapeProd) {
		if err := scratch.CheckEnv(); err != nil {
			return err
		}
	}
	return nil
}

// run measures every shape, level and run and returns the report.
func run(ctx context.Context, o options) (string, error) {
	h := header{date: time.Now(), loadBefore: workspace.LoadAvg(), fsync: "n/a", o: o}
	if slices.Contains(o.shapes, ShapeDevPostgres) || slices.Contains(o.shapes, ShapeProd) {
		h.fsync = pgFsync(ctx)
	}
	var all []*series
	var errs []error
	for _, shape := range o.shapes {
		for _, c := range o.levels {
			s := &series{shape: shape, level: level{inflight: c, videos: o.videosFor(c)}}
			for r := 1; r <= o.runs && ctx.Err() == nil; r++ {
				logf("%s: %d in flight, %d videos, run %d/%d", shape, c, s.level.videos, r, o.runs)
				res, err := runOnce(ctx, o, shape, s.level, fmt.Sprintf("pb%d-%d", c, r))
				if err != nil {
					errs = append(errs, fmt.Errorf("%s, %d in flight, run %d: %w", shape, c, r, err))
					logf("  failed: %v", err)
					continue
				}
				p := reduce(res)
				logf("  overhead p50 %.1f ms p99 %.1f ms, %.0f events/s, %.1f videos/s", p.overheadP50, p.overheadP99, p.eventsPerSec, p.videosPerSec)
				s.points = append(s.points, p)
			}
			if len(s.points) > 0 {
				all = append(all, s)
			}
		}
	}
	h.loadAfter = workspace.LoadAvg()
	report := ""
	if len(all) > 0 {
		report = render(h, all)
	}
	if o.real && ctx.Err() == nil {
		text, err := realRun(ctx, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("real run: %w", err))
		}
		report += text
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return report, errors.Join(errs...)
}

// runOnce brings up a fresh stack of shape, starts the stub workers, warms
// up with two videos, measures one level and tears everything down.
func runOnce(ctx context.Context, o options, shape string, lv level, tag string) (_ *levelResult, err error) {
	st, err := startStack(ctx, o, shape)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := st.close(); cerr != nil && err == nil {
			err = fmt.Errorf("tear down: %w", cerr)
		}
	}()
	tr := newTrace(bus.Subjects{Prefix: bus.DefaultPrefix})
	unsub, err := tr.subscribe(st.nc)
	if err != nil {
		return nil, err
	}
	defer unsub()
	users, err := seedUsers(ctx, st.store, min(lv.inflight, 1000))
	if err != nil {
		return nil, err
	}
	log, err := logging.NewFile("pipebench-stubs", "info", filepath.Join(st.dir, "stubs.log"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = log.Sync() }()
	sctx, cancel := context.WithCancel(ctx)
	stubErr := make(chan error, 1)
	go func() {
		sb := &stubs{blob: st.blob, trace: tr, pools: pools, log: log}
		stubErr <- sb.run(sctx, o.workerConcurrency, st.conn)
	}()
	defer func() {
		cancel()
		if serr := <-stubErr; serr != nil && err == nil {
			err = fmt.Errorf("stub workers: %w", serr)
		}
	}()
	if _, err := load(ctx, st, tr, users, level{inflight: 1, videos: 2}, tag+"-warm", o.region, o.timeout); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	res, err := load(ctx, st, tr, users, lv, tag, o.region, o.timeout)
	if o.keep {
		if derr := tr.dump(filepath.Join(st.dir, "trace.jsonl")); derr != nil {
			logf("  %v", derr)
		}
		logf("  kept %s", st.dir)
	}
	return res, err
}

// pgFsync is Postgres's fsync setting (SHOW fsync) on TEST_DATABASE_URL.
func pgFsync(ctx context.Context) string {
	conn, err := pgx.Connect(ctx, os.Getenv("TEST_DATABASE_URL"))
	if err != nil {
		return "?"
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&v); err != nil {
		return "?"
	}
	return v
}

// numCPU is the number of CPUs the process may use.
func numCPU() int { return runtime.NumCPU() }

// logf prints a progress line on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
