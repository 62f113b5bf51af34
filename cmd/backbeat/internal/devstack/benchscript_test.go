package devstack

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/testenv"
)

// TestBenchScriptsParse runs `bash -n` on every scripts/bench/*.sh: `make
// bench` runs them all, and nothing else would notice a syntax error.
func TestBenchScriptsParse(t *testing.T) {
	t.Parallel()
	scripts, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "scripts", "bench", "*.sh"))
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	for _, s := range scripts {
		out, err := exec.Command("bash", "-n", s).CombinedOutput()
		require.NoError(t, err, "%s: %s", s, out)
	}
}

// TestDevmemQuick runs scripts/bench/devmem.sh (the dev stack's memory
// during one video) in its QUICK mode: a 2 s video, one run. It goes the
// whole way, building backbeat, starting `backbeat dev`, sampling the process
// tree and checking the MP4 with ffprobe, so a change that breaks the
// benchmark fails here. It checks that figures come out, never their values.
func TestDevmemQuick(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(testenv.RepoRoot(t), "scripts", "bench", "devmem.sh"))
	cmd.Env = append(os.Environ(), "QUICK=1", "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	// One row per run: binary, run, tree_mb, go_mb, ffr_mb, …, the video's size and length.
	row := regexp.MustCompile(`(?m)^head +1 +([0-9]+) +([0-9]+) +([0-9]+) .* 1080x1080 2\.0+s$`)
	m := row.FindSubmatch(out)
	require.NotNil(t, m, "no figures for a 2 s 1080x1080 video in:\n%s", out)
	for _, v := range m[1:] {
		require.NotEqual(t, "0", string(v), "a peak RSS of 0 in:\n%s", out)
	}
	require.Regexp(t, `(?m)^# medians of 1 runs$`, string(out))
}
