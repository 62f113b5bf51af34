package coordinator_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
)

// TestJobNobodyAcksFailsTheRun: an audio worker that dies on every delivery
// (no ack, no failure report) still ends the run: the max-deliveries
// advisory becomes a step failure, the run errors and is refunded, and the
// job leaves the work queue.
func TestJobNobodyAcksFailsTheRun(t *testing.T) {
	t.Parallel()
	h := setup(t, func(o *options) {
		o.policies = map[string]bus.Policy{bus.StepAudio: {AckWait: 500 * time.Millisecond, MaxDeliver: 2, MaxAckPending: 8}}
	})
	before := h.balance("u1")
	vid := h.vid("crashy")
	h.event(vid, bus.KindVideoCreate, h.create(vid, "r1"))
	h.settle()
	require.Less(t, h.balance("u1"), before)

	cons, err := h.js.Consumer(h.ctx(), bus.StreamJobs, bus.StepAudio)
	require.NoError(t, err)
	for i := 0; i < 2; i++ { // two deliveries, each "crashes" (never acked)
		msg, err := bus.FetchOne(h.ctx(), cons, 5*time.Second)
		require.NoError(t, err)
		require.NotNil(t, msg, "delivery %d", i+1)
	}
	// Workers keep pulling; the server notices the exhausted job on a pull.
	require.Eventually(t, func() bool {
		msg, err := bus.FetchOne(h.ctx(), cons, 200*time.Millisecond)
		require.NoError(t, err)
		require.Nil(t, msg, "no third delivery")
		return h.video(vid).Status == store.StatusError
	}, 15*time.Second, 50*time.Millisecond)
	v := h.video(vid)
	require.Contains(t, v.Reason, "acknowledged")
	require.Equal(t, before, h.balance("u1"), "refunded")
	require.Eventually(t, func() bool {
		st, err := h.js.Stream(h.ctx(), bus.StreamJobs)
		if err != nil {
			return false
		}
		info, err := st.Info(h.ctx())
		return err == nil && info.State.Msgs == 0
	}, 5*time.Second, 50*time.Millisecond, "exhausted job removed from the work queue")
}
