package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/api"
	"github.com/backbeat/backbeat/services/api/apitest"
)

// TestIdempotencyKeyChargesOnce: an app that retries POST /v1/videos with
// the same Idempotency-Key (its first answer lost) gets the same request id
// and publishes the same create: JetStream drops the copy within its
// duplicate window, and the coordinator, which keys a create by
// req:<video>:<request_id>, makes one run and one hold after it. The same key
// with another body is refused, not silently answered with the first video.
func TestIdempotencyKeyChargesOnce(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	var up api.UploadResponse
	require.Equal(t, http.StatusCreated, call(t, "POST", e.URL+"/v1/uploads?video_id=v1&kind=audio", e.Key, apitest.WAV(4000), &up))
	create := api.CreateRequest{VideoID: "v1", AudioKey: up.Key, StartSeconds: 0.1, EndSeconds: 0.4,
		Template: "spectrum", Format: "square", TemplateSettings: map[string]string{"a": "1", "b": "2"}}
	post := func(key string, body any, out any) int {
		t.Helper()
		return callWith(t, "POST", e.URL+"/v1/videos", e.Key, map[string]string{"Idempotency-Key": key}, body, out)
	}
	subj := e.Pub.Subjects().Event("v1", bus.KindVideoCreate)

	var first, again api.AcceptedResponse
	require.Equal(t, http.StatusAccepted, post("order-42_a", create, &first))
	require.Equal(t, "order-42_a", first.RequestID)
	require.Equal(t, http.StatusAccepted, post("order-42_a", create, &again))
	require.Equal(t, first, again)
	// The same request, spelled differently, is the same request.
	require.Equal(t, http.StatusAccepted, post("order-42_a",
		`{"template_settings":{"b":"2","a":"1"},"format":"SQUARE","template":"spectrum","end_seconds":0.4,`+
			`"start_seconds":0.1,"audio_key":"uploads/v1/audio.wav","video_id":"v1","request_id":"order-42_a"}`, nil))

	msgs := e.Events(t, subj)
	require.Len(t, msgs, 1)
	require.Equal(t, "create:v1:order-42_a", msgs[0].Headers().Get("Nats-Msg-Id"))
	m := decode(t, &backbeatv1.VideoCreate{}, msgs[0].Data())
	require.Equal(t, "order-42_a", m.GetRequestId())

	// Another body under the same key: 422, nothing published.
	changed := create
	changed.EndSeconds = 0.3
	var eb api.ErrorBody
	require.Equal(t, http.StatusUnprocessableEntity, post("order-42_a", changed, &eb))
	require.Contains(t, eb.Error, "Idempotency-Key order-42_a was used for another request")
	changed.RequestID = "order-42_a" // the body's request id is the same key
	require.Equal(t, http.StatusUnprocessableEntity, call(t, "POST", e.URL+"/v1/videos", e.Key, changed, nil))

	// Malformed keys, or a key that contradicts the body's request_id: 400.
	for _, k := range []string{"", " ", "a b", "a.b", "a:b", "é", strings.Repeat("k", 65)} {
		require.Equal(t, http.StatusBadRequest, post(k, create, &eb), "key %q", k)
		require.Contains(t, eb.Error, "Idempotency-Key must be 1-64 characters of [A-Za-z0-9_-]", "key %q", k)
	}
	withID := create
	withID.RequestID = "other"
	require.Equal(t, http.StatusBadRequest, post("order-42_a", withID, &eb))
	require.Contains(t, eb.Error, "request_id")
	require.Equal(t, http.StatusAccepted, post(strings.Repeat("k", 64), create, nil))
	require.Len(t, e.Events(t, subj), 2)

	// Without the header every POST is a new request, as before.
	var a, b api.AcceptedResponse
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos", e.Key, create, &a))
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos", e.Key, create, &b))
	require.NotEqual(t, a.RequestID, b.RequestID)
	require.Len(t, e.Events(t, subj), 4)
}
