package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/pkg/testenv"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/api"
	"github.com/backbeat/backbeat/services/api/apitest"
)

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so each answer can be looked at.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request and returns the response (body read) and its body.
func (b *browser) do(method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	require.NoError(b.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return resp, string(data)
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, body := b.do("GET", path, nil, nil)
	return resp.StatusCode, body
}

func (b *browser) login() {
	b.t.Helper()
	resp, _ := b.do("POST", "/dashboard/login", url.Values{"name": {"alice"}, "key": {apitest.AdminKey}}, nil)
	require.Equal(b.t, http.StatusSeeOther, resp.StatusCode)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	require.NotNil(t, m, "page has a CSRF field")
	return m[1]
}

func TestDashboardLogin(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	b := newBrowser(t, e.URL)

	// No session: the pages send to the login, htmx polls are told to.
	resp, _ := b.do("GET", "/dashboard/runs?status=ready", nil, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/dashboard/login?next=%2Fdashboard%2Fruns%3Fstatus%3Dready", resp.Header.Get("Location"))
	resp, _ = b.do("GET", "/dashboard/runs/live", nil, map[string]string{"HX-Request": "true"})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("HX-Redirect"), "/dashboard/login"))
	code, page := b.get("/dashboard/login")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, `type="password"`)

	// A wrong key: a clear error, 401, no cookie.
	for _, key := range []string{"", "wrong", apitest.AdminKey + "x", strings.ToUpper(apitest.AdminKey)} {
		resp, page = b.do("POST", "/dashboard/login", url.Values{"key": {key}}, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, key)
		require.Contains(t, page, "Wrong admin key.")
		require.Empty(t, resp.Cookies(), "no cookie for a wrong key")
	}
	resp, page = b.do("POST", "/dashboard/login", url.Values{"key": {apitest.AdminKey}, "name": {"<script>"}}, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.NotContains(t, page, "<script>", "the name is escaped")
	require.Empty(t, resp.Cookies())
	// A login from another site is refused.
	resp, _ = b.do("POST", "/dashboard/login", url.Values{"key": {apitest.AdminKey}}, map[string]string{"Origin": "https://evil.example"})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Empty(t, resp.Cookies())

	// The right key: a signed, HttpOnly, SameSite=Strict cookie, and back to
	// the page asked for (never off the dashboard).
	resp, _ = b.do("POST", "/dashboard/login", url.Values{"key": {apitest.AdminKey}, "name": {"alice"}, "next": {"/dashboard/failures"}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/dashboard/failures", resp.Header.Get("Location"))
	require.Len(t, resp.Cookies(), 1)
	c := resp.Cookies()[0]
	require.Equal(t, api.SessionCookie, c.Name)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.Equal(t, "/dashboard", c.Path)
	require.NotContains(t, c.Value, apitest.AdminKey)
	code, page = b.get("/dashboard/runs")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "alice")
	resp, _ = b.do("POST", "/dashboard/login", url.Values{"key": {apitest.AdminKey}, "next": {"//evil.example/x"}}, nil)
	require.Equal(t, "/dashboard/runs", resp.Header.Get("Location"))

	// A tampered cookie is no session: another name, another signature,
	// garbage, a cookie signed for another admin key.
	other := apitest.New(t, func(c *api.Config) { c.AdminKey = "another-admin-key-0123456789" })
	ob := newBrowser(t, other.URL)
	resp, _ = ob.do("POST", "/dashboard/login", url.Values{"key": {"another-admin-key-0123456789"}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	foreign := resp.Cookies()[0].Value
	payload, sig, ok := strings.Cut(c.Value, ".")
	require.True(t, ok)
	flip := func(s string) string {
		r := []byte(s)
		if r[2] == 'A' {
			r[2] = 'B'
		} else {
			r[2] = 'A'
		}
		return string(r)
	}
	for name, v := range map[string]string{
		"payload changed":   flip(payload) + "." + sig,
		"signature changed": payload + "." + flip(sig),
		"no signature":      payload,
		"garbage":           "not a session",
		"other admin key":   foreign,
	} {
		req, err := http.NewRequest("GET", e.URL+"/dashboard/runs", nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: v})
		resp, err := (&http.Client{CheckRedirect: b.c.CheckRedirect}).Do(req)
		require.NoError(t, err, name)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, name)
		require.Contains(t, resp.Header.Get("Location"), "/dashboard/login", name)
	}

	// Logging out needs the CSRF token, then ends the session.
	_, page = b.get("/dashboard/runs")
	resp, _ = b.do("POST", "/dashboard/logout", url.Values{"csrf": {csrfOf(t, page)}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, _ = b.do("GET", "/dashboard/runs", nil, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
}

func TestDashboardRefusesCSRF(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusError}, store.StageRender)
	b := newBrowser(t, e.URL)
	b.login()
	_, page := b.get("/dashboard/videos/v1")
	token := csrfOf(t, page)
	require.Contains(t, page, `hx-headers='{"X-CSRF-Token": "`+token+`"}'`, "htmx sends the token on every request")

	// Another login has another token.
	b2 := newBrowser(t, e.URL)
	b2.login()
	_, page2 := b2.get("/dashboard/runs")
	require.NotEqual(t, token, csrfOf(t, page2))

	for name, tc := range map[string]struct {
		form   url.Values
		header map[string]string
	}{
		"no token":            {url.Values{"action": {"retry"}}, nil},
		"wrong token":         {url.Values{"action": {"retry"}, "csrf": {token + "x"}}, nil},
		"another's token":     {url.Values{"action": {"retry"}, "csrf": {csrfOf(t, page2)}}, nil},
		"wrong header":        {url.Values{"action": {"retry"}}, map[string]string{api.CSRFHeader: "abc"}},
		"cross-origin":        {url.Values{"action": {"retry"}, "csrf": {token}}, map[string]string{"Origin": "http://evil.example"}},
		"cross-site referrer": {url.Values{"action": {"retry"}, "csrf": {token}}, map[string]string{"Referer": "http://evil.example/page"}},
	} {
		resp, body := b.do("POST", "/dashboard/videos/v1/action", tc.form, tc.header)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, name)
		require.Regexp(t, "CSRF token|cross-origin request refused", body, name)
	}
	for name, path := range map[string]string{"replay": "/dashboard/replay", "logout": "/dashboard/logout"} {
		resp, _ := b.do("POST", path, url.Values{"from": {"2020-01-01T00:00"}, "to": {"2030-01-01T00:00"}}, nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, name)
	}
	require.Empty(t, e.Events(t, e.Pub.Subjects().Events()), "nothing was published")
	actions, err := e.Store.ListActions(context.Background(), "", 0)
	require.NoError(t, err)
	require.Empty(t, actions, "nothing was acted on")

	// Without a session a POST is a 401, with the right token or not.
	resp, _ := newBrowser(t, e.URL).do("POST", "/dashboard/videos/v1/action", url.Values{"action": {"retry"}, "csrf": {token}}, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	// The token in the header (as htmx sends it) passes the check.
	resp, _ = b.do("POST", "/dashboard/logout", nil, map[string]string{api.CSRFHeader: token})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
}

func TestDashboardOffWithoutAdminKey(t *testing.T) {
	t.Parallel()
	e := apitest.New(t, func(c *api.Config) { c.AdminKey = "" })
	b := newBrowser(t, e.URL)
	for _, p := range []string{"/dashboard", "/dashboard/login", "/dashboard/runs", "/dashboard/static/htmx.min.js"} {
		code, _ := b.get(p)
		require.Equal(t, http.StatusNotFound, code, p)
	}
	resp, _ := b.do("POST", "/dashboard/login", url.Values{"key": {""}}, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// seedDashboard writes what the coordinator would have: two failed videos
// whose reasons differ only by ids and numbers, a ready one with its outputs
// and ledger, and one rendering.
func seedDashboard(t *testing.T, e *apitest.Env) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	ended := now.Add(-time.Minute)
	e.SeedVideo(t, store.Video{ID: "vok", UserID: e.UserID, RunID: "run-ok", Status: store.StatusReady,
		VideoURL: "http://edge.test/videos/vok/video.mp4", ThumbnailURL: "http://edge.test/thumbnails/vok/t.jpg"}, store.StageDone,
		store.Step{Name: "audio", Attempt: 1, StartedAt: now.Add(-3 * time.Minute), EndedAt: &ended, Worker: "audio-7f9c", QueueWaitMS: 1234, RunMS: 5678, Output: "mp3/vok.mp3"},
		store.Step{Name: "render", Attempt: 1, Pool: "gpu", StartedAt: now.Add(-2 * time.Minute), EndedAt: &ended, Worker: "renderer-gpu-0", QueueWaitMS: 42, RunMS: 61000, Output: "videos/vok.mp4"})
	for _, vid := range []string{"vbad1", "vbad2"} {
		e.SeedVideo(t, store.Video{ID: vid, UserID: e.UserID, RunID: "run-" + vid, Status: store.StatusError, Reason: "render failed"}, store.StageRender,
			store.Step{Name: "render", Attempt: 2, Pool: "cpu", StartedAt: now.Add(-time.Minute), EndedAt: &ended,
				Error: "encoder lost at frame " + map[string]string{"vbad1": "17", "vbad2": "230"}[vid] + " of " + vid + " (run run-" + vid + ")"})
	}
	e.SeedVideo(t, store.Video{ID: "vlive", UserID: e.UserID, RunID: "run-live", Status: store.StatusProcessing}, store.StageRender,
		store.Step{Name: "render", Attempt: 1, Pool: "gpu", StartedAt: now})
	db := e.Store.DB
	require.NoError(t, db.Create(&[]store.LedgerEntry{
		{RunID: "run-ok", Kind: store.LedgerHold, UserID: e.UserID, Amount: 3},
		{RunID: "run-vbad1", Kind: store.LedgerHold, UserID: e.UserID, Amount: 2},
		{RunID: "run-vbad1", Kind: store.LedgerRefund, UserID: e.UserID, Amount: 2},
	}).Error)
	require.NoError(t, db.Model(&store.Run{}).Where("id = ?", "run-ok").Update("template", "spectrum").Error)
	require.NoError(t, db.Create(&store.AdminAction{RequestID: "seed-1", Actor: "dashboard:bob", Action: "retry", Target: "vbad1", DryRun: true, Videos: 1}).Error)
}

func TestDashboardPagesShowTheDatabase(t *testing.T) {
	t.Parallel()
	e := apitest.New(t, func(c *api.Config) { c.Pools = testenv.Pools })
	seedDashboard(t, e)
	b := newBrowser(t, e.URL)
	b.login()

	t.Run("runs", func(t *testing.T) {
		code, page := b.get("/dashboard/runs")
		require.Equal(t, http.StatusOK, code)
		for _, v := range []string{"vok", "vbad1", "vbad2", "vlive"} {
			require.Contains(t, page, `href="/dashboard/videos/`+v+`"`)
		}
		require.Contains(t, page, `all <b>4</b>`)
		require.Contains(t, page, `data-status="error">error <b>2</b>`)
		require.Contains(t, page, `data-status="ready">ready <b>1</b>`)
		require.Contains(t, page, `hx-get="/dashboard/runs/live?" hx-trigger="every 2s"`)
		// Filtered: the table narrows, the counts stay whole.
		code, page = b.get("/dashboard/runs/live?status=error&user=" + e.UserID)
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, page, "vbad1")
		require.NotContains(t, page, `href="/dashboard/videos/vok"`)
		require.Contains(t, page, `data-status="ready">ready <b>1</b>`)
		_, page = b.get("/dashboard/runs/live?template=spectrum")
		require.Contains(t, page, `href="/dashboard/videos/vok"`)
		require.NotContains(t, page, `href="/dashboard/videos/vbad1"`)
		_, page = b.get("/dashboard/runs/live?pool=nope")
		require.Contains(t, page, "No runs match.")
		_, page = b.get("/dashboard/runs/live?from=2000-01-01T00:00&to=2000-01-02T00:00")
		require.Contains(t, page, "No runs match.")
		require.Contains(t, page, `all <b>0</b>`)
		// Bad input: a clear 400 page, escaped.
		for q, want := range map[string]string{
			"status=<b>x</b>": "is not a status",
			"from=yesterday":  "from: &#34;yesterday&#34; is not a time",
			"user=a%20b":      "user:",
			"template=../x":   "template:",
			"from=2020-01-02T00:00&to=2020-01-01T00:00": "from must be before to",
		} {
			code, page := b.get("/dashboard/runs?" + q)
			require.Equal(t, http.StatusBadRequest, code, q)
			require.Contains(t, page, want, q)
			require.NotContains(t, page, "<b>x</b>", q)
		}
	})

	t.Run("video", func(t *testing.T) {
		code, page := b.get("/dashboard/videos/vok")
		require.Equal(t, http.StatusOK, code)
		for _, want := range []string{"audio-7f9c", "1.234s", "5.678s", "renderer-gpu-0", "1m1s", "videos/vok.mp4",
			`<video controls preload="metadata" src="http://edge.test/videos/vok/video.mp4"`, `src="http://edge.test/thumbnails/vok/t.jpg"`,
			`<td>hold</td><td class="num">3</td>`, `hx-trigger="refresh-video from:body"`, "act-retry", "act-cancel", "act-recover"} {
			require.Contains(t, page, want)
		}
		code, page = b.get("/dashboard/videos/vbad1")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, page, "encoder lost at frame 17")
		require.Contains(t, page, `<td>refund</td><td class="num">2</td>`)
		require.Contains(t, page, `<td colspan="3">charged (holds less refunds)</td><td class="num">0</td>`)
		require.Contains(t, page, "dashboard:bob", "the audit trail")
		// In flight: polled, with the live progress of its run only.
		e.PublishProgress(t, "vlive", &backbeatv1.RenderProgress{VideoId: "vlive", RunId: "run-live", Attempt: 1,
			FramesDone: 90, FramesTotal: 360, Percent: 25, Pool: "gpu", Worker: "renderer-gpu-3"})
		_, page = b.get("/dashboard/videos/vlive/live")
		require.Contains(t, page, `hx-trigger="every 1s, refresh-video from:body"`)
		require.Contains(t, page, `<progress max="100" value="25.0">`)
		require.Contains(t, page, "frame 90/360")
		require.Contains(t, page, "renderer-gpu-3")
		require.NotContains(t, page, "<video")
		// Ready with its thumbnail still running: still polled.
		e.SeedVideo(t, store.Video{ID: "vthumb", UserID: e.UserID, RunID: "run-thumb", Status: store.StatusReady}, store.StageDone,
			store.Step{Name: "thumbnail", StartedAt: time.Now()})
		_, page = b.get("/dashboard/videos/vthumb/live")
		require.Contains(t, page, `hx-trigger="every 1s, refresh-video from:body"`)
		code, page = b.get("/dashboard/videos/nope")
		require.Equal(t, http.StatusNotFound, code)
		require.Contains(t, page, "video nope not found")
		code, _ = b.get("/dashboard/videos/a%2Fb")
		require.Equal(t, http.StatusBadRequest, code)
	})

	t.Run("failures", func(t *testing.T) {
		code, page := b.get("/dashboard/failures")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, page, "2 failed steps")
		require.Contains(t, page, "in 1 groups")
		require.Contains(t, page, `<td class="num">2</td><td class="num">2</td><td>render</td><td class="reason">encoder lost at frame &lt;n&gt; of &lt;video&gt; (run run-&lt;video&gt;)</td>`)
		require.Contains(t, page, `href="/dashboard/videos/vbad1"`)
		require.Contains(t, page, `href="/dashboard/videos/vbad2"`)
		_, page = b.get("/dashboard/failures?since=2000-01-01T00:00")
		require.Contains(t, page, "2 failed steps")
		code, _ = b.get("/dashboard/failures?since=-1h")
		require.Equal(t, http.StatusBadRequest, code)
	})

	t.Run("pools", func(t *testing.T) {
		ctx := context.Background()
		_, err := e.JS.Publish(ctx, e.Pub.Subjects().AudioJob("vq"), []byte("job"))
		require.NoError(t, err)
		code, page := b.get("/dashboard/pools")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, page, "Stream JOBS holds 1 jobs")
		require.Regexp(t, `<tr data-consumer="audio"><td>audio</td>\s*<td class="num">1</td>`, page, "one job pending for audio")
		require.Contains(t, page, `data-consumer="render-cpu-low"`)
		require.Contains(t, page, "<td>audio-7f9c</td>")
		require.Contains(t, page, "<td>renderer-gpu-0</td><td>gpu</td><td>render</td>")
	})

	t.Run("replay form", func(t *testing.T) {
		code, page := b.get("/dashboard/replay")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, page, `id="replay-dry-run"`)
		require.Contains(t, page, "seed-1")
		// From and to are required, and checked.
		resp, body := b.do("POST", "/dashboard/replay", url.Values{"csrf": {csrfOf(t, page)}, "from": {"x"}, "to": {"2030-01-01T00:00"}}, nil)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, body, "from:")
		resp, body = b.do("POST", "/dashboard/replay", url.Values{"csrf": {csrfOf(t, page)}}, nil)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, body, "from and to are required")
	})

	t.Run("bulk recover after an outage", func(t *testing.T) {
		e.SeedVideo(t, store.Video{ID: "vstall", UserID: e.UserID, RunID: "run-stall", Status: store.StatusStalled}, store.StageRender)
		_, page := b.get("/dashboard/replay")
		token := csrfOf(t, page)
		now := time.Now().UTC()
		form := url.Values{"csrf": {token}, "action": {"recover"}, "status": {"stalled"},
			"from": {now.Add(-time.Hour).Format("2006-01-02T15:04")}, "to": {now.Add(time.Hour).Format("2006-01-02T15:04")}}
		resp, body := b.do("POST", "/dashboard/replay", form, map[string]string{"HX-Request": "true"})
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, "Dry run of recover: 1 videos selected")
		require.Contains(t, body, "vstall")
		require.NotContains(t, body, "vok", "the status filter keeps only the stalled run")
		require.Empty(t, e.Events(t, e.Pub.Subjects().Event("vstall", "video.recover")), "a dry run publishes nothing")
		m := regexp.MustCompile(`name="request_id" value="([^"]+)"`).FindStringSubmatch(body)
		require.NotNil(t, m, "the dry run offers a confirm form")
		require.Contains(t, body, `name="action" value="recover"`, "the confirm form repeats the action")
		form.Set("request_id", m[1])
		form.Set("confirm", "1")
		resp, body = b.do("POST", "/dashboard/replay", form, map[string]string{"HX-Request": "true"})
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, "Done: recover")
		require.Len(t, e.Events(t, e.Pub.Subjects().Event("vstall", "video.recover")), 1)
		form.Set("action", "delete")
		resp, _ = b.do("POST", "/dashboard/replay", form, nil)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})

	t.Run("cancel: dry run, confirm, a second submit does nothing", func(t *testing.T) {
		_, page := b.get("/dashboard/videos/vlive")
		token := csrfOf(t, page)
		resp, body := b.do("POST", "/dashboard/videos/vlive/action", url.Values{"csrf": {token}, "action": {"cancel"}}, map[string]string{"HX-Request": "true"})
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, "Dry run of <b>cancel</b>")
		require.Contains(t, body, `<td>would</td>`)
		require.Empty(t, e.Events(t, e.Pub.Subjects().Event("vlive", "video.cancel")), "a dry run publishes nothing")
		m := regexp.MustCompile(`name="request_id" value="([^"]+)"`).FindStringSubmatch(body)
		require.NotNil(t, m, "the dry run offers a confirm form")
		confirm := url.Values{"csrf": {token}, "action": {"cancel"}, "request_id": {m[1]}, "confirm": {"1"}, "reason": {"stuck <b>"}}
		resp, body = b.do("POST", "/dashboard/videos/vlive/action", confirm, map[string]string{"HX-Request": "true"})
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, "refresh-video", resp.Header.Get("HX-Trigger"))
		require.Contains(t, body, "<b>cancel</b> done")
		require.Len(t, e.Events(t, e.Pub.Subjects().Event("vlive", "video.cancel")), 1)
		resp, body = b.do("POST", "/dashboard/videos/vlive/action", confirm, map[string]string{"HX-Request": "true"})
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, "was already done")
		require.Len(t, e.Events(t, e.Pub.Subjects().Event("vlive", "video.cancel")), 1, "a double submit acts once")
		_, page = b.get("/dashboard/videos/vlive")
		require.Contains(t, page, "dashboard:alice", "the audit trail names the operator")
		// A bad action is a 400 shown in place.
		resp, body = b.do("POST", "/dashboard/videos/vlive/action", url.Values{"csrf": {token}, "action": {"explode"}}, map[string]string{"HX-Request": "true"})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "#flash", resp.Header.Get("HX-Retarget"))
		require.Contains(t, body, "is not cancel, recover or retry")
	})

	t.Run("static and unknown", func(t *testing.T) {
		code, js := b.get("/dashboard/static/htmx.min.js")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, js, "htmx")
		code, _ = b.get("/dashboard/nope")
		require.Equal(t, http.StatusNotFound, code)
	})
}
