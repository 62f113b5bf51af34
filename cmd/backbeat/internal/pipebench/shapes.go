package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"gorm.io/gorm"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/cli"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/natsconf"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/proc"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/scratch"
	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/store"
	coordinator "github.com/backbeat/backbeat/services/render-coordinator"
)

// Shapes the pipeline is measured in.
const (
	// ShapeDevSQLite is `backbeat dev`'s: one process, an embedded
	// nats-server, the coordinator in-process on SQLite, a local blob folder.
	ShapeDevSQLite = "dev-sqlite"
	// ShapeDevPostgres is the same on a fresh Postgres database.
	ShapeDevPostgres = "dev-postgres"
	// ShapeProd is the production shape: nats-server from the shipped
	// nats.conf and accounts.conf (one node), the render-coordinator binary
	// as its own process and NATS user on a fresh Postgres database, MinIO.
	ShapeProd = "prod"
)

// pools are the render pools of the topology (the pro bundle's).
var pools = []string{"gpu", "cpu"}

// stack is one shape brought up: NATS with the topology, the database, the
// blob store and the coordinator, and the harness's own connection (the
// admin user in prod) that publishes the creates and follows the bus.
type stack struct {
	shape string
	dir   string
	nc    *nats.Conn
	js    jetstream.JetStream
	pub   *bus.Publisher
	store *store.Store
	blob  blob.Store
	// statements counts the SQL statements run on store (dev shapes, where
	// the coordinator shares it; 0 in prod).
	statements atomic.Int64
	// cpu reads the CPU time used so far by the parts the report names:
	// "coordinator" and "nats-server" in prod (their processes), "process"
	// in the dev shapes (the harness process: coordinator, NATS and stubs).
	cpu map[string]func() time.Duration
	// conn gives a stub worker its connection by bus.Service* name.
	conn    func(service string) (workerConn, error)
	closers []func() error
}

// onClose adds a step to close, run in reverse order.
func (s *stack) onClose(f func() error) { s.closers = append(s.closers, f) }

// close stops the coordinator and NATS, drops the data and removes the
// directory (unless keep).
func (s *stack) close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// startStack brings up a shape in a new directory under o.tmp.
func startStack(ctx context.Context, o options, shape string) (_ *stack, err error) {
	dir, err := os.MkdirTemp(o.tmp, "pipebench-"+shape+"-")
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	s := &stack{shape: shape, dir: dir, cpu: map[string]func() time.Duration{}}
	s.onClose(func() error {
		if o.keep {
			return nil
		}
		return os.RemoveAll(dir)
	})
	defer func() {
		if err != nil {
			_ = s.close()
		}
	}()
	switch shape {
	case ShapeDevSQLite:
		err = s.startDev(ctx, o, "sqlite://"+filepath.Join(dir, "backbeat.db"))
	case ShapeDevPostgres:
		var d *scratch.Data
		d, err = scratch.New(ctx, "pipebench")
		if d != nil {
			s.onClose(d.Drop)
		}
		if err == nil {
			err = s.startDev(ctx, o, d.DBURL)
		}
	case ShapeProd:
		err = s.startProd(ctx, o)
	default:
		err = fmt.Errorf("unknown shape %q", shape)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", shape, err)
	}
	return s, nil
}

