package api

// The operators' dashboard under /dashboard: server-rendered HTML pages
// (html/template) with a little htmx, all embedded in the binary. This file
// has the session (login, an HMAC-signed cookie), CSRF and the page wrapper;
// dashboard_pages.go has the pages and dashboard_actions.go the forms that
// act through Act.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
)

//go:embed dashboard/templates/*.html dashboard/static/*
var dashboardFS embed.FS

// Dashboard session and CSRF names.
const (
	// SessionCookie holds the signed dashboard session.
	SessionCookie = "backbeat_dashboard"
	// SessionTTL is how long a login lasts.
	SessionTTL = 12 * time.Hour
	// CSRFField is the form field, and CSRFHeader the header htmx sends,
	// that carry the session's CSRF token on every state-changing request.
	CSRFField  = "csrf"
	CSRFHeader = "X-CSRF-Token"
)

// operatorNameRE is what an operator may call themselves at login (the
// audit trail's actor).
var operatorNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// dashboard is the dashboard's state: its signing key and parsed pages.
type dashboard struct {
	key   []byte
	pages map[string]*template.Template
}

// session is a logged-in operator.
type session struct {
	// Name is what the operator typed at login ("operator" by default).
	Name    string
	Expires time.Time
	// Nonce is random per login; the CSRF token derives from it.
	Nonce string
}

// actor names the session in the audit trail.
func (ss session) actor() string { return "dashboard:" + ss.Name }

// newDashboard derives the signing key from the admin key (so rotating the
// admin key logs everyone out) and parses the templates.
func newDashboard(adminKey string) (*dashboard, error) {
	m := hmac.New(sha256.New, []byte(adminKey))
	m.Write([]byte("backbeat dashboard session v1"))
	d := &dashboard{key: m.Sum(nil), pages: map[string]*template.Template{}}
	for _, p := range []string{"login", "runs", "video", "failures", "pools", "replay", "error"} {
		t, err := template.New(p).Funcs(dashFuncs).ParseFS(dashboardFS,
			"dashboard/templates/layout.html", "dashboard/templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard template %s: %w", p, err)
		}
		d.pages[p] = t
	}
	return d, nil
}

func (d *dashboard) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, d.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// encode signs a session into a cookie value: payload "." signature, both
// base64url.
func (d *dashboard) encode(ss session) string {
	payload := ss.Name + "|" + strconv.FormatInt(ss.Expires.Unix(), 10) + "|" + ss.Nonce
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." +
		base64.RawURLEncoding.EncodeToString(d.mac("session", payload))
}

