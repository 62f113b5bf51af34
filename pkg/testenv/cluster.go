package testenv

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of embedded nats-servers on loopback, whose
// nodes a test can stop and start again on the same store directory.
type Cluster struct {
	t       testing.TB
	Nodes   []*server.Server
	opts    []*server.Options
	clients []string
}

// NATSCluster starts n clustered JetStream servers (n ≥ 3 for R3 streams),
// shut down in t.Cleanup.
func NATSCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 2*n)
	var routes []string
	for i := 0; i < n; i++ {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]))
	}
	c := &Cluster{t: t}
	for i := 0; i < n; i++ {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: ports[i],
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprint(i)), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[n+i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		c.opts = append(c.opts, o)
		c.clients = append(c.clients, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
		c.Nodes = append(c.Nodes, nil)
	}
	for i := range c.opts {
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Stop(i)
		}
	})
	return c
}

// URLs is the client URL list of every node.
func (c *Cluster) URLs() string { return strings.Join(c.clients, ",") }

// Stop shuts node i down.
func (c *Cluster) Stop(i int) {
	if s := c.Nodes[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Nodes[i] = nil
	}
}

// Start (re)starts node i on its ports and store directory.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("nats-server n%d: %v", i, err)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		c.t.Fatalf("nats-server n%d not ready in 15s", i)
	}
	c.Nodes[i] = s
}

// freePorts returns n ports the kernel had free on 127.0.0.1.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}
