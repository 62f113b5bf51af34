package netguard

import (
	"context"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// ffmpegProtocol is how ffmpeg (libavformat/avio.c, url_find_protocol)
// picks the protocol of an input: the longest prefix of scheme characters,
// when a colon follows it, or "subfile" for "subfile,…:…"; anything else is
// a plain file.
func ffmpegProtocol(src string) string {
	const schemeChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."
	n := 0
	for n < len(src) && strings.IndexByte(schemeChars, src[n]) >= 0 {
		n++
	}
	if n < len(src) && src[n] == ':' {
		return strings.ToLower(src[:n])
	}
	if strings.HasPrefix(src, "subfile,") && strings.Contains(src[8:], ":") {
		return "subfile"
	}
	return "file"
}

// FuzzCheckInput checks what CheckInput lets through against a model of how
// ffmpeg reads a source: whatever is accepted is a local file or an https
// URL, never an option; an accepted URL has no credentials, a host on the
// allow-list, and resolves (through a fake resolver: hosts with "internal"
// in their name resolve to 10.0.0.7) only to public addresses.
func FuzzCheckInput(f *testing.F) {
	for _, s := range []string{
		"https://cdn.example.com/a.mp3", "https://u:p@cdn.example.com/a", "HTTPS://CDN.example.com/a",
		"http://cdn.example.com/a", "file:/etc/passwd", "/tmp/a.wav", "a:b", "./a:b", "-i",
		"subfile,,start,0,end,0,,:/etc/passwd", "concat:/a|/b", "https://internal.example.com/x",
		"https://127.0.0.1/a", "https://[::1]/a", "https:cdn.example.com/a", "https:///a", "https://cdn.example.com\\@evil/a",
	} {
		f.Add(s, "cdn.example.com,*.example.com")
	}
	lookup := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		if strings.Contains(host, "internal") {
			return []netip.Addr{netip.MustParseAddr("10.0.0.7")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
	}
	f.Fuzz(func(t *testing.T, src, allow string) {
		allowHosts := strings.Split(allow, ",")
		if checkInput(context.Background(), src, allowHosts, lookup) != nil {
			return
		}
		if strings.HasPrefix(src, "-") || strings.ContainsAny(src, "\x00\r\n") {
			t.Fatalf("accepted %q: an option or a control character", src)
		}
		switch p := ffmpegProtocol(src); p {
		case "file":
			return
		case "https":
		default:
			t.Fatalf("accepted %q, which ffmpeg reads with protocol %q", src, p)
		}
		u, err := url.Parse(src)
		if err != nil || u.User != nil || !strings.EqualFold(u.Scheme, "https") {
			t.Fatalf("accepted https source %q: parse %v, user %v", src, err, u)
		}
		host := strings.ToLower(u.Hostname())
		if !hostAllowed(host, allowHosts) {
			t.Fatalf("accepted %q: host %q not on %q", src, host, allow)
		}
		if strings.Contains(host, "internal") {
			t.Fatalf("accepted %q, which resolves to a private address", src)
		}
		if a, err := netip.ParseAddr(host); err == nil && !PublicAddr(a) {
			t.Fatalf("accepted %q, a non-public address", src)
		}
	})
}

// FuzzPublicAddr: no address PublicAddr accepts is loopback, private,
// link-local, multicast or unspecified, and an IPv4 address is judged the
// same as its IPv4-mapped IPv6 form.
func FuzzPublicAddr(f *testing.F) {
	for _, s := range []string{"93.184.216.34", "10.1.2.3", "169.254.169.254", "::ffff:127.0.0.1", "fc00::1", "2002:7f00:1::", "64:ff9b::a00:1", "100.64.0.1"} {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 16 && len(b) != 4 {
			return
		}
		a, _ := netip.AddrFromSlice(b)
		if PublicAddr(a) {
			u := a.Unmap()
			if u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsMulticast() || u.IsUnspecified() || !u.IsGlobalUnicast() {
				t.Fatalf("PublicAddr(%s) is true", a)
			}
		}
		if a.Is4() && PublicAddr(a) != PublicAddr(netip.AddrFrom16(a.As16())) {
			t.Fatalf("PublicAddr(%s) differs from its IPv4-mapped form", a)
		}
	})
}
