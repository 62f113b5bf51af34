package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckInput(t *testing.T) {
	t.Parallel()
	// A fake resolver: tests never touch the network.
	dns := map[string][]netip.Addr{
		"cdn.example.com":    {netip.MustParseAddr("93.184.216.34")},
		"media.example.com":  {netip.MustParseAddr("93.184.216.35")},
		"rebind.example.com": {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.1.2.3")},
		"meta.example.com":   {netip.MustParseAddr("169.254.169.254")},
		"v6.example.com":     {netip.MustParseAddr("::1")},
		"mapped.example.com": {netip.MustParseAddr("::ffff:127.0.0.1")},
	}
	lookup := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		if a, ok := dns[host]; ok {
			return a, nil
		}
		return nil, errors.New("no such host")
	}
	allow := []string{"cdn.example.com", "*.example.com", "93.184.216.34", "127.0.0.1", "localhost"}

	ok := []string{
		"/tmp/in.wav",
		"relative/in.mp3",
		"in.flac",
		"./odd:name.wav",
		"/abs/with:colon.wav",
		"https://cdn.example.com/a/b.mp3?sig=1",
		"HTTPS://CDN.example.com/a.mp3",
		"https://media.example.com/x.wav",
		"https://93.184.216.34:8443/x.wav",
	}
	for _, src := range ok {
		require.NoError(t, checkInput(context.Background(), src, allow, lookup), src)
	}

	refused := []string{
		"",
		"-i",
		"file:/etc/passwd",
		"file:///etc/passwd",
		"concat:/a.wav|/b.wav",
		"pipe:0",
		"subfile,,start,0,end,10,,:/etc/passwd",
		"subfile,/x:/etc/passwd", // found by FuzzCheckInput: a slash in the options
		"http://cdn.example.com/a.mp3",
		"rtmp://cdn.example.com/live",
		"data:audio/wav;base64,AAAA",
		"https://evil.com/a.mp3",
		"https://example.com.evil.com/a.mp3",
		"https://user:pw@cdn.example.com/a.mp3",
		"https://127.0.0.1/a.mp3",
		"https://localhost/a.mp3",
		"https://[::1]/a.mp3",
		"https://10.0.0.1/a.mp3",
		"https://rebind.example.com/a.mp3",
		"https://meta.example.com/latest",
		"https://v6.example.com/a.mp3",
		"https://mapped.example.com/a.mp3",
		"https://unknown.example.com/a.mp3",
		"https:cdn.example.com/a.mp3",
		"/tmp/a\x00.wav",
	}
	for _, src := range refused {
		err := checkInput(context.Background(), src, allow, lookup)
		require.ErrorIs(t, err, ErrInputRefused, "%q", src)
	}
}

func TestCheckInputRealResolver(t *testing.T) {
	t.Parallel()
	// "localhost" resolves locally (no network) and must be refused.
	err := CheckInput("https://localhost/a.mp3", []string{"localhost"})
	require.ErrorIs(t, err, ErrInputRefused)
	require.NoError(t, CheckInput("/tmp/a.wav", nil))
}

func TestPublicAddr(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"8.8.8.8", "93.184.216.34", "2606:4700::1111"} {
		require.True(t, PublicAddr(netip.MustParseAddr(s)), s)
	}
	for _, s := range []string{"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
		"100.64.0.1", "0.0.0.0", "224.0.0.1", "::", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1", "64:ff9b::a00:1"} {
		require.False(t, PublicAddr(netip.MustParseAddr(s)), s)
	}
}

func TestPublicDialerRefusesLoopback(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() { _ = http.Serve(ln, http.NotFoundHandler()) }()

	client := &http.Client{Transport: &http.Transport{DialContext: PublicDialer(time.Second).DialContext}}
	_, err = client.Get("http://" + ln.Addr().String() + "/")
	require.ErrorIs(t, err, ErrInputRefused)
}
