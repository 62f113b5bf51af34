// Package dashtest drives the operators' dashboard in headless Chromium
// against a whole dev stack (devstack.Start: an embedded nats-server, SQLite,
// a blob folder and real ffmpeg renders), as an operator would use it.
package dashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/devstack"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/testenv"
	"github.com/backbeat/backbeat/services/api"
	renderer "github.com/backbeat/backbeat/services/gpu-renderer"
	coordinator "github.com/backbeat/backbeat/services/render-coordinator"
)

// stack is a dev stack with a switch that makes every render fail.
type stack struct {
	t     *testing.T
	st    *devstack.Stack
	fail  atomic.Bool
	tone  string
	httpc *http.Client
}

func start(t *testing.T) *stack {
	t.Helper()
	testenv.RequireFFmpeg(t)
	s := &stack{t: t, httpc: &http.Client{Timeout: 60 * time.Second}}
	var logs bytes.Buffer
	log, err := logging.NewTo("warn", zapcore.Lock(zapcore.AddSync(&logs)))
	require.NoError(t, err)
	bundles := map[string]coordinator.Bundle{
		"test": {Name: "test", CRF: 23, Preset: "ultrafast", FPS: 30, Priority: bus.PrioNormal, Pools: []string{"gpu", "cpu"},
			MaxRegionSeconds: 60, Concurrency: 2, UnitSeconds: 10, Encoder: "libx264"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// `backbeat dev` as it runs, on SQLite, with a fast bundle and a fault
	// switch in every renderer; frames are slowed so progress can be seen.
	st, err := devstack.Start(ctx, devstack.Options{
		Dir: t.TempDir(), NATSPort: -1, HTTPAddr: "127.0.0.1:0", Log: log,
		Bundles: bundles, DevBundle: "test", DevBalance: 100,
		Renderer: func(pool string, cfg *renderer.Config) {
			cfg.BeforeFrame = func(ctx context.Context, frame int) error {
				if s.fail.Load() && frame == 3 {
					return errors.New("GPU fell off the bus (injected)")
				}
				select {
				case <-time.After(40 * time.Millisecond):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		st.Stop()
		if t.Failed() {
			t.Logf("service warnings and errors:\n%s", logs.String())
		}
	})
	s.st = st
	s.tone = testenv.Tone(t, t.TempDir(), 4)
	return s
}

// api calls the API as the dev user.
func (s *stack) api(method, path string, body io.Reader, contentType string, out any) int {
	s.t.Helper()
	req, err := http.NewRequest(method, s.st.BaseURL+path, body)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+s.st.APIKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.httpc.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		require.NoError(s.t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// submit uploads the tone and creates a video of it, as an app would.
func (s *stack) submit(vid string, end float64) {
	s.t.Helper()
	f, err := os.Open(s.tone)
	require.NoError(s.t, err)
	defer f.Close()
	var up api.UploadResponse
	require.Equal(s.t, http.StatusCreated, s.api("POST", "/v1/uploads?video_id="+vid+"&kind=audio", f, "application/octet-stream", &up))
	body, err := json.Marshal(api.CreateRequest{VideoID: vid, AudioKey: up.Key, StartSeconds: 0, EndSeconds: end,
		Template: "spectrum", Format: "square", Title: "Dashboard", Artist: "Backbeat"})
	require.NoError(s.t, err)
	require.Equal(s.t, http.StatusAccepted, s.api("POST", "/v1/videos", bytes.NewReader(body), "application/json", nil))
}

func (s *stack) waitStatus(vid string, want store.Status) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		var v api.VideoView
		return s.api("GET", "/v1/videos/"+vid, nil, "", &v) == http.StatusOK && v.Status == want
	}, 2*time.Minute, 200*time.Millisecond, "%s becomes %s", vid, want)
}

func (s *stack) balance() int64 {
	s.t.Helper()
	var me api.MeResponse
	require.Equal(s.t, http.StatusOK, s.api("GET", "/v1/me", nil, "", &me))
	return me.Balance
}

// coordinatorIdle waits until the coordinator has handled every event.
func (s *stack) coordinatorIdle() {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		c, err := s.st.JS.Consumer(context.Background(), bus.StreamEvents, bus.ConsumerCoordinator)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, time.Minute, 100*time.Millisecond, "the coordinator is idle")
}

// browser starts headless Chromium (Debian's `chromium`). It is required:
// `make test` installs it (scripts/install-deps.sh test).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is required for the dashboard's browser test (scripts/install-deps.sh test, or apt-get install chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// A wait that never ends fails the test instead of hanging it.
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancelT)
	return ctx
}

// shot saves a screenshot of the page to docs/dashboard/NAME.png when
// DASHBOARD_SCREENSHOTS is set.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("DASHBOARD_SCREENSHOTS") == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dir := filepath.Join(testenv.RepoRoot(t), "docs", "dashboard")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// eval runs a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(t, err, js)
	return v
}

