package cli

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/services/api"
)

func TestBar(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pct  float64
		want string
	}{
		{0, "[----------]"},
		{9.9, "[----------]"},
		{10, "[#---------]"},
		{55, "[#####-----]"},
		{100, "[##########]"},
		{250, "[##########]"},
		{-3, "[----------]"},
		{math.NaN(), "[----------]"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, Bar(tc.pct, 10), "pct %v", tc.pct)
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	queued := api.VideoView{VideoID: "v1"}
	require.Equal(t, "queued                 "+Bar(0, BarWidth)+"   0%", ProgressLine(queued))

	audio := api.VideoView{Status: "pending", Stage: "audio"}
	require.True(t, strings.HasPrefix(ProgressLine(audio), "preparing audio "))

	render := api.VideoView{Status: "processing", Stage: "render",
		Progress: &api.ProgressView{Percent: 50, FramesDone: 60, FramesTotal: 120, Pool: "cpu", Attempt: 2}}
	require.InDelta(t, 52.5, Overall(render), 1e-9)
	require.Equal(t, "rendering              "+Bar(52.5, BarWidth)+"  52%  frames 60/120 on cpu (attempt 2)", ProgressLine(render))

	waiting := api.VideoView{Status: "processing", Stage: "render"}
	require.Contains(t, ProgressLine(waiting), "waiting for a renderer")
	require.Contains(t, ProgressLine(api.VideoView{Status: "processing", Stage: "cdn"}), "publishing")
	require.Contains(t, ProgressLine(api.VideoView{Status: "ready"}), "100%")
	require.Contains(t, ProgressLine(api.VideoView{Status: "stalled", Stage: "render"}), "stalled")
}

func TestProgressDisplay(t *testing.T) {
	t.Parallel()
	steps := []api.VideoView{
		{Status: "pending", Stage: "audio"},
		{Status: "processing", Stage: "render", Progress: &api.ProgressView{Percent: 1}},
		{Status: "processing", Stage: "render", Progress: &api.ProgressView{Percent: 2}},
		{Status: "processing", Stage: "render", Progress: &api.ProgressView{Percent: 60}},
		{Status: "ready"},
	}
	var plain bytes.Buffer
	d := &progressDisplay{env: Env{Stderr: &plain}}
	for _, v := range steps {
		d.show(v)
	}
	d.done()
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	// Percent 1 and 2 fall in the same tenth: one line for both.
	require.Len(t, lines, 4)
	require.NotContains(t, plain.String(), "\r")

	var tty bytes.Buffer
	d = &progressDisplay{env: Env{Stderr: &tty, StderrTTY: true}}
	for _, v := range steps {
		d.show(v)
	}
	d.done()
	out := tty.String()
	require.Equal(t, 5, strings.Count(out, "\r"))
	require.Equal(t, 5, strings.Count(out, "\x1b[K"))
	require.True(t, strings.HasSuffix(out, "100%\x1b[K\n"))
}

func TestParseInterleavedFlags(t *testing.T) {
	t.Parallel()
	fs := newFlagSet(Env{Stderr: &bytes.Buffer{}}, "x", "")
	start := fs.Float64("start", 0, "")
	wait := fs.Bool("wait", false, "")
	pos, err := parse(fs, []string{"--start", "3", "song.mp3", "--wait", "--", "-odd"})
	require.NoError(t, err)
	require.Equal(t, []string{"song.mp3", "-odd"}, pos)
	require.Equal(t, 3.0, *start)
	require.True(t, *wait)

	_, err = parse(newFlagSet(Env{Stderr: &bytes.Buffer{}}, "x", ""), []string{"--nope"})
	require.ErrorIs(t, err, ErrUsage)
}

func TestAPIKeyResolution(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "api-key")
	require.NoError(t, os.WriteFile(keyFile, []byte("from-file-0123456789\n"), 0o600))
	env := Env{Getenv: func(string) string { return "" }, DevKeyFile: keyFile}

	c, err := (&apiFlags{}).client(env)
	require.NoError(t, err)
	require.Equal(t, "from-file-0123456789", c.Key)
	require.Equal(t, DefaultAPIURL, c.BaseURL)

	env.Getenv = func(k string) string {
		return map[string]string{"BACKBEAT_API_KEY": "from-env", "BACKBEAT_API_URL": "http://api:1/"}[k]
	}
	c, err = (&apiFlags{}).client(env)
	require.NoError(t, err)
	require.Equal(t, "from-env", c.Key)
	require.Equal(t, "http://api:1", c.BaseURL)

	c, err = (&apiFlags{key: "from-flag"}).client(env)
	require.NoError(t, err)
	require.Equal(t, "from-flag", c.Key)

	_, err = (&apiFlags{}).client(Env{Getenv: func(string) string { return "" }})
	require.ErrorContains(t, err, "no API key")
}
