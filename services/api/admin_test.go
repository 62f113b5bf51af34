package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/api"
	"github.com/backbeat/backbeat/services/api/apitest"
)

func act(t *testing.T, e *apitest.Env, req api.AdminRequest) (int, api.ActionResult) {
	t.Helper()
	var res api.ActionResult
	code := call(t, "POST", e.URL+"/v1/admin/actions", apitest.AdminKey, req, &res)
	return code, res
}

func auditCount(t *testing.T, e *apitest.Env) int64 {
	t.Helper()
	var n int64
	require.NoError(t, e.Store.DB.Model(&store.AdminAction{}).Count(&n).Error)
	return n
}

// TestAdminActionsRefuseBadInput: every malformed action is a 400 (a user's
// key a 403), and none is recorded or publishes anything.
func TestAdminActionsRefuseBadInput(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusProcessing}, store.StageRender)
	now := time.Now().UTC()
	for _, tc := range []struct {
		name string
		req  api.AdminRequest
		want string
	}{
		{"unknown action", api.AdminRequest{RequestID: "a1", Action: "delete", VideoID: "v1"}, "action must be one of"},
		{"no request id", api.AdminRequest{Action: api.ActionCancel, VideoID: "v1"}, "request_id is required"},
		{"bad request id", api.AdminRequest{RequestID: "a b", Action: api.ActionCancel, VideoID: "v1"}, "request_id must be"},
		{"no target", api.AdminRequest{RequestID: "a1", Action: api.ActionCancel}, "name a video_id or a filter"},
		{"both targets", api.AdminRequest{RequestID: "a1", Action: api.ActionReplay, VideoID: "v1",
			Filter: &api.BulkFilter{From: now.Add(-time.Hour), To: now}}, "not both"},
		{"bad video", api.AdminRequest{RequestID: "a1", Action: api.ActionCancel, VideoID: "../v1"}, "video_id"},
		{"no range", api.AdminRequest{RequestID: "a1", Action: api.ActionReplay, Filter: &api.BulkFilter{}}, "filter.from and filter.to"},
		{"range reversed", api.AdminRequest{RequestID: "a1", Action: api.ActionReplay,
			Filter: &api.BulkFilter{From: now, To: now.Add(-time.Hour)}}, "before filter.to"},
		{"range too long", api.AdminRequest{RequestID: "a1", Action: api.ActionReplay,
			Filter: &api.BulkFilter{From: now.Add(-40 * 24 * time.Hour), To: now}}, "limited to"},
		{"bad status", api.AdminRequest{RequestID: "a1", Action: api.ActionReplay,
			Filter: &api.BulkFilter{From: now.Add(-time.Hour), To: now, Statuses: []string{"done"}}}, "unknown status"},
	} {
		var eb struct{ Error string }
		code := call(t, "POST", e.URL+"/v1/admin/actions", apitest.AdminKey, tc.req, &eb)
		require.Equal(t, http.StatusBadRequest, code, tc.name)
		require.Contains(t, eb.Error, tc.want, tc.name)
	}
	require.Equal(t, http.StatusForbidden, call(t, "POST", e.URL+"/v1/admin/actions", e.Key,
		api.AdminRequest{RequestID: "a1", Action: api.ActionCancel, VideoID: "v1"}, nil))
	require.Equal(t, http.StatusForbidden, call(t, "GET", e.URL+"/v1/admin/failures", e.Key, nil, nil))
	require.Zero(t, auditCount(t, e))
	require.Empty(t, e.Events(t, e.Pub.Subjects().Events()))
}

