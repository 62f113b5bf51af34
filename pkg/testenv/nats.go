// Package testenv starts and connects the real parts integration tests need:
// an embedded JetStream server per test, an isolated Postgres schema, a fresh
// MinIO bucket, ffmpeg. Missing services fail the test with a clear message;
// they never skip it.
package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backbeat/backbeat/pkg/bus"
)

// Pools used by test topologies.
var Pools = []string{"gpu", "cpu"}

// NATSServer starts an embedded nats-server with JetStream on a random port,
// storing in t.TempDir(), shut down in t.Cleanup.
func NATSServer(t testing.TB) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready in 10s")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Connect dials s and returns a connection closed in t.Cleanup.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Topology is the default topology for tests (file storage, like production).
func Topology() bus.Topology {
	return bus.DefaultTopology(bus.DefaultPrefix, Pools)
}

// NATS starts an embedded server, creates the Backbeat topology and returns a
// JetStream context and its connection.
func NATS(t testing.TB) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	s := NATSServer(t)
	nc, js := Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Topology().Ensure(ctx, js); err != nil {
		t.Fatalf("ensure topology: %v", err)
	}
	return js, nc
}
