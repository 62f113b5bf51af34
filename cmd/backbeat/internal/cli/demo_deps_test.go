package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/testenv"
)

// shell runs name args in the repository root with a clean make environment
// (a `make test` above this test must not leak its flags into the make -n
// below) and returns its output lines, blank ones dropped.
func shell(t *testing.T, root, name string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "MAKEFLAGS=", "MAKELEVEL=", "FIRSTRUN=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestMakeRunNeedsOnlyTheDemo holds `make run` to what Demo uses (issue 11):
// ffmpeg from apt and the CLI, built while apt works; no service binaries and
// none of the test, lint or generate tools, which cost minutes on a fresh
// machine.
func TestMakeRunNeedsOnlyTheDemo(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)

	want := []string{
		"scripts/install-deps.sh go",
		"make --no-print-directory -j2 demo-song demo-cli",
		"scripts/install-deps.sh run",
		"scripts/demo-song.sh .data/demo.wav 40", // only while .data/demo.wav is missing
		"go build -trimpath -o bin/backbeat ./cmd/backbeat",
		"bin/backbeat demo .data/demo.wav",
	}
	steps := shell(t, root, "make", "-n", "--no-print-directory", "run")
	for _, s := range steps {
		require.Contains(t, want, s, "make run runs %q, which the demo does not need", s)
	}
	for _, w := range want {
		if !strings.HasPrefix(w, "scripts/demo-song.sh") {
			require.Contains(t, steps, w)
		}
	}

	// install-deps.sh installs from this plan, so the plan is what gets installed.
	require.Equal(t, []string{"apt ca-certificates"},
		shell(t, root, "bash", "scripts/install-deps.sh", "--print", "go"))
	plan := shell(t, root, "bash", "scripts/install-deps.sh", "--print", "run")
	require.Equal(t, []string{"apt ca-certificates", "apt ffmpeg"}, plan)

	// The README says what the first `make run` installs, and nothing more.
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	_, says, ok := strings.Cut(string(raw), "`make run` installs ")
	require.True(t, ok, "README.md no longer says what `make run` installs")
	says, _, _ = strings.Cut(says, "`make test`")
	for _, p := range plan {
		require.Contains(t, says, strings.TrimPrefix(p, "apt "), "README.md: what `make run` installs")
	}
	for _, tool := range []string{"minio", "buf", "staticcheck", "nats-server", "postgres"} {
		require.NotContains(t, strings.ToLower(says), tool, "README.md: what `make run` installs")
	}
}

// TestTargetsInstallWhatTheyUse: every other target still gets, on a fresh
// machine, what its scripts and tests call.
func TestTargetsInstallWhatTheyUse(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	services := []string{"apt ffmpeg", "apt postgresql", "go minio ", "go nats-server "}
	for target, want := range map[string][]string{
		// The bench scripts make test runs (devmem.sh, pipeline.sh) call curl, jq and python3.
		"test":     append([]string{"apt curl", "apt jq", "apt python3"}, services...),
		"smoke":    append([]string{"apt curl"}, services...),
		"chaos":    services,
		"lint":     {"go staticcheck "},
		"generate": {"go buf ", "go protoc-gen-go "},
	} {
		require.Contains(t, shell(t, root, "make", "-n", "--no-print-directory", target), "scripts/install-deps.sh "+target)
		plan := strings.Join(shell(t, root, "bash", "scripts/install-deps.sh", "--print", target), "\n") + "\n"
		require.Contains(t, plan, "apt ca-certificates\n", "%s: the go command fetches modules over HTTPS", target)
		for _, w := range want {
			require.Contains(t, plan, w, "make %s", target)
		}
	}
	require.Contains(t, shell(t, root, "make", "-n", "--no-print-directory", "check-generated"), "scripts/install-deps.sh generate")
}

// TestFirstRunBenchSkips: scripts/bench/firstrun.sh parses, and `make bench`
// without FIRSTRUN=1 passes over it in an instant with the reason.
func TestFirstRunBenchSkips(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	script := filepath.Join("scripts", "bench", "firstrun.sh")
	shell(t, root, "bash", "-n", script)
	out := shell(t, root, "bash", script)
	require.Len(t, out, 1)
	require.True(t, strings.HasPrefix(out[0], "firstrun: skipped: set FIRSTRUN=1"), out[0])
}
