package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/testenv"
)

// TestProvisionCommand runs `backbeat provision` against a nats-server on
// the shipped configuration: as admin it creates the whole topology, then
// reports every item unchanged; as a service user it is refused; bad flags
// are usage errors that touch nothing.
func TestProvisionCommand(t *testing.T) {
	ns := testenv.StartShippedNATS(t)
	run := func(user string, args ...string) (string, error) {
		var out, errOut syncBuffer
		vars := map[string]string{"BACKBEAT_NATS_URL": ns.URL, "BACKBEAT_NATS_USER": user,
			"BACKBEAT_NATS_PASSWORD": ns.Passwords[user]}
		err := Provision(t.Context(), Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return vars[k] }}, args)
		return out.String(), err
	}
	for _, args := range [][]string{{"--replicas", "2"}, {"--pools", "gpu,"}, {"--pools", "a.b"}, {"extra"}} {
		_, err := run("admin", args...)
		require.True(t, errors.Is(err, ErrUsage), "%v: %v", args, err)
	}

	out, err := run("admin", "--pools", "gpu")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// 4 streams, 2 buckets, coordinator + exhausted + audio/cdn/thumbnail/notify + 3 render consumers.
	require.Len(t, lines, 15, out)
	require.Contains(t, out, "created  stream EVENTS\n")
	require.Contains(t, out, "created  consumer JOBS/render-gpu-low\n")
	require.NotContains(t, out, "render-cpu", "only the pools asked for")

	out, err = run("admin", "--pools", "gpu")
	require.NoError(t, err)
	require.Equal(t, 15, strings.Count(out, "unchanged"), out)

	_, err = run("audio", "--pools", "gpu")
	require.ErrorContains(t, err, "is this the NATS admin user?")
	require.NotContains(t, err.Error(), ns.Passwords["audio"])
}