// waitJS waits until a JavaScript expression is true in the page.
func waitJS(t *testing.T, ctx context.Context, js string, timeout time.Duration) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(timeout)))
	require.NoError(t, err, "waiting for %s", js)
}

// ready waits until htmx has taken over the form of a button that a swap
// just brought in: clicked before, the browser would submit it itself.
func ready(t *testing.T, ctx context.Context, button string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(button))))
	waitJS(t, ctx, fmt.Sprintf(`"htmx-internal-data" in document.querySelector(%q).form`, button), 10*time.Second)
}

// TestDashboardInTheBrowser: an operator logs in, watches a video render
// live, retries a failed one from its page, looks at failures and pools,
// and replays a time range without changing any balance.
func TestDashboardInTheBrowser(t *testing.T) {
	s := start(t)
	ctx := browser(t)
	base := s.st.BaseURL
	text := func(sel string) string {
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return v
	}

	// Log in: a wrong key is refused with a message, the right one lets in.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
	))
	shot(t, ctx, "login")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name="key"]`), "not-the-key"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")),
	))
	require.Contains(t, text("#login-error"), "Wrong admin key")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "ops"),
		chromedp.SendKeys(chromedp.CSS(`input[name="key"]`), s.st.AdminKey),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#runs-table")),
	))

	// A video renders: its page gains timeline rows and its progress moves,
	// without a reload (a mark set on the page survives).
	s.submit("dash-ok", 3)
	require.Eventually(t, func() bool { return s.api("GET", "/v1/videos/dash-ok", nil, "", nil) == http.StatusOK },
		30*time.Second, 50*time.Millisecond)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard/videos/dash-ok"),
		chromedp.WaitVisible(chromedp.CSS("#video-live")),
	))
	eval[bool](t, ctx, `(window.__sameDocument = true)`)
	rows0 := eval[int](t, ctx, `document.querySelectorAll("#video-live tr.step").length`)
	waitJS(t, ctx, `document.querySelector("#progress") !== null`, time.Minute)
	p1 := eval[string](t, ctx, `document.querySelector("#progress").dataset.percent`)
	waitJS(t, ctx, fmt.Sprintf(`(() => { const p = document.querySelector("#progress"); return p === null || p.dataset.percent !== %q })()`, p1), time.Minute)
	waitJS(t, ctx, `document.querySelector("#video-status").textContent === "ready"`, 2*time.Minute)
	require.Greater(t, eval[int](t, ctx, `document.querySelectorAll("#video-live tr.step").length`), rows0, "the timeline gained rows")
	waitJS(t, ctx, `document.querySelector("#player") !== null`, 10*time.Second)
	require.True(t, eval[bool](t, ctx, `window.__sameDocument === true`), "no page load")
	require.Equal(t, "ready", text("#video-status"))
	for _, step := range []string{"audio", "render", "cdn"} {
		require.True(t, eval[bool](t, ctx, fmt.Sprintf(`document.querySelector('tr.step[data-step=%q]') !== null`, step)), step)
	}
	// Once the thumbnail and notify steps end, the page stops polling.
	waitJS(t, ctx, `!document.querySelector("#video-live").getAttribute("hx-trigger").includes("every")`, time.Minute)
	require.True(t, eval[bool](t, ctx, `document.querySelectorAll("#outputs img.thumb").length > 0`), "the thumbnails are shown")
	shot(t, ctx, "video")

	// With renders failing, a second video ends in error; retried from its
	// page (a dry run first, then confirmed), it becomes ready.
	s.fail.Store(true)
	s.submit("dash-retry", 2)
	s.waitStatus("dash-retry", store.StatusError)
	s.fail.Store(false)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard/videos/dash-retry"),
		chromedp.WaitVisible(chromedp.CSS("#act-retry")),
	))
	require.Equal(t, "error", text("#video-status"))
	require.Contains(t, text("#video-live"), "GPU fell off the bus (injected)")
	eval[bool](t, ctx, `(window.__sameDocument = true)`)
	ready(t, ctx, "#act-retry")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#act-retry"))))
	ready(t, ctx, "#confirm")
	require.Equal(t, "true", eval[string](t, ctx, `document.querySelector("#action-outcome").dataset.dryRun`))
	require.Contains(t, text("#action-outcome"), "would")
	require.Equal(t, "error", text("#video-status"), "a dry run changes nothing")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#confirm"))))
	waitJS(t, ctx, `document.querySelector("#action-outcome") !== null && document.querySelector("#action-outcome").dataset.dryRun === "false"`, 30*time.Second)
	require.Contains(t, text("#action-outcome"), "retry")
	waitJS(t, ctx, `document.querySelector("#video-status").textContent === "ready"`, 2*time.Minute)
	waitJS(t, ctx, `document.querySelector("#player") !== null`, 10*time.Second)
	require.True(t, eval[bool](t, ctx, `window.__sameDocument === true`), "no page load")
	require.Equal(t, 2, eval[int](t, ctx, `document.querySelectorAll("#video-live section.run").length`), "the failed run and the retry")
	require.Contains(t, text("#video-live"), "dashboard:ops", "the audit trail names the operator")

	// The other pages show what happened.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard/failures"),
		chromedp.WaitVisible(chromedp.CSS("#failures")),
	))
	require.Contains(t, text("#failures"), "GPU fell off the bus (injected)")
	require.Contains(t, text("#failures"), "dash-retry")
	shot(t, ctx, "failures")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard/pools"),
		chromedp.WaitVisible(chromedp.CSS("#consumers")),
	))
	require.Contains(t, text("#consumers"), "render-gpu-normal")
	// Workers are listed as the coordinator recorded them on the steps.
	seen, err := s.st.Store.RecentWorkers(context.Background(), time.Now().Add(-15*time.Minute))
	require.NoError(t, err)
	if len(seen) == 0 {
		require.Contains(t, text("#workers"), "No worker ended a step recently.")
	} else {
		require.Equal(t, len(seen), eval[int](t, ctx, `document.querySelectorAll("#workers tbody tr").length`))
		require.Contains(t, text("#workers"), seen[0].Worker)
	}
	shot(t, ctx, "pools")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard/runs"),
		chromedp.WaitVisible(chromedp.CSS("#runs-table")),
	))
	waitJS(t, ctx, `document.querySelector('a.count[data-status="ready"] b').textContent === "2"`, 10*time.Second)
	require.Equal(t, "1", text(`a.count[data-status="error"] b`))
	shot(t, ctx, "runs")

	// Bulk replay of the last hour: the dry run lists both videos; confirmed,
	// it changes no balance and no run.
	s.coordinatorIdle()
	balance := s.balance()
	runsBefore, err := s.st.Store.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard/replay"),
	))
	ready(t, ctx, "#replay-dry-run")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#replay-dry-run"))))
	ready(t, ctx, "#replay-confirm")
	out := text("#replay-outcome")
	require.Contains(t, out, "dash-ok")
	require.Contains(t, out, "dash-retry")
	require.Contains(t, out, "Dry run")
	shot(t, ctx, "replay")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#replay-confirm"))))
	waitJS(t, ctx, `document.querySelector("#replay-outcome").dataset.dryRun === "false"`, 30*time.Second)
	require.Contains(t, text("#replay-outcome"), "Replayed")
	s.coordinatorIdle()
	require.Equal(t, balance, s.balance(), "a replay changes no balance")
	runsAfter, err := s.st.Store.ListRuns(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	require.Equal(t, len(runsBefore), len(runsAfter), "a replay makes no run")
	for i := range runsBefore {
		require.Equal(t, runsBefore[i].ID, runsAfter[i].ID)
		require.Equal(t, runsBefore[i].Status, runsAfter[i].Status, runsBefore[i].ID)
	}
}
