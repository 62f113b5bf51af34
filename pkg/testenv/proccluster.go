package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ProcCluster is a JetStream cluster of nats-server processes on loopback,
// for faults an embedded server cannot have: a node SIGKILLed stops without
// handing its leaderships over.
type ProcCluster struct {
	t       testing.TB
	bin     string
	dir     string
	ports   []int
	routes  []string
	cmds    []*exec.Cmd
	clients []string
}

// NATSServerBinary is the nats-server that scripts/install-deps.sh builds
// (.cache/bin, the version pkg/go.mod embeds), else the one on PATH. It
// fails the test when there is none.
func NATSServerBinary(t testing.TB) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), ".cache", "bin", "nats-server")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	t.Fatal("nats-server binary missing: run scripts/install-deps.sh (make test does)")
	return ""
}

// NATSProcCluster starts n nats-server processes clustered on loopback,
// killed in t.Cleanup.
func NATSProcCluster(t testing.TB, n int) *ProcCluster {
	t.Helper()
	c := &ProcCluster{t: t, bin: NATSServerBinary(t), dir: t.TempDir(), ports: freePorts(t, 2*n), cmds: make([]*exec.Cmd, n)}
	for i := 0; i < n; i++ {
		c.routes = append(c.routes, fmt.Sprintf("nats://127.0.0.1:%d", c.ports[n+i]))
		c.clients = append(c.clients, fmt.Sprintf("nats://127.0.0.1:%d", c.ports[i]))
	}
	t.Cleanup(func() {
		for i := range c.cmds {
			c.Kill(i)
		}
	})
	for i := 0; i < n; i++ {
		c.Start(i)
	}
	return c
}

// URLs is the client URL list of every node.
func (c *ProcCluster) URLs() string { return strings.Join(c.clients, ",") }

// Name of node i (its server_name).
func (c *ProcCluster) Name(i int) string { return fmt.Sprintf("n%d", i) }

// Start (re)starts node i on its ports and store directory and waits until
// it accepts connections.
func (c *ProcCluster) Start(i int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, "-js", "-n", c.Name(i), "-a", "127.0.0.1", "-p", fmt.Sprint(c.ports[i]),
		"--cluster_name", "test", "--cluster", c.routes[i], "--routes", strings.Join(c.routes, ","),
		"-sd", filepath.Join(c.dir, c.Name(i)))
	logf, err := os.OpenFile(filepath.Join(c.dir, c.Name(i)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("nats-server log: %v", err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start nats-server %s: %v", c.Name(i), err)
	}
	c.cmds[i] = cmd
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.ports[i]), time.Second)
		if err == nil {
			_ = conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nats-server %s not accepting connections in 15s (log: %s)", c.Name(i), filepath.Join(c.dir, c.Name(i)+".log"))
		}
	}
}

// Kill SIGKILLs node i: no lame duck, no leadership hand-over.
func (c *ProcCluster) Kill(i int) {
	if cmd := c.cmds[i]; cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		c.cmds[i] = nil
	}
}
