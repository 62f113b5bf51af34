package frame

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFrameWritesPNG(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"square", "portrait", "landscape"} {
		out := filepath.Join(t.TempDir(), "f.png")
		var stderr bytes.Buffer
		o, err := parse([]string{"--template", "halo", "--format", format, "--at", "12.5s", "--width", "160", "--height", "160",
			"--set", "bar_color=#00ff88", "--watermark", out}, &stderr)
		require.NoError(t, err)
		require.NoError(t, run(context.Background(), o))
		f, err := os.Open(out)
		require.NoError(t, err)
		img, err := png.Decode(f)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		require.Equal(t, 160, img.Bounds().Dx())
		require.Contains(t, stderr.String(), "frame 375")
	}
}

func TestFrameOutputFirstAndErrors(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "f.png")
	o, err := parse([]string{out, "--template", "minimal", "--at", "3", "--width", "64", "--height", "64", "--cover", "none"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, out, o.out)
	require.NoError(t, run(context.Background(), o))

	_, err = parse([]string{"--template", "minimal"}, &bytes.Buffer{})
	require.Error(t, err)
	o, err = parse([]string{"--template", "vaporwave", out}, &bytes.Buffer{})
	require.NoError(t, err)
	require.ErrorContains(t, run(context.Background(), o), "unknown template")
	o, err = parse([]string{"--at", "soon", out}, &bytes.Buffer{})
	require.NoError(t, err)
	require.ErrorContains(t, run(context.Background(), o), "--at")
}
