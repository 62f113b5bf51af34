package redact_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                           "nats://127.0.0.1:4222",
		"nats://audio:s3cret@nats:4222":                   "nats://audio:xxxxx@nats:4222",
		"nats://audio@nats:4222":                          "nats://audio@nats:4222",
		"nats://a:p1@n1:4222, nats://a:p2@n2:4222":        "nats://a:xxxxx@n1:4222,nats://a:xxxxx@n2:4222",
		"nats://a:pa%zz@n1:4222":                          "xxxxx@n1:4222",
		"postgres://bb:s3cret@db:5432/bb?sslmode=disable": "postgres://bb:xxxxx@db:5432/bb?sslmode=disable",
		"postgres://db/bb?password=s3cret&sslmode=off":    "postgres://db/bb?password=xxxxx&sslmode=off",
		"host=db user=bb password=s3cret dbname=bb":       "host=db user=bb password=xxxxx dbname=bb",
		"sqlite://:memory:":                               "sqlite://:memory:",
		"s3://AKIA:s3cret@minio:9000/bucket?secure=false": "s3://AKIA:xxxxx@minio:9000/bucket?secure=false",
		// A comma in a password; an invalid scheme (found by FuzzURL).
		"nats://a:s3c,ret@n1:4222,nats://n2:4222": "nats://a:xxxxx@n1:4222,nats://n2:4222",
		"#://a:s3cret@db/x":                       "xxxxx@db/x",
		"?://a:s3cret@db/x":                       "xxxxx@db/x",
	} {
		got := redact.URL(in)
		require.Equal(t, want, got, in)
		require.False(t, strings.Contains(got, "s3cret") || strings.Contains(got, "p1") || strings.Contains(got, "pa%zz"), got)
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("open: %w", &url.Error{Op: "parse", URL: "s3://AKIA:s3cret@minio:9000/b", Err: errors.New("invalid URL escape")})
	red := redact.Error(err)
	require.NotContains(t, red.Error(), "s3cret")
	require.EqualError(t, red, "invalid URL escape")
	plain := errors.New("plain")
	require.Equal(t, plain, redact.Error(plain))
}

// FuzzURL: whatever surrounds it, a password put in the user info of a URL
// never comes out of URL.
func FuzzURL(f *testing.F) {
	f.Add("nats", "audio", "s3cret", "nats:4222", "")
	f.Add("postgres", "bb", "p@ss:w/rd", "db:5432", "sslmode=disable")
	f.Add("s3", "AKIA", "pa%zz", "minio:9000", "secure=false")
	f.Add("nats", "a", "s3c,ret", "n1:4222", "")
	f.Fuzz(func(t *testing.T, scheme, user, pass, host, query string) {
		if len(pass) < 4 || strings.Contains(redact.Mask, pass) {
			return // too short to tell from the rest of the string
		}
		raw := scheme + "://" + url.UserPassword(user, pass).String() + "@" + host + "/db"
		if query != "" {
			raw += "?" + query
		}
		got := redact.URL(raw)
		// The password's escaped form is what raw holds; it must not survive.
		esc := strings.TrimPrefix(url.UserPassword("", pass).String(), ":")
		// The same URL with the password already masked, lowercased as
		// URL lowercases the scheme: what holds the password there holds
		// it where it is no secret (found by FuzzURL: "%20%20" of a user
		// name holds "0%20" of a password).
		masked := strings.ToLower(strings.Replace(raw, url.UserPassword(user, pass).String(), url.UserPassword(user, redact.Mask).String(), 1))
		if strings.Contains(masked, strings.ToLower(esc)) || strings.Contains(masked, strings.ToLower(pass)) {
			return
		}
		if strings.Contains(got, esc) || strings.Contains(got, pass) {
			t.Fatalf("URL(%q) = %q leaks the password", raw, got)
		}
	})
}
