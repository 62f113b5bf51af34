package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"image/jpeg"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/services/api"
)

// TestSubmitToReady is the whole flow on the real parts: the MP4 is H.264 +
// AAC of the region's length at the format's size, the thumbnails are JPEGs
// of the right size, the timeline is complete and the credits moved once.
func TestSubmitToReady(t *testing.T) {
	e := setup(t, nil)
	before := e.balance()
	vid := e.vid("ready")
	e.submit(vid, 1.0, 4.0, "landscape")
	v := e.waitStatus(vid, "ready")

	require.NotEmpty(t, v.VideoURL)
	require.Greater(t, v.RenderSeconds, 0.0, "render time is reported")
	dir := t.TempDir()
	path, _, hdr := e.fetch(v.VideoURL, dir)
	require.Equal(t, "video/mp4", hdr.Get("Content-Type"))
	p, err := media.Probe(context.Background(), path)
	require.NoError(t, err)
	require.NotNil(t, p.Video())
	require.NotNil(t, p.Audio())
	require.Equal(t, "h264", p.Video().CodecName)
	require.Equal(t, "aac", p.Audio().CodecName)
	require.Equal(t, 1920, p.Video().Width)
	require.Equal(t, 1080, p.Video().Height)
	require.InDelta(t, 3.0, p.Duration, 1.0/30+0.03, "duration = region ± one frame (container rounding)")
	require.NoError(t, media.CheckPlayable(context.Background(), path), "decodes end to end and starts playing early")

	// Thumbnails arrive just after ready; their URLs appear once they exist.
	v = e.wait(vid, time.Minute, "thumbnail urls", func(v api.VideoView) bool { return v.SquareThumbnailURL != "" })
	for _, tc := range []struct {
		url  string
		w, h int
	}{{v.ThumbnailURL, 1920, 1080}, {v.SquareThumbnailURL, 1080, 1080}} {
		resp, err := http.Get(tc.url)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", tc.url)
		require.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
		img, err := jpeg.Decode(resp.Body)
		resp.Body.Close()
		require.NoError(t, err, "thumbnail is a JPEG")
		require.Equal(t, tc.w, img.Bounds().Dx())
		require.Equal(t, tc.h, img.Bounds().Dy())
	}

	// The timeline has every step, each with a start and an end.
	v = e.wait(vid, time.Minute, "thumbnail and notify steps ended", func(v api.VideoView) bool {
		for _, n := range []string{"thumbnail", "notify"} {
			s := stepsNamed(v, n)
			if len(s) != 1 || s[0].EndedAt == nil {
				return false
			}
		}
		return true
	})
	for _, name := range []string{"accepted", "audio", "render", "cdn", "ready", "thumbnail", "notify"} {
		s := stepsNamed(v, name)
		require.Len(t, s, 1, "step %s", name)
		require.False(t, s[0].StartedAt.IsZero(), "step %s has a start", name)
		require.NotNil(t, s[0].EndedAt, "step %s has an end", name)
		require.Empty(t, s[0].Error, "step %s", name)
	}
	require.Equal(t, int32(1), stepsNamed(v, "render")[0].Attempt)

	// 3 s at 10 s a unit = 1 unit, taken once.
	require.Equal(t, before-1, e.balance())
	ledger, err := e.st.Store.Ledger(context.Background(), DevUser)
	require.NoError(t, err)
	require.Len(t, ledger, 1)
	require.Equal(t, store.LedgerHold, ledger[0].Kind)
}

// TestCreateTwiceIsOneRun: the same create (same request id) handled twice
// makes one run and one charge, even past the stream's deduplication.
func TestCreateTwiceIsOneRun(t *testing.T) {
	e := setup(t, nil)
	before := e.balance()
	vid := e.vid("twice")
	key := e.upload(vid, "audio", e.tone)
	r := api.CreateRequest{VideoID: vid, AudioKey: key, StartSeconds: 0, EndSeconds: 2, Template: "spectrum", Format: "square", RequestID: "same-request"}
	e.create(r)
	e.create(r)
	// And once more straight on the bus under another message id, as a replay would.
	e.publishCreate(vid, DevUser, key, 0, 2, "same-request", "replayed-copy")
	e.waitStatus(vid, "ready")
	time.Sleep(time.Second)
	var runs int64
	require.NoError(t, e.st.Store.DB.Model(&store.Run{}).Where("video_id = ?", vid).Count(&runs).Error)
	require.EqualValues(t, 1, runs)
	require.Equal(t, before-1, e.balance())
}

// TestNewCreateSupersedesRender: a new create while the first renders cancels
// the first (its ffmpeg gone within a second, its credits refunded) and the
// second run completes.
func TestNewCreateSupersedesRender(t *testing.T) {
	e := setup(t, nil)
	before := e.balance()
	vid := e.vid("supersede")
	slow := func(ctx context.Context, frame int) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			return nil
		}
	}
	e.faults.set("gpu", slow)
	e.submit(vid, 0, 6, "square")
	first := e.wait(vid, 2*time.Minute, "first run rendering", func(v api.VideoView) bool {
		return v.Status == "processing" && v.Progress != nil && v.Progress.FramesDone > 0 && len(ffmpegPIDs(vid)) > 0
	})
	pids := ffmpegPIDs(vid)
	require.NotEmpty(t, pids)

	e.faults.set("gpu", nil)
	e.create(api.CreateRequest{VideoID: vid, AudioKey: keys.UploadPrefix(vid) + "audio.wav", StartSeconds: 1, EndSeconds: 3, Template: "spectrum", Format: "square"})
	start := time.Now()
	require.Eventually(t, func() bool {
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	}, 5*time.Second, 20*time.Millisecond)
	require.Less(t, time.Since(start), 1500*time.Millisecond, "old ffmpeg gone within about a second")

	second := e.waitStatus(vid, "ready")
	require.NotEqual(t, first.RunID, second.RunID)
	old, err := e.st.Store.GetRun(context.Background(), first.RunID)
	require.NoError(t, err)
	require.Equal(t, store.StatusCancelled, old.Status)
	require.Contains(t, old.Reason, "superseded")
	// First run: 6 s → 1 unit held and refunded; second: 2 s → 1 unit.
	require.Equal(t, before-1, e.balance())
}

