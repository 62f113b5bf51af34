package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/backbeat/backbeat/pkg/bus"
)

// NATSUsers are the users of deployments/nats/accounts.conf.
var NATSUsers = []string{"coordinator", "api", "audio", "renderer", "cdn", "thumbnail", "admin", "sys"}

// ShippedNATS is a nats-server running the configuration Kubernetes runs,
// deployments/nats/nats.conf with its accounts.conf, as one node.
type ShippedNATS struct {
	Server *server.Server
	URL    string
	// Passwords of every user, random per test, given to the server
	// through the NATS_PASSWORD_<USER> variables the files read.
	Passwords map[string]string
}

// RepoRoot is the repository's root directory (where go.work is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: no caller information")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: go.work not found above " + file)
		}
		dir = parent
	}
}

// StartShippedNATS starts nats-server from the shipped nats.conf. The only
// overrides are those that make one node of the 3-node cluster run alone on
// loopback: no cluster block or routes, a random client port, no monitoring
// port, no pid file and a temporary store directory.
func StartShippedNATS(t testing.TB) *ShippedNATS {
	t.Helper()
	s := &ShippedNATS{Passwords: map[string]string{}}
	for _, u := range NATSUsers {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		s.Passwords[u] = hex.EncodeToString(b)
		setenv(t, "NATS_PASSWORD_"+strings.ToUpper(u), s.Passwords[u])
	}
	setenv(t, "POD_NAME", "nats-test")
	opts, err := server.ProcessConfigFile(filepath.Join(RepoRoot(t), "deployments", "nats", "nats.conf"))
	if err != nil {
		t.Fatalf("the shipped nats.conf does not load: %v", err)
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.HTTPHost, opts.HTTPPort = "", 0
	opts.Cluster = server.ClusterOpts{}
	opts.Routes = nil
	opts.StoreDir = t.TempDir()
	opts.PidFile = ""
	opts.NoLog, opts.NoSigs = true, true
	s.Server, err = server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server with the shipped config: %v", err)
	}
	go s.Server.Start()
	if !s.Server.ReadyForConnections(15 * time.Second) {
		t.Fatal("nats-server with the shipped config not ready in 15s")
	}
	t.Cleanup(func() {
		s.Server.Shutdown()
		s.Server.WaitForShutdown()
	})
	s.URL = s.Server.ClientURL()
	return s
}

// Creds are a user's credentials on s.
func (s *ShippedNATS) Creds(user string) bus.Credentials {
	return bus.Credentials{User: user, Password: s.Passwords[user]}
}

// setenv is t.Setenv for testing.TB.
func setenv(t testing.TB, k, v string) {
	t.Helper()
	if tt, ok := t.(interface{ Setenv(string, string) }); ok {
		tt.Setenv(k, v)
		return
	}
	old, had := os.LookupEnv(k)
	_ = os.Setenv(k, v)
	t.Cleanup(func() {
		if had {
			_ = os.Setenv(k, old)
		} else {
			_ = os.Unsetenv(k)
		}
	})
}
