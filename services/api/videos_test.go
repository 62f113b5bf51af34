package api_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/api"
	"github.com/backbeat/backbeat/services/api/apitest"
)

func TestBadInputsAre400AndPublishNothing(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	var up api.UploadResponse
	require.Equal(t, http.StatusCreated, call(t, "POST", e.URL+"/v1/uploads?video_id=v1&kind=audio", e.Key, apitest.WAV(100), &up))

	uploads := []struct {
		name, query string
		body        []byte
		code        int
	}{
		{"bad video id", "video_id=../x&kind=audio", apitest.WAV(10), 400},
		{"bad kind", "video_id=v1&kind=video", apitest.WAV(10), 400},
		{"text as audio", "video_id=v1&kind=audio", []byte("<html><body>hello</body></html>"), 400},
		{"empty", "video_id=v1&kind=audio", nil, 400},
		{"audio as cover", "video_id=v1&kind=cover", apitest.WAV(10), 400},
		{"cover too large", "video_id=v1&kind=cover", append(append([]byte{}, apitest.PNG...), bytes.Repeat([]byte{0}, 70<<10)...), 413},
	}
	for _, tc := range uploads {
		var eb api.ErrorBody
		require.Equal(t, tc.code, call(t, "POST", e.URL+"/v1/uploads?"+tc.query, e.Key, tc.body, &eb), tc.name)
		require.NotEmpty(t, eb.Error, tc.name)
	}

	good := func() api.CreateRequest {
		return api.CreateRequest{VideoID: "v1", AudioKey: up.Key, StartSeconds: 1, EndSeconds: 2, Template: "spectrum", Format: "square"}
	}
	creates := []struct {
		name   string
		mutate func(*api.CreateRequest)
		want   string
	}{
		{"bad id", func(r *api.CreateRequest) { r.VideoID = "a/b" }, "invalid video id"},
		{"no audio", func(r *api.CreateRequest) { r.AudioKey = "" }, "audio_key or audio_url is required"},
		{"both audio", func(r *api.CreateRequest) { r.AudioURL = "https://x.example/a.mp3" }, "not both"},
		{"http url", func(r *api.CreateRequest) { r.AudioKey, r.AudioURL = "", "file:///etc/passwd" }, "https URL"},
		{"other video's key", func(r *api.CreateRequest) { r.AudioKey = "uploads/v2/audio.wav" }, "upload of this video"},
		{"traversal key", func(r *api.CreateRequest) { r.AudioKey = "uploads/v1/../v2/audio.wav" }, "invalid object key"},
		{"not uploaded", func(r *api.CreateRequest) { r.AudioKey = "uploads/v1/audio.mp3" }, "was not uploaded"},
		{"end before start", func(r *api.CreateRequest) { r.EndSeconds = 1 }, "must be after start_seconds"},
		{"negative start", func(r *api.CreateRequest) { r.StartSeconds = -1 }, "must not be negative"},
		{"unknown format", func(r *api.CreateRequest) { r.Format = "circle" }, "format must be"},
		{"no format", func(r *api.CreateRequest) { r.Format = "" }, "format must be"},
		{"bad template", func(r *api.CreateRequest) { r.Template = "../x" }, "template"},
		{"bad request id", func(r *api.CreateRequest) { r.RequestID = "a b" }, "request_id"},
	}
	for _, tc := range creates {
		req := good()
		tc.mutate(&req)
		var eb api.ErrorBody
		require.Equal(t, http.StatusBadRequest, call(t, "POST", e.URL+"/v1/videos", e.Key, req, &eb), tc.name)
		require.Contains(t, eb.Error, tc.want, tc.name)
	}
	var eb api.ErrorBody
	require.Equal(t, http.StatusBadRequest, call(t, "POST", e.URL+"/v1/videos", e.Key, `{"video_id":`, &eb))
	require.Contains(t, eb.Error, "invalid JSON")
	require.Equal(t, http.StatusBadRequest, call(t, "POST", e.URL+"/v1/videos", e.Key, "", &eb))
	require.Empty(t, e.Events(t, e.Pub.Subjects().Events()))

	// The good request still goes through after all that.
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos", e.Key, good(), nil))
	require.Len(t, e.Events(t, e.Pub.Subjects().Events()), 1)
}