// TestAdminCancelIsSafeToRepeat: a dry run publishes nothing; the cancel
// names the current run; the same request id again does nothing more; a
// cancel of a finished run is skipped; every call is in the audit trail.
func TestAdminCancelIsSafeToRepeat(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusProcessing}, store.StageRender)
	e.SeedVideo(t, store.Video{ID: "v2", UserID: e.UserID, RunID: "r2", Status: store.StatusReady}, store.StageDone)
	cancels := e.Pub.Subjects().EventsOfKind(bus.KindVideoCancel)

	code, res := act(t, e, api.AdminRequest{Action: api.ActionCancel, VideoID: "v1", DryRun: true})
	require.Equal(t, http.StatusOK, code)
	require.Len(t, res.Videos, 1)
	require.Equal(t, api.OutcomeWould, res.Videos[0].Outcome)
	require.Equal(t, "r1", res.Videos[0].RunID)
	require.Empty(t, e.Events(t, cancels), "a dry run publishes nothing")

	req := api.AdminRequest{RequestID: "op-cancel-1", Action: api.ActionCancel, VideoID: "v1", Reason: "customer asked"}
	code, res = act(t, e, req)
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, api.OutcomeDone, res.Videos[0].Outcome)
	msgs := e.Events(t, cancels)
	require.Len(t, msgs, 1)
	c := decode(t, &backbeatv1.VideoCancel{}, msgs[0].Data())
	require.Equal(t, "r1", c.GetRunId())
	require.Equal(t, "customer asked", c.GetReason())

	code, again := act(t, e, req)
	require.Equal(t, http.StatusOK, code)
	require.True(t, again.Repeated)
	require.Equal(t, res.Videos, again.Videos)
	require.Len(t, e.Events(t, cancels), 1, "a repeated action publishes nothing")
	history := e.Events(t, e.Pub.Subjects().Event("v1", bus.KindAdminAction))
	require.Len(t, history, 1, "the cancel, not its dry run, is in the video's history, once")
	rec := decode(t, &backbeatv1.AdminAction{}, history[0].Data())
	require.Equal(t, api.ActionCancel, rec.GetAction())
	require.Equal(t, "r1", rec.GetRunId())
	require.Equal(t, "customer asked", rec.GetReason())

	req.VideoID = "v2"
	code, _ = act(t, e, req)
	require.Equal(t, http.StatusConflict, code, "a request id names one action")

	code, res = act(t, e, api.AdminRequest{RequestID: "op-cancel-2", Action: api.ActionCancel, VideoID: "v2"})
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, api.OutcomeSkipped, res.Videos[0].Outcome)
	require.Contains(t, res.Videos[0].Detail, "ready")
	require.Len(t, e.Events(t, cancels), 1)

	var trail api.ActionsResponse
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/admin/actions?video=v1", apitest.AdminKey, nil, &trail))
	require.Len(t, trail.Actions, 2, "the dry run and the cancel of v1")
	require.Equal(t, "op-cancel-1", trail.Actions[0].RequestID)
	require.Equal(t, api.AdminActor, trail.Actions[0].Actor)
	require.True(t, trail.Actions[1].DryRun)
}

