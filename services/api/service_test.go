package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/api"
	"github.com/backbeat/backbeat/services/api/apitest"
)

// call sends one request with an optional bearer key and decodes a JSON answer into out.
func call(t *testing.T, method, url, key string, body any, out any) int {
	t.Helper()
	return callWith(t, method, url, key, nil, body, out)
}

// callWith is call with extra request headers.
func callWith(t *testing.T, method, url, key string, header map[string]string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(data) > 0 {
		require.NoError(t, json.Unmarshal(data, out), "body: %s", data)
	}
	return resp.StatusCode
}

func decode[T proto.Message](t *testing.T, m T, data []byte) T {
	t.Helper()
	require.NoError(t, bus.Decode(data, bus.ContentTypeProto, m))
	return m
}

func TestAuthRequired(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	var eb api.ErrorBody
	require.Equal(t, http.StatusUnauthorized, call(t, "GET", e.URL+"/v1/me", "", nil, &eb))
	require.Contains(t, eb.Error, "missing API key")
	require.Equal(t, http.StatusUnauthorized, call(t, "GET", e.URL+"/v1/me", "not-a-key", nil, &eb))
	require.Equal(t, http.StatusUnauthorized, call(t, "POST", e.URL+"/v1/videos", "", `{}`, nil))
	require.Equal(t, http.StatusUnauthorized, call(t, "POST", e.URL+"/v1/uploads?video_id=v1&kind=audio", "", apitest.WAV(10), nil))
	require.Empty(t, e.Events(t, e.Pub.Subjects().Events()))

	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/healthz", "", nil, nil))
	var ready map[string]string
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/readyz", "", nil, &ready))
	require.Equal(t, map[string]string{"blob": "ok", "database": "ok", "nats": "ok"}, ready)

	var me api.MeResponse
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/me", e.Key, nil, &me))
	require.Equal(t, api.MeResponse{UserID: e.UserID, Balance: 100, Bundle: "free"}, me)
}

func TestAdminCreatesUsers(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	req := api.CreateUserRequest{ID: "alice", Balance: 42, Bundle: "pro"}
	require.Equal(t, http.StatusForbidden, call(t, "POST", e.URL+"/v1/admin/users", e.Key, req, nil))

	var out api.CreateUserResponse
	require.Equal(t, http.StatusCreated, call(t, "POST", e.URL+"/v1/admin/users", apitest.AdminKey, req, &out))
	require.True(t, out.Created)
	require.Len(t, out.APIKey, 64)
	var me api.MeResponse
	require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/me", out.APIKey, nil, &me))
	require.Equal(t, api.MeResponse{UserID: "alice", Balance: 42, Bundle: "pro"}, me)

	// A second call keeps the user as it is and issues another key.
	var again api.CreateUserResponse
	req.Balance = 1000
	require.Equal(t, http.StatusOK, call(t, "POST", e.URL+"/v1/admin/users", apitest.AdminKey, req, &again))
	require.False(t, again.Created)
	require.Equal(t, int64(42), again.Balance)
	require.NotEqual(t, out.APIKey, again.APIKey)

	require.Equal(t, http.StatusBadRequest, call(t, "POST", e.URL+"/v1/admin/users", apitest.AdminKey,
		api.CreateUserRequest{ID: "../x"}, nil))
	require.Equal(t, http.StatusBadRequest, call(t, "POST", e.URL+"/v1/admin/users", apitest.AdminKey,
		`{"id":"bob","balnce":3}`, nil))
}

func TestUploadAndCreatePublishVideoCreate(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	var up api.UploadResponse
	require.Equal(t, http.StatusCreated, call(t, "POST", e.URL+"/v1/uploads?video_id=vid1&kind=audio", e.Key, apitest.WAV(4000), &up))
	require.Equal(t, api.UploadResponse{Key: "uploads/vid1/audio.wav", Size: 8044, ContentType: "audio/wav"}, up)
	var cover api.UploadResponse
	require.Equal(t, http.StatusCreated, call(t, "POST", e.URL+"/v1/uploads?video_id=vid1&kind=cover", e.Key, apitest.PNG, &cover))
	require.Equal(t, "uploads/vid1/cover.png", cover.Key)
	info, err := e.Blob.Stat(t.Context(), up.Key)
	require.NoError(t, err)
	require.Equal(t, int64(8044), info.Size)

	create := api.CreateRequest{
		VideoID: "vid1", AudioKey: up.Key, CoverKey: cover.Key, StartSeconds: 0.1, EndSeconds: 0.4,
		Template: "spectrum", TemplateSettings: map[string]string{"color": "#ff0000"},
		Format: "portrait", HDR: true, Title: "Song", Artist: "Band",
	}
	var acc api.AcceptedResponse
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos", e.Key, create, &acc))
	require.Equal(t, "vid1", acc.VideoID)
	require.NotEmpty(t, acc.RequestID)

	subj := e.Pub.Subjects().Event("vid1", bus.KindVideoCreate)
	msgs := e.Events(t, e.Pub.Subjects().Events())
	require.Len(t, msgs, 1)
	require.Equal(t, subj, msgs[0].Subject())
	require.Equal(t, "backbeat.v1.VideoCreate", msgs[0].Headers().Get(bus.HeaderType))
	require.Equal(t, "create:vid1:"+acc.RequestID, msgs[0].Headers().Get("Nats-Msg-Id"))
	m := decode(t, &backbeatv1.VideoCreate{}, msgs[0].Data())
	require.Equal(t, e.UserID, m.GetUserId())
	require.Equal(t, "uploads/vid1/audio.wav", m.GetAudioKey())
	require.Equal(t, "uploads/vid1/cover.png", m.GetCoverKey())
	require.Equal(t, backbeatv1.Format_FORMAT_PORTRAIT, m.GetFormat())
	require.Equal(t, 0.4, m.GetEndSeconds())
	require.True(t, m.GetHdr())
	require.Equal(t, acc.RequestID, m.GetRequestId())
	require.Equal(t, "#ff0000", m.GetTemplateSettings()["color"])

	// The same request id is deduplicated by the stream.
	create.RequestID = acc.RequestID
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos", e.Key, create, &acc))
	require.Len(t, e.Events(t, subj), 1)

	// The user id in the body is not a field: it comes from the key only.
	require.Equal(t, http.StatusBadRequest, call(t, "POST", e.URL+"/v1/videos", e.Key,
		`{"video_id":"vid1","user_id":"u2","audio_key":"uploads/vid1/audio.wav","end_seconds":1,"template":"spectrum","format":"square"}`, nil))
}

// Every API request is timed by route: operators alert on its latency.
func TestRequestLatencyIsMeasured(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusOK, call(t, "GET", e.URL+"/v1/me", e.Key, nil, nil))
	}
	resp, err := http.Get(e.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), `backbeat_api_request_duration_seconds_count{route="me"} 3`)
	require.Contains(t, string(body), `backbeat_api_request_duration_seconds_bucket{route="me",le="+Inf"} 3`)
}