func TestOtherUsersVideoIsNotFound(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	_, key2 := e.AddUser(t, "u2")
	e.SeedVideo(t, store.Video{ID: "theirs", UserID: "u2", RunID: "r1", Status: store.StatusProcessing}, store.StageRender)

	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/videos/theirs"},
		{"POST", "/v1/videos/theirs/cancel"},
		{"GET", "/v1/videos/nothere"},
		{"POST", "/v1/videos/nothere/cancel"},
	} {
		require.Equal(t, http.StatusNotFound, call(t, c.method, e.URL+c.path, e.Key, nil, nil), c.path)
	}
	require.Equal(t, http.StatusForbidden, call(t, "POST", e.URL+"/v1/uploads?video_id=theirs&kind=audio", e.Key, apitest.WAV(10), nil))
	require.Empty(t, e.Events(t, e.Pub.Subjects().Events()))

	var v api.VideoView
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/videos/theirs", key2, nil, &v))
	require.Equal(t, store.StatusProcessing, v.Status)
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/videos/theirs", apitest.AdminKey, nil, &v))
}

func TestStatusShowsStepsAndProgress(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := t0.Add(3 * time.Second)
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusProcessing, MP3URL: "https://cdn/a.mp3"},
		store.StageRender,
		store.Step{Name: "audio", Attempt: 1, StartedAt: t0, EndedAt: &t1, Output: "audio/v1.m4a"},
		store.Step{Name: "render", Attempt: 1, Pool: "cpu", StartedAt: t1},
	)
	var v api.VideoView
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/videos/v1", e.Key, nil, &v))
	require.Nil(t, v.Progress)
	require.Equal(t, store.StageRender, v.Stage)
	require.Len(t, v.Steps, 2)
	require.Equal(t, api.StepView{Name: "audio", Attempt: 1, StartedAt: t0, EndedAt: &t1, Output: "audio/v1.m4a"}, v.Steps[0])
	require.Equal(t, "cpu", v.Steps[1].Pool)
	require.Nil(t, v.Steps[1].EndedAt)

	// Progress of an older run is not this run's progress.
	e.PublishProgress(t, "v1", &backbeatv1.RenderProgress{VideoId: "v1", RunId: "r0", Percent: 99})
	v = api.VideoView{}
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/videos/v1", e.Key, nil, &v))
	require.Nil(t, v.Progress)

	e.PublishProgress(t, "v1", &backbeatv1.RenderProgress{VideoId: "v1", RunId: "r1", Attempt: 1,
		FramesDone: 30, FramesTotal: 120, Percent: 25, Pool: "cpu", Worker: "w1"})
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/videos/v1", e.Key, nil, &v))
	require.Equal(t, &api.ProgressView{Attempt: 1, FramesDone: 30, FramesTotal: 120, Percent: 25, Pool: "cpu", Worker: "w1"}, v.Progress)
	require.False(t, v.Terminal())

	e.SetVideo(t, "v1", map[string]any{"status": store.StatusReady, "video_url": "https://cdn/v1.mp4", "render_seconds": 12.5})
	v = api.VideoView{}
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/videos/v1", e.Key, nil, &v))
	require.True(t, v.Terminal())
	require.Nil(t, v.Progress)
	require.Equal(t, "https://cdn/v1.mp4", v.VideoURL)
	require.Equal(t, 12.5, v.RenderSeconds)
}

