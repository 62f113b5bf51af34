// Package redact takes secrets out of connection strings (NATS URLs,
// database DSNs, blob store URLs) before they reach a log line or an error.
// Every service and test helper uses it, so one rule decides what is shown:
// the scheme, user name, host, path and harmless query parameters stay, and
// passwords become "xxxxx".
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// Mask is what a secret is replaced with.
const Mask = "xxxxx"

// URL replaces the secrets of every URL in a comma-separated list (NATS
// takes a list of servers) with Mask: the password of the user info, and the
// value of every query parameter whose name says it holds a secret
// (password, secret, token, key). A part that does not parse as a URL, or
// whose "@" is not the end of a user info, may still hold a password:
// everything before its last "@" is dropped. A
// key=value DSN ("host=h password=p") has its password value masked.
func URL(raw string) string {
	var parts []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		// A comma may be part of a password: only a piece that starts a
		// new URL starts a new part.
		if len(parts) > 0 && !strings.Contains(p, "://") {
			parts[len(parts)-1] += "," + p
			continue
		}
		parts = append(parts, p)
	}
	for i, p := range parts {
		parts[i] = one(p)
	}
	return strings.Join(parts, ",")
}

func one(p string) string {
	if !strings.Contains(p, "://") && strings.Contains(p, "=") {
		return keyValue(p)
	}
	u, err := url.Parse(p)
	// A URL that does not parse, or whose "@" did not end a user info (an
	// invalid scheme makes the rest a path, a query or a fragment), keeps
	// only what follows its last "@".
	if at := strings.LastIndex(p, "@"); at >= 0 && (err != nil || u.User == nil) {
		return Mask + "@" + p[at+1:]
	}
	if err != nil {
		return p
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = Mask
		} else {
			masked := false
			for k := range q {
				if secretName(k) {
					q[k] = []string{Mask}
					masked = true
				}
			}
			if masked {
				u.RawQuery = q.Encode()
			}
		}
	}
	return u.String()
}

// keyValue masks the secret values of a libpq key=value DSN.
func keyValue(p string) string {
	fields := strings.Fields(p)
	for i, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && secretName(k) {
			fields[i] = k + "=" + Mask
		}
	}
	return strings.Join(fields, " ")
}

func secretName(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"password", "secret", "token", "key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Error drops the URL from a *url.Error in err's chain, keeping only what
// went wrong: a URL that does not parse cannot be trusted to redact (its
// password may sit anywhere), so none of it is shown. Other errors come back
// as they are.
func Error(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