// startDev is `backbeat dev` without its workers (cmd/backbeat/internal/
// devstack): an embedded JetStream server whose topology the process
// ensures, one shared connection, the coordinator in-process.
func (s *stack) startDev(ctx context.Context, o options, dsn string) error {
	ns, err := server.NewServer(&server.Options{ServerName: "pipebench", Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(s.dir, "nats"), NoLog: true, NoSigs: true})
	if err != nil {
		return fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	s.onClose(func() error { ns.Shutdown(); ns.WaitForShutdown(); return nil })
	if !ns.ReadyForConnections(15 * time.Second) {
		return errors.New("embedded nats-server not ready after 15s")
	}
	if s.nc, err = nats.Connect(ns.ClientURL(), nats.Name("pipebench")); err != nil {
		return fmt.Errorf("connect embedded nats: %w", err)
	}
	s.onClose(func() error { s.nc.Close(); return nil })
	if s.js, err = jetstream.New(s.nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	topo := bus.DefaultTopology(bus.DefaultPrefix, pools)
	if err := topo.Ensure(ctx, s.js); err != nil {
		return err
	}
	if err := s.openData(ctx, dsn, ""); err != nil {
		return err
	}
	if err := s.countStatements(); err != nil {
		return err
	}
	s.cpu["process"] = processCPU
	runs, err := bus.OpenRuns(ctx, s.js)
	if err != nil {
		return err
	}
	s.pub = bus.NewPublisher(s.js, topo.Subjects)
	wc := workerConn{js: s.js, pub: s.pub, runs: runs}
	s.conn = func(string) (workerConn, error) { return wc, nil }
	log, err := logging.NewFile("render-coordinator", "info", filepath.Join(s.dir, "render-coordinator.log"))
	if err != nil {
		return err
	}
	co, err := coordinator.New(coordinator.Config{Concurrency: o.coordinatorConcurrency},
		coordinator.Deps{Name: "pipebench", Store: s.store, Pub: s.pub, Runs: runs, Blob: s.blob, Log: log, Topo: topo})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- co.Run(cctx, s.js) }()
	s.onClose(func() error {
		cancel()
		err := <-done
		_ = log.Sync()
		if err != nil {
			return fmt.Errorf("coordinator: %w", err)
		}
		return nil
	})
	return nil
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countStatements counts every statement gorm runs on the store.
func (s *stack) countStatements() error {
	count := func(*gorm.DB) { s.statements.Add(1) }
	cb := s.store.DB.Callback()
	return errors.Join(
		cb.Create().After("gorm:create").Register("pipebench:count", count),
		cb.Query().After("gorm:query").Register("pipebench:count", count),
		cb.Update().After("gorm:update").Register("pipebench:count", count),
		cb.Delete().After("gorm:delete").Register("pipebench:count", count),
		cb.Row().After("gorm:row").Register("pipebench:count", count),
		cb.Raw().After("gorm:raw").Register("pipebench:count", count))
}

// openData opens the database (migrating it) and the blob store: a local
// folder when blobURL is empty.
func (s *stack) openData(ctx context.Context, dsn, blobURL string) error {
	var err error
	if s.store, err = store.Open(ctx, dsn); err != nil {
		return err
	}
	s.onClose(s.store.Close)
	if blobURL == "" {
		s.blob, err = blob.NewLocal(filepath.Join(s.dir, "blob"))
	} else {
		s.blob, err = blob.Open(ctx, blobURL)
	}
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	return nil
}

// startProd runs nats-server and the render-coordinator binary as their own
// processes, each service as its own NATS user, on a fresh database and
// bucket.
func (s *stack) startProd(ctx context.Context, o options) error {
	d, err := scratch.New(ctx, "pipebench")
	if d != nil {
		s.onClose(d.Drop)
	}
	if err != nil {
		return err
	}
	passwords := map[string]string{}
	for _, u := range natsconf.Users {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		passwords[u] = "pipebench-" + u + "-" + hex.EncodeToString(b)
	}
	conf, err := natsconf.Node(o.root, s.dir, "nats-0", filepath.Join(s.dir, "nats-0"), true)
	if err != nil {
		return err
	}
	ports, err := proc.FreePorts(3)
	if err != nil {
		return err
	}
	ns := &proc.Proc{Name: "nats-0",
		Argv: []string{o.natsServer, "-c", conf, "-a", "127.0.0.1", "-p", fmt.Sprint(ports[0]), "-m", fmt.Sprint(ports[1]),
			"-P", filepath.Join(s.dir, "nats-0.pid")},
		Env: append([]string{"POD_NAME=nats-0"}, natsconf.PasswordEnv(passwords)...),
		Log: proc.LogPath(s.dir, "nats-0")}
	if err := ns.Start(); err != nil {
		return err
	}
	s.onClose(func() error { return ns.Stop(10 * time.Second) })
	s.cpu["nats-server"] = ns.CPU
	url := fmt.Sprintf("nats://127.0.0.1:%d", ports[0])
	connect := func(user string) (*nats.Conn, jetstream.JetStream, error) {
		return bus.Connect(url, bus.Credentials{User: user, Password: passwords[user]}, "pipebench-"+user, zap.NewNop())
	}
	for i := 0; ; i++ {
		if s.nc, s.js, err = connect("admin"); err == nil {
			break
		}
		if i == 100 || !ns.Running() {
			return fmt.Errorf("nats-server (see %s): %w", ns.Log, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.onClose(func() error { s.nc.Close(); return nil })
	for i := 0; ; i++ {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.js.AccountInfo(actx)
		cancel()
		if err == nil {
			break
		}
		if i == 100 {
			return fmt.Errorf("jetstream not available: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// `backbeat provision`, as the admin user, in-process.
	var out bytes.Buffer
	env := map[string]string{"BACKBEAT_NATS_URL": url, "BACKBEAT_NATS_USER": "admin", "BACKBEAT_NATS_PASSWORD": passwords["admin"],
		"BACKBEAT_POOLS": "gpu,cpu"}
	if err := cli.Provision(ctx, cli.Env{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return env[k] }}, nil); err != nil {
		return fmt.Errorf("backbeat provision: %w: %s", err, out.String())
	}
	s.pub = bus.NewPublisher(s.js, bus.Subjects{Prefix: bus.DefaultPrefix})
	if err := s.openData(ctx, d.DBURL, d.BlobURL); err != nil {
		return err
	}
	co := &proc.Proc{Name: "render-coordinator", Argv: []string{filepath.Join(o.bin, "render-coordinator")},
		Env: []string{"BACKBEAT_NATS_URL=" + url, "BACKBEAT_NATS_USER=coordinator", "BACKBEAT_NATS_PASSWORD=" + passwords["coordinator"],
			"BACKBEAT_BLOB_URL=" + d.BlobURL, "BACKBEAT_DATABASE_URL=" + d.DBURL, "BACKBEAT_LOG_LEVEL=info",
			fmt.Sprintf("BACKBEAT_HTTP_ADDR=127.0.0.1:%d", ports[2]), "BACKBEAT_WORKER_NAME=pipebench-coordinator",
			fmt.Sprintf("BACKBEAT_COORDINATOR_CONCURRENCY=%d", o.coordinatorConcurrency)},
		Log: proc.LogPath(s.dir, "render-coordinator"), Addr: fmt.Sprintf("127.0.0.1:%d", ports[2])}
	if err := co.Start(); err != nil {
		return err
	}
	s.onClose(func() error { return co.Stop(15 * time.Second) })
	s.cpu["coordinator"] = co.CPU
	if err := co.WaitReady(ctx, 60*time.Second); err != nil {
		return err
	}
	var mu sync.Mutex
	conns := map[string]workerConn{}
	s.conn = func(service string) (workerConn, error) {
		user := map[string]string{bus.ServiceRenderer: "renderer"}[service]
		if user == "" {
			user = service
		}
		mu.Lock()
		defer mu.Unlock()
		if c, ok := conns[user]; ok {
			return c, nil
		}
		nc, js, err := connect(user)
		if err != nil {
			return workerConn{}, err
		}
		s.onClose(func() error { nc.Close(); return nil })
		runs, err := bus.OpenRuns(ctx, js)
		if err != nil {
			return workerConn{}, err
		}
		c := workerConn{js: js, pub: bus.NewPublisher(js, bus.Subjects{Prefix: bus.DefaultPrefix}), runs: runs}
		conns[user] = c
		return c, nil
	}
	return nil
}