func TestCancelAndRecoverPublish(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusStalled}, store.StageRender)

	var acc api.AcceptedResponse
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos/v1/cancel", e.Key, nil, &acc))
	msgs := e.Events(t, e.Pub.Subjects().Event("v1", bus.KindVideoCancel))
	require.Len(t, msgs, 1)
	c := decode(t, &backbeatv1.VideoCancel{}, msgs[0].Data())
	require.Equal(t, "v1", c.GetVideoId())
	require.Equal(t, acc.RequestID, c.GetRequestId())
	require.NotEmpty(t, c.GetReason())

	require.Equal(t, http.StatusForbidden, call(t, "POST", e.URL+"/v1/videos/v1/recover", e.Key, nil, nil))
	require.Equal(t, http.StatusNotFound, call(t, "POST", e.URL+"/v1/videos/nope/recover", apitest.AdminKey, nil, nil))
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos/v1/recover", apitest.AdminKey,
		api.ActionRequest{RequestID: "op-1"}, &acc))
	require.Equal(t, "op-1", acc.RequestID)
	msgs = e.Events(t, e.Pub.Subjects().Event("v1", bus.KindVideoRecover))
	require.Len(t, msgs, 1)
	r := decode(t, &backbeatv1.VideoRecover{}, msgs[0].Data())
	require.Equal(t, "r1", r.GetRunId())
	require.Len(t, e.Events(t, e.Pub.Subjects().Events()), 2)
}

func TestOwnersMayRecoverInDev(t *testing.T) {
	t.Parallel()
	e := apitest.New(t, func(c *api.Config) { c.OwnersMayRecover = true })
	_, key2 := e.AddUser(t, "u2")
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusStalled}, store.StageRender)
	require.Equal(t, http.StatusNotFound, call(t, "POST", e.URL+"/v1/videos/v1/recover", key2, nil, nil))
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos/v1/recover", e.Key, nil, nil))
	require.Len(t, e.Events(t, e.Pub.Subjects().Event("v1", bus.KindVideoRecover)), 1)
}

// TestCancelNamesItsRun: cancel and recover carry the run the API sees as
// the video's current one, so a cancel the coordinator handles after a newer
// create (a new run) stops only the run the user meant to stop. A video with
// uploads but no create has no run: 409, nothing published.
func TestCancelNamesItsRun(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r1", Status: store.StatusProcessing}, store.StageRender)
	cancels := func() []*backbeatv1.VideoCancel {
		var out []*backbeatv1.VideoCancel
		for _, m := range e.Events(t, e.Pub.Subjects().Event("v1", bus.KindVideoCancel)) {
			out = append(out, decode(t, &backbeatv1.VideoCancel{}, m.Data()))
		}
		return out
	}

	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos/v1/cancel", e.Key, nil, nil))
	require.Len(t, cancels(), 1)
	require.Equal(t, "r1", cancels()[0].GetRunId())

	// A newer create made run r2 current: a cancel sent now names r2, and
	// the first one still names r1 however late the coordinator reads it.
	e.SeedVideo(t, store.Video{ID: "v1", UserID: e.UserID, RunID: "r2", Status: store.StatusStalled}, store.StageRender)
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos/v1/cancel", e.Key, nil, nil))
	got := cancels()
	require.Len(t, got, 2)
	require.Equal(t, []string{"r1", "r2"}, []string{got[0].GetRunId(), got[1].GetRunId()})
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos/v1/recover", apitest.AdminKey, nil, nil))
	recovers := e.Events(t, e.Pub.Subjects().Event("v1", bus.KindVideoRecover))
	require.Len(t, recovers, 1)
	require.Equal(t, "r2", decode(t, &backbeatv1.VideoRecover{}, recovers[0].Data()).GetRunId())

	// Uploaded, never created: no run to name.
	require.Equal(t, http.StatusCreated, call(t, "POST", e.URL+"/v1/uploads?video_id=v2&kind=audio", e.Key, apitest.WAV(10), nil))
	var eb api.ErrorBody
	require.Equal(t, http.StatusConflict, call(t, "POST", e.URL+"/v1/videos/v2/cancel", e.Key, nil, &eb))
	require.Contains(t, eb.Error, "video v2 has no run")
	require.Equal(t, http.StatusConflict, call(t, "POST", e.URL+"/v1/videos/v2/recover", apitest.AdminKey, nil, &eb))
	require.Contains(t, eb.Error, "video v2 has no run")
	require.Empty(t, e.Events(t, e.Pub.Subjects().Event("v2", ">")))
}