// decode checks a cookie value's signature and expiry.
func (d *dashboard) decode(v string, now time.Time) (session, error) {
	p64, s64, ok := strings.Cut(v, ".")
	if !ok {
		return session{}, errors.New("malformed session")
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(s64)
	if err1 != nil || err2 != nil {
		return session{}, errors.New("malformed session")
	}
	if !hmac.Equal(sig, d.mac("session", string(payload))) {
		return session{}, errors.New("bad session signature")
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 3 {
		return session{}, errors.New("malformed session")
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return session{}, errors.New("malformed session expiry")
	}
	ss := session{Name: parts[0], Expires: time.Unix(exp, 0), Nonce: parts[2]}
	if !now.Before(ss.Expires) {
		return session{}, errors.New("session expired")
	}
	return ss, nil
}

// csrf is the session's CSRF token: it changes with every login and cannot
// be made without the key.
func (d *dashboard) csrf(ss session) string {
	return base64.RawURLEncoding.EncodeToString(d.mac("csrf", ss.Nonce))
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// dashboardRoutes mounts /dashboard when an admin key is configured; without
// one the dashboard does not exist (404).
func (s *Service) dashboardRoutes() error {
	if s.cfg.AdminKey == "" {
		return nil
	}
	d, err := newDashboard(s.cfg.AdminKey)
	if err != nil {
		return err
	}
	s.dash = d
	static, err := fs.Sub(dashboardFS, "dashboard/static")
	if err != nil {
		return fmt.Errorf("dashboard static: %w", err)
	}
	m := s.tel.Mux
	m.Handle("GET /dashboard/static/", s.dashStatic(http.StripPrefix("/dashboard/static/", http.FileServerFS(static))))
	m.Handle("GET /dashboard/login", s.dashPublic("dash_login", s.loginPage))
	m.Handle("POST /dashboard/login", s.dashPublic("dash_login", s.login))
	m.Handle("POST /dashboard/logout", s.dashPage("dash_logout", true, s.logout))
	m.Handle("GET /dashboard", http.RedirectHandler("/dashboard/runs", http.StatusSeeOther))
	m.Handle("GET /dashboard/{$}", http.RedirectHandler("/dashboard/runs", http.StatusSeeOther))
	m.Handle("GET /dashboard/runs", s.dashPage("dash_runs", false, s.runsPage))
	m.Handle("GET /dashboard/runs/live", s.dashPage("dash_runs", false, s.runsLive))
	m.Handle("GET /dashboard/videos/{id}", s.dashPage("dash_video", false, s.videoPage("")))
	m.Handle("GET /dashboard/videos/{id}/live", s.dashPage("dash_video", false, s.videoPage("video_live")))
	m.Handle("POST /dashboard/videos/{id}/action", s.dashPage("dash_action", true, s.videoAction))
	m.Handle("GET /dashboard/failures", s.dashPage("dash_failures", false, s.failuresPage))
	m.Handle("GET /dashboard/pools", s.dashPage("dash_pools", false, s.poolsPage))
	m.Handle("GET /dashboard/replay", s.dashPage("dash_replay", false, s.replayPage))
	m.Handle("POST /dashboard/replay", s.dashPage("dash_replay", true, s.replayAction))
	m.Handle("/dashboard/", s.dashPage("dash_other", false, func(http.ResponseWriter, *http.Request, session) error {
		return notFound("page")
	}))
	return nil
}

// dashHandler is a dashboard page for a logged-in operator; it returns an
// error to be shown as an error page, or nil after writing its response.
type dashHandler func(w http.ResponseWriter, r *http.Request, ss session) error

// securityHeaders are on every dashboard response: no framing, no caching,
// scripts and styles only from the binary itself.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: http: https:; media-src 'self' http: https:; "+
		"script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (s *Service) dashStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "private, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// dashPublic serves a page that needs no session (the login).
func (s *Service) dashPublic(route string, h dashHandler) http.Handler {
	return s.dashServe(route, func(w http.ResponseWriter, r *http.Request) error {
		if r.Method == http.MethodPost {
			if err := sameOrigin(r); err != nil {
				return err
			}
		}
		return h(w, r, session{})
	})
}

// dashPage serves a page that needs a session; a mutating one also needs
// the session's CSRF token and a same-origin request.
func (s *Service) dashPage(route string, mutating bool, h dashHandler) http.Handler {
	return s.dashServe(route, func(w http.ResponseWriter, r *http.Request) error {
		ss, err := s.sessionOf(r)
		if err != nil {
			if mutating {
				return errorf(http.StatusUnauthorized, "not logged in: %v", err)
			}
			login := "/dashboard/login?next=" + url.QueryEscape(r.URL.RequestURI())
			if r.Header.Get("HX-Request") != "" {
				// htmx follows this header with a full page load.
				w.Header().Set("HX-Redirect", login)
				w.WriteHeader(http.StatusUnauthorized)
				return nil
			}
			http.Redirect(w, r, login, http.StatusSeeOther)
			return nil
		}
		if mutating {
			if err := sameOrigin(r); err != nil {
				return err
			}
			if err := s.checkCSRF(r, ss); err != nil {
				return err
			}
		}
		return h(w, r, ss)
	})
}

// dashServe bounds the request's time, recovers panics, counts, and shows
// errors as an HTML page.
func (s *Service) dashServe(route string, h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		securityHeaders(rec)
		// A server span per page, as the API's routes have (wrap), so the
		// lines a page logs carry its trace id.
		ctx, span := bus.Tracer(s.pub).Start(r.Context(), r.Method+" "+route, trace.WithNewRoot(),
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("http.request.method", r.Method),
				attribute.String("url.path", r.URL.Path), attribute.String("backbeat.route", route)))
		defer span.End()
		ctx, cancel := context.WithTimeout(bus.WithLogger(ctx, s.log.With(logging.TraceFields(ctx)...)), s.cfg.RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		defer func() {
			if p := recover(); p != nil {
				bus.Logger(ctx, s.log).Error("dashboard panic", zap.String("route", route), zap.Any("panic", p), zap.Stack("stack"))
				span.SetStatus(codes.Error, fmt.Sprintf("panic: %v", p))
				s.dashError(rec, r, errorf(http.StatusInternalServerError, "internal error"))
			}
			s.requests.WithLabelValues(route, fmt.Sprint(rec.code)).Inc()
			s.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		r.Body = http.MaxBytesReader(rec, r.Body, maxJSONBody)
		if err := h(rec, r); err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.code >= 500 {
				bus.Logger(ctx, s.log).Error("dashboard request failed", zap.String("route", route), zap.String("path", r.URL.Path), zap.Error(err))
				span.SetStatus(codes.Error, err.Error())
			}
			s.dashError(rec, r, err)
		}
	})
}

// dashError writes an error as a small HTML page (or fragment, for htmx).
func (s *Service) dashError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := http.StatusInternalServerError, "internal error"
	var he *httpError
	if errors.As(err, &he) {
		code, msg = he.code, he.msg
	}
	fragment := ""
	if r.Header.Get("HX-Request") != "" {
		// An htmx request shows its error in the page's flash area (the
		// htmx-config meta tag tells htmx to swap error responses).
		w.Header().Set("HX-Retarget", "#flash")
		w.Header().Set("HX-Reswap", "innerHTML")
		fragment = "error_fragment"
	}
	s.render(w, r, code, "error", fragment, session{}, map[string]any{"Code": code, "Status": http.StatusText(code), "Message": msg})
}

