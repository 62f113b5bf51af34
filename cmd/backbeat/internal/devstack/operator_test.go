package devstack

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/services/api"
)

const testAdminKey = "operator-key-for-the-e2e-tests"

// act calls the admin endpoint as an operator and returns the result.
func (e *e2e) act(req api.AdminRequest, wantCode int) api.ActionResult {
	e.t.Helper()
	var res api.ActionResult
	body := jsonBody(e.t, req)
	r, err := http.NewRequest(http.MethodPost, e.st.BaseURL+"/v1/admin/actions", body)
	require.NoError(e.t, err)
	r.Header.Set("Authorization", "Bearer "+testAdminKey)
	r.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(r)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, wantCode, resp.StatusCode, "admin action %s", req.Action)
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&res))
	return res
}

// TestOperatorRetryAndReplay: a render that failed on every pool is retried
// by an operator as one new run, however often the retry is asked, holding
// the credits once; the timeline records each worker's report; a bulk
// replay of the time range, after its dry run, creates no run and moves no
// credit.
func TestOperatorRetryAndReplay(t *testing.T) {
	e := setup(t, func(o *Options) { o.AdminKey = testAdminKey })
	ctx := context.Background()
	from := time.Now().Add(-time.Second).UTC()
	before := e.balance()
	e.failEveryRender()
	vid := e.vid("operator")
	e.submit(vid, 0, 2, "square")
	failed := e.waitStatus(vid, "error")
	require.Equal(t, before, e.balance(), "the failed run was refunded")
	e.faults.set("gpu", nil)
	e.faults.set("cpu", nil)

	dry := e.act(api.AdminRequest{Action: api.ActionRetry, VideoID: vid, DryRun: true}, http.StatusOK)
	require.Equal(t, api.OutcomeWould, dry.Videos[0].Outcome, dry.Videos[0].Detail)
	units := dry.Videos[0].Units
	require.Positive(t, units)
	require.Equal(t, before, e.balance(), "a dry run holds nothing")

	// Two operators retry the same failed run: the second either publishes
	// the same create (deduplicated) or, once the retry is the video's run,
	// is skipped.
	first := e.act(api.AdminRequest{RequestID: "retry-a", Action: api.ActionRetry, VideoID: vid}, http.StatusAccepted)
	require.Equal(t, api.OutcomeDone, first.Videos[0].Outcome, first.Videos[0].Detail)
	second := e.act(api.AdminRequest{RequestID: "retry-b", Action: api.ActionRetry, VideoID: vid}, http.StatusAccepted)
	require.Contains(t, []string{api.OutcomeDone, api.OutcomeSkipped}, second.Videos[0].Outcome, second.Videos[0].Detail)
	ready := e.wait(vid, 3*time.Minute, "the retry ready", func(v api.VideoView) bool {
		if v.RunID != failed.RunID && v.Status.Terminal() && v.Status != store.StatusReady {
			t.Fatalf("the retry ended %s (%s)", v.Status, v.Reason)
		}
		return v.RunID != failed.RunID && v.Status == store.StatusReady
	})
	require.NotEqual(t, failed.RunID, ready.RunID)
	e.coordinatorIdle()
	require.Equal(t, before-units, e.balance(), "one retry holds once")
	runs, err := e.st.Store.VideoRuns(ctx, vid)
	require.NoError(t, err)
	require.Len(t, runs, 2, "the failed run and one retry")

	// The workers' reports are on the retry's timeline.
	steps, err := e.st.Store.Steps(ctx, ready.RunID)
	require.NoError(t, err)
	seen := map[string]store.Step{}
	for _, st := range steps {
		seen[st.Name] = st
	}
	for _, name := range []string{"audio", "render", "cdn"} {
		st, ok := seen[name]
		require.True(t, ok, "step %s", name)
		require.NotEmpty(t, st.Worker, "step %s names its worker", name)
		require.GreaterOrEqual(t, st.QueueWaitMS, int64(0))
	}
	require.Positive(t, seen["render"].RunMS, "a render takes time")

	// Bulk replay of the range: dry run, then the replay; nothing changes.
	f := &api.BulkFilter{From: from, To: time.Now().Add(time.Second).UTC()}
	dryReplay := e.act(api.AdminRequest{Action: api.ActionReplay, Filter: f, DryRun: true}, http.StatusOK)
	require.Len(t, dryReplay.Videos, 1)
	require.Equal(t, vid, dryReplay.Videos[0].VideoID)
	require.Equal(t, api.OutcomeWould, dryReplay.Videos[0].Outcome)
	res := e.act(api.AdminRequest{RequestID: "replay-1", Action: api.ActionReplay, Filter: f}, http.StatusAccepted)
	require.Equal(t, api.OutcomeDone, res.Videos[0].Outcome, res.Videos[0].Detail)
	e.coordinatorIdle()
	require.Equal(t, before-units, e.balance(), "a replay moves no credit")
	runs, err = e.st.Store.VideoRuns(ctx, vid)
	require.NoError(t, err)
	require.Len(t, runs, 2, "a replay creates no run")
	v, _ := e.status(vid)
	require.Equal(t, ready.RunID, v.RunID)
	require.Equal(t, store.StatusReady, v.Status)

	trail, err := e.st.Store.ListActions(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, trail, 5, "every action, dry runs included, is in the audit trail")
}
