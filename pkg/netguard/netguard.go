// Package netguard keeps user-supplied sources from reaching anything but
// the public internet: CheckInput vets a source before ffmpeg or an HTTP
// client sees it (local paths and allow-listed https URLs that resolve only
// to public addresses), and PublicDialer re-checks every address at connect
// time, so DNS rebinding cannot point a fetch at loopback, a private network
// or a cloud metadata service.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrInputRefused is wrapped by every CheckInput refusal, so callers can turn
// it into a permanent (bad input) error with errors.Is.
var ErrInputRefused = errors.New("input refused")

// lookupTimeout bounds the DNS lookup CheckInput makes for a URL host.
const lookupTimeout = 5 * time.Second

// CheckInput decides whether a user-supplied source may reach ffmpeg: a local
// path, or an https URL whose host is in allowHosts (exact, case-insensitive;
// an entry "*.example.com" allows its subdomains) and resolves only to public
// addresses. Everything ffmpeg would read as a protocol (file:, concat:,
// pipe:, http:, subfile, …) is refused, as are URLs with credentials.
// The address check cannot stop DNS rebinding between this check and ffmpeg's
// own lookup; fetch URLs with PublicDialer and hand ffmpeg the local file.
func CheckInput(src string, allowHosts []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	return checkInput(ctx, src, allowHosts, net.DefaultResolver.LookupNetIP)
}

type lookupFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func checkInput(ctx context.Context, src string, allowHosts []string, lookup lookupFunc) error {
	if src == "" {
		return fmt.Errorf("%w: empty source", ErrInputRefused)
	}
	if strings.ContainsAny(src, "\x00\r\n") {
		return fmt.Errorf("%w: control character in source", ErrInputRefused)
	}
	// ffmpeg reads "subfile,<options>,:<url>" as its subfile protocol
	// whatever the options hold, a slash included (found by FuzzCheckInput).
	if len(src) >= 8 && strings.EqualFold(src[:8], "subfile,") {
		return fmt.Errorf("%w: protocol subfile not allowed, only local files and https URLs", ErrInputRefused)
	}
	// ffmpeg reads "<proto>:<rest>" as a protocol whenever the part before the
	// first colon holds no slash; anything else is a plain file name.
	prefix, _, hasColon := strings.Cut(src, ":")
	if !hasColon || strings.Contains(prefix, "/") {
		if strings.HasPrefix(src, "-") {
			return fmt.Errorf("%w: source %q looks like an option", ErrInputRefused, src)
		}
		return nil
	}
	if !strings.EqualFold(prefix, "https") {
		return fmt.Errorf("%w: protocol %q not allowed, only local files and https URLs", ErrInputRefused, prefix)
	}
	u, err := url.Parse(src)
	if err != nil {
		return fmt.Errorf("%w: parse url: %v", ErrInputRefused, err)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in url", ErrInputRefused)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || !strings.HasPrefix(strings.ToLower(src), "https://") {
		return fmt.Errorf("%w: url %q has no host", ErrInputRefused, src)
	}
	if !hostAllowed(host, allowHosts) {
		return fmt.Errorf("%w: host %q is not on the allow-list", ErrInputRefused, host)
	}
	addrs, err := resolve(ctx, host, lookup)
	if err != nil {
		return fmt.Errorf("%w: resolve %q: %v", ErrInputRefused, host, err)
	}
	for _, a := range addrs {
		if !PublicAddr(a) {
			return fmt.Errorf("%w: host %q resolves to non-public address %s", ErrInputRefused, host, a)
		}
	}
	return nil
}

func resolve(ctx context.Context, host string, lookup lookupFunc) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	addrs, err := lookup(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no addresses")
	}
	return addrs, nil
}

func hostAllowed(host string, allow []string) bool {
	for _, h := range allow {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if host == h {
			return true
		}
	}
	return false
}

// PublicAddr reports whether a is a globally routable unicast address: not
// loopback, private (RFC 1918, fc00::/7), link-local (cloud metadata lives at
// 169.254.169.254), CGNAT, unspecified or multicast.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() ||
		a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach private IPv4
	netip.MustParsePrefix("2002::/16"),    // 6to4 embeds any IPv4
}

// PublicDialer returns a dialer that refuses to connect to non-public
// addresses at connect time, after DNS, so that a host that passed
// CheckInput cannot be rebound to 127.0.0.1 or a metadata service before the
// download. Use it as the DialContext of the http.Transport fetching sources.
func PublicDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: dial %s: %v", ErrInputRefused, address, err)
			}
			if !PublicAddr(ap.Addr()) {
				return fmt.Errorf("%w: dial %s: non-public address", ErrInputRefused, address)
			}
			return nil
		},
	}
}