// TestAdminRetryStartsOneRun: a failed run is retried from its own request,
// under a request id named by the run, so two operators' retries are one
// create on the stream; a run that did not fail, or a user short of
// credits, is skipped.
func TestAdminRetryStartsOneRun(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusError}, store.StageDone)
	spec, err := protojson.Marshal(&backbeatv1.VideoCreate{VideoId: "v1", UserId: e.UserID, AudioKey: "uploads/v1/audio.wav",
		StartSeconds: 0, EndSeconds: 5, Template: "pulse", RequestId: "app-1"})
	require.NoError(t, err)
	require.NoError(t, e.Store.DB.Model(&store.Run{}).Where("id = ?", "r1").Updates(map[string]any{"spec": string(spec), "units": 3}).Error)
	creates := e.Pub.Subjects().EventsOfKind(bus.KindVideoCreate)

	_, dry := act(t, e, api.AdminRequest{Action: api.ActionRetry, VideoID: "v1", DryRun: true})
	require.Equal(t, api.OutcomeWould, dry.Videos[0].Outcome)
	require.EqualValues(t, 3, dry.Videos[0].Units)
	require.Empty(t, e.Events(t, creates))

	for _, id := range []string{"op-retry-1", "op-retry-2"} {
		code, res := act(t, e, api.AdminRequest{RequestID: id, Action: api.ActionRetry, VideoID: "v1"})
		require.Equal(t, http.StatusAccepted, code)
		require.Equal(t, api.OutcomeDone, res.Videos[0].Outcome, res.Videos[0].Detail)
	}
	msgs := e.Events(t, creates)
	require.Len(t, msgs, 1, "two retries of one failed run are one create")
	m := decode(t, &backbeatv1.VideoCreate{}, msgs[0].Data())
	require.Equal(t, api.RetryRequestID("r1"), m.GetRequestId())
	require.Equal(t, "pulse", m.GetTemplate())
	require.Equal(t, e.UserID, m.GetUserId())

	e.SeedVideo(t, store.Video{ID: "v2", UserID: e.UserID, RunID: "r2", Status: store.StatusReady}, store.StageDone)
	_, res := act(t, e, api.AdminRequest{RequestID: "op-retry-3", Action: api.ActionRetry, VideoID: "v2"})
	require.Equal(t, api.OutcomeSkipped, res.Videos[0].Outcome)

	require.NoError(t, e.Store.DB.Model(&store.User{}).Where("id = ?", e.UserID).Update("balance", 2).Error)
	require.NoError(t, e.Store.DB.Model(&store.Run{}).Where("id = ?", "r1").Update("id", "r3").Error)
	e.SetVideo(t, "v1", map[string]any{"run_id": "r3"})
	_, res = act(t, e, api.AdminRequest{RequestID: "op-retry-4", Action: api.ActionRetry, VideoID: "v1"})
	require.Equal(t, api.OutcomeSkipped, res.Videos[0].Outcome)
	require.Contains(t, res.Videos[0].Detail, "has 2 units, the retry needs 3")
	require.Len(t, e.Events(t, creates), 1)
}

// TestAdminBulkReplay: a bulk replay selects videos by time range and
// status, a dry run counts their events, the replay re-publishes each
// (video.status skipped) marked as a replay, and repeating it adds nothing.
func TestAdminBulkReplay(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusReady}, store.StageDone)
	e.SeedVideo(t, store.Video{ID: "v2", UserID: e.UserID, RunID: "r2", Status: store.StatusError}, store.StageDone)
	ctx := t.Context()
	subj := e.Pub.Subjects()
	require.NoError(t, e.Pub.Publish(ctx, subj.Event("v1", bus.KindVideoCreate), &backbeatv1.VideoCreate{VideoId: "v1", UserId: e.UserID}, "c1"))
	require.NoError(t, e.Pub.Publish(ctx, subj.Event("v1", bus.KindAudioDone), &backbeatv1.AudioDone{VideoId: "v1", RunId: "r1"}, "a1"))
	require.NoError(t, e.Pub.Publish(ctx, subj.Event("v1", bus.KindVideoStatus), &backbeatv1.VideoStatusChanged{VideoId: "v1", RunId: "r1"}, "s1"))
	require.NoError(t, e.Pub.Publish(ctx, subj.Event("v2", bus.KindVideoCreate), &backbeatv1.VideoCreate{VideoId: "v2", UserId: e.UserID}, "c2"))

	now := time.Now().UTC()
	f := &api.BulkFilter{From: now.Add(-time.Hour), To: now.Add(time.Minute), Statuses: []string{"ready"}}
	code, dry := act(t, e, api.AdminRequest{Action: api.ActionReplay, Filter: f, DryRun: true})
	require.Equal(t, http.StatusOK, code)
	require.Len(t, dry.Videos, 1, "only the ready video")
	require.Equal(t, "v1", dry.Videos[0].VideoID)
	require.Equal(t, "would replay 2 events (no run or balance changes)", dry.Videos[0].Detail)
	require.Len(t, e.Events(t, subj.Events()), 4)

	req := api.AdminRequest{RequestID: "op-replay-1", Action: api.ActionReplay, Filter: f}
	code, res := act(t, e, req)
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "replayed 2 events", res.Videos[0].Detail)
	all := e.Events(t, subj.Events())
	require.Len(t, all, 7, "two events replayed, and the action recorded in v1's history")
	for _, m := range all[4:6] {
		require.NotEmpty(t, m.Headers().Get(bus.HeaderReplayOf), m.Subject())
	}
	rec := decode(t, &backbeatv1.AdminAction{}, all[6].Data())
	require.Equal(t, subj.Event("v1", bus.KindAdminAction), all[6].Subject())
	require.Equal(t, "op-replay-1", rec.GetRequestId())
	require.Equal(t, api.AdminActor, rec.GetActor())
	require.Equal(t, "replayed 2 events", rec.GetDetail())
	_, again := act(t, e, req)
	require.True(t, again.Repeated)
	require.Len(t, e.Events(t, subj.Events()), 7)
	// A second replay skips the operators' record, as it skips video.status,
	// and the first replay's copies: it re-publishes the two originals.
	_, res = act(t, e, api.AdminRequest{RequestID: "op-replay-2", Action: api.ActionReplay, VideoID: "v1"})
	require.Equal(t, "replayed 2 events", res.Videos[0].Detail)

	f2 := &api.BulkFilter{From: now.Add(-2 * time.Hour), To: now.Add(-time.Hour)}
	_, none := act(t, e, api.AdminRequest{Action: api.ActionReplay, Filter: f2, DryRun: true})
	require.Empty(t, none.Videos, "nothing was created in that range")
}

