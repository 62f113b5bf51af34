package bus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/testenv"
)

// TestProvisionThenCheck: an empty server fails every service's check with
// the full list of what is missing; Provision creates everything, a second
// run changes nothing, a changed policy is reported as drift by Check and
// applied ("updated") by the next Provision.
func TestProvisionThenCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, js := testenv.Connect(t, testenv.NATSServer(t))
	topo := testenv.Topology()

	for _, svc := range []string{bus.ServiceAPI, bus.ServiceCoordinator, bus.ServiceAudio, bus.ServiceRenderer,
		bus.ServiceCDN, bus.ServiceThumbnail} {
		need, err := topo.Needs(svc)
		require.NoError(t, err)
		_, err = topo.Check(ctx, js, svc)
		var miss *bus.MissingError
		require.ErrorAs(t, err, &miss, svc)
		require.Equal(t, need, miss.Missing, "%s: everything it needs is missing", svc)
		require.Contains(t, err.Error(), "backbeat provision")
	}
	_, err := topo.Needs("thumbnailer")
	require.ErrorContains(t, err, `unknown service "thumbnailer"`)

	changes, err := topo.Provision(ctx, js)
	require.NoError(t, err)
	require.Len(t, changes, len(topo.Items()))
	for _, c := range changes {
		require.Equal(t, "created", c.Action, c.Item.String())
	}
	for _, svc := range []string{bus.ServiceCoordinator, bus.ServiceRenderer, bus.ServiceCDN} {
		drift, err := topo.Check(ctx, js, svc)
		require.NoError(t, err, svc)
		require.Empty(t, drift, svc)
	}
	changes, err = topo.Provision(ctx, js)
	require.NoError(t, err)
	for _, c := range changes {
		require.Equal(t, "unchanged", c.Action, c.Item.String())
	}

	// A build with another audio policy sees drift, and provisioning applies it.
	newer := testenv.Topology()
	p := newer.Policy(bus.StepAudio)
	p.MaxDeliver++
	newer.Policies[bus.StepAudio] = p
	drift, err := newer.Check(ctx, js, bus.ServiceAudio)
	require.NoError(t, err, "drift is no reason to refuse to start")
	require.Len(t, drift, 1)
	require.Contains(t, drift[0], "consumer JOBS/audio: max_deliver")
	changes, err = newer.Provision(ctx, js)
	require.NoError(t, err)
	var updated []string
	for _, c := range changes {
		if c.Action != "unchanged" {
			updated = append(updated, c.Action+" "+c.Item.String())
		}
	}
	require.Equal(t, []string{"updated consumer JOBS/audio"}, updated)

	// A pool added later is missing for renderers until provisioned.
	wider := bus.DefaultTopology(bus.DefaultPrefix, append(testenv.Pools, "spot"))
	_, err = wider.Check(ctx, js, bus.ServiceRenderer)
	require.ErrorContains(t, err, "missing consumer JOBS/render-spot-high, consumer JOBS/render-spot-normal, consumer JOBS/render-spot-low;")
}

// TestConnectErrorHasNoPassword: a refused login names the URL and user, not
// the password.
func TestConnectErrorHasNoPassword(t *testing.T) {
	ns := testenv.StartShippedNATS(t)
	_, _, err := bus.Connect(ns.URL, bus.Credentials{User: "audio", Password: "wrong-s3cret"}, "test", zapNop())
	require.Error(t, err)
	require.Contains(t, err.Error(), `as "audio"`)
	require.NotContains(t, err.Error(), "wrong-s3cret")
	url := strings.Replace(ns.URL, "nats://", "nats://audio:wrong-s3cret@", 1)
	_, _, err = bus.Connect(url, bus.Credentials{}, "test", zapNop())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "wrong-s3cret")
	require.Contains(t, err.Error(), "audio:xxxxx@")
	nc, _, err := bus.Connect(ns.URL, ns.Creds("audio"), "test", zapNop())
	require.NoError(t, err, "the right password connects")
	require.True(t, strings.HasPrefix(nc.NewInbox(), "_INBOX_audio."), "replies come on the user's own inbox")
	nc.Close()
}

func zapNop() *zap.Logger { return zap.NewNop() }