// sameOrigin refuses a state-changing request whose Origin (or, without
// one, Referer) names another site. SameSite=Strict already keeps the
// session cookie off cross-site requests; this is the second lock.
func sameOrigin(r *http.Request) error {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return nil
	}
	u, err := url.Parse(src)
	if err != nil || u.Host != r.Host {
		return errorf(http.StatusForbidden, "cross-origin request refused")
	}
	return nil
}

func (s *Service) checkCSRF(r *http.Request, ss session) error {
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.dash.csrf(ss))) != 1 {
		return errorf(http.StatusForbidden, "missing or invalid CSRF token: reload the page and try again")
	}
	return nil
}

// sessionOf returns the request's valid session.
func (s *Service) sessionOf(r *http.Request) (session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return session{}, errors.New("no session cookie")
	}
	return s.dash.decode(c.Value, time.Now())
}

// pageData is what every page template gets.
type pageData struct {
	Title    string
	Nav      string
	CSRF     string
	Operator string
	Data     any
}

// render executes a page (or one of its named fragments) into a buffer
// first, so a template error is a clean 500 and not half a page.
func (s *Service) render(w http.ResponseWriter, r *http.Request, code int, page, fragment string, ss session, data any) {
	t := s.dash.pages[page]
	pd := pageData{Title: page, Nav: page, Operator: ss.Name, Data: data}
	if ss.Nonce != "" {
		pd.CSRF = s.dash.csrf(ss)
	}
	name := "layout"
	if fragment != "" {
		name = fragment
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, pd); err != nil {
		s.log.Error("dashboard template", zap.String("page", page), zap.String("fragment", fragment), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (s *Service) loginPage(w http.ResponseWriter, r *http.Request, _ session) error {
	s.render(w, r, http.StatusOK, "login", "", session{}, map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
	return nil
}

// login checks the admin key (constant time) and sets the session cookie.
func (s *Service) login(w http.ResponseWriter, r *http.Request, _ session) error {
	if err := r.ParseForm(); err != nil {
		return badRequest("invalid form: %v", err)
	}
	next := safeNext(r.PostFormValue("next"))
	typed := strings.TrimSpace(r.PostFormValue("name"))
	fail := func(code int, msg string) error {
		s.render(w, r, code, "login", "", session{}, map[string]any{"Next": next, "Name": typed, "Error": msg})
		return nil
	}
	name := typed
	if name == "" {
		name = "operator"
	}
	if !operatorNameRE.MatchString(name) {
		return fail(http.StatusBadRequest, "Your name may have letters, digits and . _ @ - (at most 64).")
	}
	key := r.PostFormValue("key")
	if subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.AdminKey)) != 1 {
		s.log.Warn("dashboard login refused", zap.String("name", name), zap.String("remote", r.RemoteAddr))
		return fail(http.StatusUnauthorized, "Wrong admin key.")
	}
	ss := session{Name: name, Expires: time.Now().Add(SessionTTL), Nonce: randomHex(16)}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: s.dash.encode(ss), Path: "/dashboard", Expires: ss.Expires,
		MaxAge: int(SessionTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
	s.log.Info("dashboard login", zap.String("name", name), zap.String("remote", r.RemoteAddr))
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func (s *Service) logout(w http.ResponseWriter, r *http.Request, _ session) error {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/dashboard", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
	return nil
}

// safeNext keeps a post-login redirect on the dashboard.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/dashboard/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, `\`) {
		return next
	}
	return "/dashboard/runs"
}
