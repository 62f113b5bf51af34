package media_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/pkg/testenv"
)

func TestCheckPlayable(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()
	gen := func(name string, extra ...string) string {
		out := filepath.Join(dir, name)
		args := []string{"-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:d=1:r=25", "-f", "lavfi", "-i", "sine=d=1",
			"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"}
		args = append(append(args, extra...), out)
		require.NoError(t, media.Run(ctx, args))
		return out
	}
	require.NoError(t, media.CheckPlayable(ctx, gen("fast.mp4", "-movflags", "+faststart")))

	err := media.CheckPlayable(ctx, gen("slow.mp4"))
	require.ErrorContains(t, err, "moov is not before mdat")

	broken := gen("broken.mp4", "-movflags", "+faststart")
	b, err := os.ReadFile(broken)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(broken, b[:len(b)*2/3], 0o644))
	require.Error(t, media.CheckPlayable(ctx, broken), "a truncated file does not decode")
}
