package telemetry

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func serve(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
}

// TestMetricsOnTheOperationsPortOnly: with an operations port, /metrics is
// served there and answered 404 on the main port (the one a public Service
// exposes); health and readiness answer on both.
func TestMetricsOnTheOperationsPortOnly(t *testing.T) {
	s := New("test", zap.NewNop())
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.ListenOps("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	main, ops := "http://"+s.Addr(), "http://"+s.OpsAddr()
	if code, _ := get(t, main+"/metrics"); code != http.StatusNotFound {
		t.Errorf("main port /metrics: %d, want 404", code)
	}
	if code, body := get(t, ops+"/metrics"); code != http.StatusOK || len(body) == 0 {
		t.Errorf("ops port /metrics: %d", code)
	}
	for _, base := range []string{main, ops} {
		for _, p := range []string{"/healthz", "/readyz"} {
			if code, _ := get(t, base+p); code != http.StatusOK {
				t.Errorf("%s%s: %d", base, p, code)
			}
		}
	}
}

// TestMetricsOnTheMainPortWithoutOperationsPort: without one, everything
// stays on the main port, as `backbeat dev` and the tests use it.
func TestMetricsOnTheMainPortWithoutOperationsPort(t *testing.T) {
	s := New("test", zap.NewNop())
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	if code, _ := get(t, "http://"+s.Addr()+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics: %d, want 200", code)
	}
}