// TestFailuresGroupByReason: failures that differ only in ids and numbers
// are one group; the groups come largest first.
func TestFailuresGroupByReason(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	now := time.Now().UTC()
	end := now
	for i, v := range []string{"va", "vb", "vc"} {
		run := []string{"r000000000000000000000001", "r000000000000000000000002", "r000000000000000000000003"}[i]
		e.SeedVideo(t, store.Video{ID: v, UserID: e.UserID, RunID: run, Status: store.StatusError}, store.StageDone,
			store.Step{Name: "render", Attempt: 1, Pool: "gpu", StartedAt: now, EndedAt: &end, Worker: "gpu-1",
				Error: "render " + v + ": ffmpeg exited 1 after frame " + []string{"10", "200", "3000"}[i] + " of runs/" + v + "/" + run + "/video.mp4"})
	}
	e.SeedVideo(t, store.Video{ID: "vd", UserID: e.UserID, RunID: "r000000000000000000000004", Status: store.StatusError}, store.StageDone,
		store.Step{Name: "audio", StartedAt: now, EndedAt: &end, Error: "bad input: not an audio file"})
	var res api.FailuresResponse
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/admin/failures?since=1h", apitest.AdminKey, nil, &res))
	require.Equal(t, 4, res.Total)
	require.Len(t, res.Groups, 2)
	require.Equal(t, "render <video>: ffmpeg exited <n> after frame <n> of <key>", res.Groups[0].Reason)
	require.Equal(t, 3, res.Groups[0].Count)
	require.Equal(t, 3, res.Groups[0].Videos)
	require.Equal(t, "gpu-1", res.Groups[0].Failures[0].Worker)
	require.Equal(t, "audio", res.Groups[1].Step)
	require.Equal(t, http.StatusBadRequest, call(t, "GET", e.URL+"/v1/admin/failures?since=yesterday", apitest.AdminKey, nil, nil))
}

// TestActionOutlivesItsCaller: an action whose caller has gone away (its
// context cancelled, as when an HTTP client times out) still runs to its
// end and is recorded with its outcome.
func TestActionOutlivesItsCaller(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusProcessing}, store.StageRender)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err := e.Service.Act(ctx, "test", api.AdminRequest{RequestID: "gone-1", Action: api.ActionCancel, VideoID: "v1"})
	require.NoError(t, err)
	require.Equal(t, api.OutcomeDone, res.Videos[0].Outcome)
	require.Len(t, e.Events(t, e.Pub.Subjects().EventsOfKind(bus.KindVideoCancel)), 1)
	trail, err := e.Service.AuditTrail(t.Context(), "v1", 10)
	require.NoError(t, err)
	require.Len(t, trail, 1)
	require.Equal(t, api.OutcomeDone, trail[0].Videos[0].Outcome, "the outcome is recorded")
}