// TestCancelMidRender: cancelled, refunded, no video object left.
func TestCancelMidRender(t *testing.T) {
	e := setup(t, nil)
	before := e.balance()
	vid := e.vid("cancel")
	e.faults.set("gpu", func(ctx context.Context, frame int) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			return nil
		}
	})
	e.submit(vid, 0, 6, "portrait")
	e.wait(vid, 2*time.Minute, "rendering", func(v api.VideoView) bool {
		return v.Status == "processing" && v.Progress != nil && v.Progress.FramesDone > 0
	})
	pids := ffmpegPIDs(vid)
	require.Equal(t, http.StatusAccepted/100, e.do(http.MethodPost, "/v1/videos/"+vid+"/cancel", nil, "", nil)/100)
	v := e.waitStatus(vid, "cancelled")
	require.Empty(t, v.VideoURL)
	require.Eventually(t, func() bool {
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	}, 3*time.Second, 20*time.Millisecond, "ffmpeg killed")
	require.Equal(t, before, e.balance(), "refunded")
	time.Sleep(time.Second)
	_, err := e.st.Blob.Stat(context.Background(), keys.PublicKey(vid, v.RunID, keys.ObjectVideo))
	require.True(t, errors.Is(err, blob.ErrNotFound), "nothing of a cancelled run is public: %v", err)
}

// TestReRenderServesNewBytes: after a re-render the video's URL names the new
// run and serves its bytes; the first run's URL still serves what was paid for.
func TestReRenderServesNewBytes(t *testing.T) {
	e := setup(t, nil)
	vid := e.vid("rerender")
	e.submit(vid, 0, 2, "square")
	v1 := e.waitStatus(vid, "ready")
	dir := t.TempDir()
	_, sum1, _ := e.fetch(v1.VideoURL, dir)
	_, again, hdr := e.fetch(v1.VideoURL, dir)
	require.Equal(t, sum1, again)
	require.Equal(t, "HIT", hdr.Get("X-Cache"), "the edge caches")

	e.create(api.CreateRequest{VideoID: vid, AudioKey: keys.UploadPrefix(vid) + "audio.wav", StartSeconds: 3, EndSeconds: 5,
		Template: "spectrum", Format: "square", Title: "Another take"})
	v2 := e.wait(vid, 3*time.Minute, "second run ready", func(v api.VideoView) bool { return v.Status == "ready" && v.RunID != v1.RunID })
	require.NotEqual(t, v1.VideoURL, v2.VideoURL, "a URL names its run")
	_, sum2, _ := e.fetch(v2.VideoURL, dir)
	require.NotEqual(t, sum1, sum2, "new bytes")
	_, old, _ := e.fetch(v1.VideoURL, dir)
	require.Equal(t, sum1, old, "the first run's URL never changes its bytes")
}

// TestServicesHealthMetricsAndLogs: every service answers /healthz, /readyz
// and /metrics, and logs JSON lines carrying video_id and run_id.
func TestServicesHealthMetricsAndLogs(t *testing.T) {
	e := setup(t, nil)
	vid := e.vid("health")
	e.submit(vid, 0, 1, "square")
	e.waitStatus(vid, "ready")
	// Every service has worked on the video once the thumbnails are in.
	v := e.wait(vid, time.Minute, "thumbnails", func(v api.VideoView) bool { return v.SquareThumbnailURL != "" })
	for _, name := range []string{"api", "render-coordinator", "audio", "gpu-renderer-gpu", "gpu-renderer-cpu", "cdn", "thumbnail"} {
		base, ok := e.st.Health[name]
		require.True(t, ok, "%s has a health server", name)
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			resp, err := http.Get(base + p)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s%s", name, p)
		}
	}
	resp, err := http.Get(e.st.Health["render-coordinator"] + "/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(metrics), `backbeat_jobs_handled_total{outcome="ack",step="coordinator"}`)
	logs := e.logs.String()
	for _, svc := range []string{"render-coordinator", "audio", "gpu-renderer", "cdn", "thumbnail"} {
		found := false
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, `"service":"`+svc+`"`) && strings.Contains(line, `"video_id":"`+vid+`"`) &&
				strings.Contains(line, `"run_id":"`+v.RunID+`"`) {
				found = true
				break
			}
		}
		require.True(t, found, "%s logs a JSON line with video_id and run_id", svc)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		require.Empty(t, duplicateKeys(t, line), "log pipelines reject duplicate keys: %s", line)
	}
}

// duplicateKeys lists the top-level keys that a JSON object line repeats.
func duplicateKeys(t *testing.T, line string) []string {
	dec := json.NewDecoder(strings.NewReader(line))
	tok, err := dec.Token()
	require.NoError(t, err, line)
	require.Equal(t, json.Delim('{'), tok, line)
	seen := map[string]bool{}
	var dups []string
	for dec.More() {
		k, err := dec.Token()
		require.NoError(t, err, line)
		key := k.(string)
		if seen[key] {
			dups = append(dups, key)
		}
		seen[key] = true
		var v json.RawMessage
		require.NoError(t, dec.Decode(&v), line)
	}
	return dups
}
