package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/proc"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/scratch"
)

// stack is everything the run starts: the database, the bucket, the NATS
// cluster and the services.
type stack struct {
	o         options
	dir       string
	start     time.Time
	passwords map[string]string
	adminKey  string

	data *scratch.Data

	nats     *cluster
	admin    *admin
	sink     *webhookSink
	services map[string]*proc.Proc
	order    []string
}

// setupData creates a fresh database and names a fresh bucket (blob.Open
// creates it on first use).
func (s *stack) setupData(ctx context.Context) error {
	d, err := scratch.New(ctx, "chaos")
	s.data = d
	return err
}

// dropData drops the database and the bucket.
func (s *stack) dropData() error {
	if s.data == nil {
		return nil
	}
	return s.data.Drop()
}

// startNATS starts the three nodes, waits for JetStream and provisions the
// topology with `backbeat provision --replicas 3` as admin.
func (s *stack) startNATS(ctx context.Context) error {
	c, err := newCluster(s.o.root, s.dir, s.o.natsServer, s.passwords)
	if err != nil {
		return err
	}
	s.nats = c
	for _, n := range c.nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	// The nodes take a moment to listen.
	var a *admin
	for i := 0; ; i++ {
		if a, err = connectAdmin(c.urls, s.passwords["admin"]); err == nil {
			break
		}
		if i == 100 {
			return err
		}
		for _, n := range c.nodes {
			if !n.Running() {
				return fmt.Errorf("%s exited (see %s)", n.Name, n.Log)
			}
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	s.admin = a
	if err := a.waitJetStream(ctx, 60*time.Second); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(s.o.bin, "backbeat"), "provision", "--replicas", "3")
	cmd.Env = append(os.Environ(), "BACKBEAT_NATS_URL="+c.urls, "BACKBEAT_NATS_USER=admin",
		"BACKBEAT_NATS_PASSWORD="+s.passwords["admin"])
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(s.dir, "provision.out"), out, 0o644)
	if err != nil {
		return fmt.Errorf("backbeat provision --replicas 3: %w: %s", err, lastLines(string(out), 5))
	}
	return nil
}

// natsUser is the NATS user a service binary connects as.
func natsUser(bin string) string {
	switch bin {
	case "render-coordinator":
		return "coordinator"
	case "gpu-renderer":
		return "renderer"
	}
	return bin
}

// addService prepares (does not start) a service process NAME running
// binary BIN with the shared settings, its own NATS user, a fixed HTTP port
// (so a restart keeps its address) and extra variables.
func (s *stack) addService(name, bin string, port int, extra ...string) *proc.Proc {
	user := natsUser(bin)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := &proc.Proc{
		Name: name,
		Argv: []string{filepath.Join(s.o.bin, bin)},
		Env: append([]string{
			"BACKBEAT_NATS_URL=" + s.nats.urls,
			"BACKBEAT_NATS_USER=" + user,
			"BACKBEAT_NATS_PASSWORD=" + s.passwords[user],
			"BACKBEAT_BLOB_URL=" + s.data.BlobURL,
			"BACKBEAT_HTTP_ADDR=" + addr,
			"BACKBEAT_LOG_LEVEL=info",
			"BACKBEAT_WORKER_NAME=" + name,
			"TMPDIR=" + filepath.Join(s.dir, "tmp"),
		}, extra...),
		Log:  proc.LogPath(s.dir, name),
		Addr: addr,
	}
	s.services[name] = p
	s.order = append(s.order, name)
	return p
}

// startServices starts every service, the cdn and the api first (the
// coordinator builds public URLs from the cdn's address).
func (s *stack) startServices(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(s.dir, "tmp"), 0o755); err != nil {
		return fmt.Errorf("tmp dir: %w", err)
	}
	ports, err := proc.FreePorts(7)
	if err != nil {
		return err
	}
	db := "BACKBEAT_DATABASE_URL=" + s.data.DBURL
	cdn := s.addService("cdn", "cdn", ports[0], "BACKBEAT_CDN_CACHE_DIR="+filepath.Join(s.dir, "edge-cache"),
		"BACKBEAT_CDN_CACHE_MAX_MB=256")
	s.addService("api", "api", ports[1], db, "BACKBEAT_API_ADMIN_KEY="+s.adminKey)
	s.addService("render-coordinator", "render-coordinator", ports[2], db, "BACKBEAT_EDGE_BASE_URL=http://"+cdn.Addr,
		"BACKBEAT_STALL_TIMEOUT=2m", "BACKBEAT_NOTIFY_WEBHOOK="+s.sink.url())
	s.addService("audio", "audio", ports[3])
	// Debug level: the renderers log "ffmpeg started" when a render begins,
	// the signal the renderer fault waits for.
	s.addService("renderer-gpu", "gpu-renderer", ports[4], "BACKBEAT_RENDER_POOL=gpu", "BACKBEAT_LOG_LEVEL=debug")
	s.addService("renderer-cpu", "gpu-renderer", ports[5], "BACKBEAT_RENDER_POOL=cpu", "BACKBEAT_LOG_LEVEL=debug")
	s.addService("thumbnail", "thumbnail", ports[6])
	for _, group := range [][]string{{"cdn", "api"}, {"render-coordinator", "audio", "renderer-gpu", "renderer-cpu", "thumbnail"}} {
		for _, name := range group {
			if err := s.services[name].Start(); err != nil {
				return err
			}
		}
		for _, name := range group {
			if err := s.services[name].WaitReady(ctx, 60*time.Second); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopAll stops the services (SIGTERM, then SIGKILL after 15 s) and then the
// NATS nodes, and returns the services that did not exit 0.
func (s *stack) stopAll() []error {
	var errs []error
	for i := len(s.order) - 1; i >= 0; i-- {
		if err := s.services[s.order[i]].Stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if s.admin != nil {
		s.admin.nc.Close()
	}
	if s.nats != nil {
		for _, n := range s.nats.nodes {
			_ = n.Stop(5 * time.Second)
		}
	}
	if s.sink != nil {
		s.sink.close()
	}
	return errs
}

// lastLines is the last n lines of text, on one line.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
