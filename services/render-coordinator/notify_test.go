package coordinator_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/testenv"
)

// The user's webhook hears of a ready video; operators count each post by
// outcome, and a refused post is retried until the webhook takes it.
func TestNotifyWebhookIsCounted(t *testing.T) {
	t.Parallel()
	var posts atomic.Int32
	var got atomic.Value
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		got.Store(body)
	}))
	t.Cleanup(hook.Close)
	h := setup(t, func(o *options) { o.cfg.NotifyWebhook = hook.URL })
	vid := h.vid("hooked")
	h.toReady(vid, "q1")
	require.Eventually(t, func() bool {
		return testenv.Counter(t, h.reg, "backbeat_webhook_deliveries_total", "ok") == 1
	}, 30*time.Second, 50*time.Millisecond, "the second post is delivered and counted")
	require.Equal(t, 1.0, testenv.Counter(t, h.reg, "backbeat_webhook_deliveries_total", "failed"), "the refused first post is counted as failed")
	body, _ := got.Load().(map[string]any)
	require.Equal(t, vid, body["videoId"])
	require.Equal(t, "VIDEO_STATUS_READY", body["status"])
}
