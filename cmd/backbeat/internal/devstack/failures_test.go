package devstack

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/api"
)

// publishCreate publishes a create straight on the bus, as an app (or an
// operator replaying) would, bypassing the API's checks.
func (e *e2e) publishCreate(vid, user, key string, start, end float64, requestID, msgID string) {
	e.t.Helper()
	m := &backbeatv1.VideoCreate{VideoId: vid, UserId: user, AudioKey: key, StartSeconds: start, EndSeconds: end,
		Template: "spectrum", Format: backbeatv1.Format_FORMAT_SQUARE, RequestId: requestID}
	subj := e.st.Topo.Subjects.Event(vid, bus.KindVideoCreate)
	if ids.ValidateVideoID(vid) != nil {
		subj = e.st.Topo.Subjects.Event("evil", bus.KindVideoCreate)
	}
	pub := bus.NewPublisher(e.st.JS, e.st.Topo.Subjects)
	require.NoError(e.t, pub.Publish(context.Background(), subj, m, msgID))
}

// coordinatorIdle waits until the coordinator's consumer holds nothing:
// every event was acked or terminated, none is waiting for redelivery.
func (e *e2e) coordinatorIdle() {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		c, err := e.st.JS.Consumer(context.Background(), bus.StreamEvents, bus.ConsumerCoordinator)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	}, 30*time.Second, 100*time.Millisecond, "coordinator consumer drained")
}

// TestBadInputsEndWithReasonAndRefund: each bad input ends its run with a
// clear reason, moves no credits in the end, and leaves every service able
// to render the next video.
func TestBadInputsEndWithReasonAndRefund(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	before := e.balance()

	t.Run("region past the end of the track", func(t *testing.T) {
		vid := e.vid("pastend")
		key := e.upload(vid, "audio", e.tone)
		e.publishCreate(vid, DevUser, key, 5, 20, "r1", "")
		v := e.waitStatus(vid, "error")
		require.Contains(t, v.Reason, "past the end")
		require.Equal(t, before, e.balance(), "held and refunded")
	})
	t.Run("end before start", func(t *testing.T) {
		vid := e.vid("endstart")
		key := e.upload(vid, "audio", e.tone)
		e.publishCreate(vid, DevUser, key, 3, 2, "r2", "")
		v := e.waitStatus(vid, "error")
		require.Contains(t, v.Reason, "must be after its start")
		require.Equal(t, before, e.balance())
	})
	t.Run("not an audio file", func(t *testing.T) {
		vid := e.vid("notaudio")
		key := keys.UploadPrefix(vid) + "audio.mp3"
		junk := filepath.Join(t.TempDir(), "junk.mp3")
		require.NoError(t, os.WriteFile(junk, []byte(strings.Repeat("this is not audio at all\n", 400)), 0o644))
		_, err := e.st.Blob.PutFile(ctx, key, junk, "audio/mpeg")
		require.NoError(t, err)
		e.publishCreate(vid, DevUser, key, 0, 2, "r3", "")
		v := e.waitStatus(vid, "error")
		require.Contains(t, v.Reason, "not")
		require.Contains(t, v.Reason, "audio")
		require.Equal(t, before, e.balance())
	})
	t.Run("unknown user", func(t *testing.T) {
		vid := e.vid("nouser")
		e.publishCreate(vid, "nobody", keys.UploadPrefix(vid)+"audio.wav", 0, 2, "r4", "")
		require.Eventually(t, func() bool {
			v, err := e.st.Store.GetVideo(ctx, vid)
			return err == nil && v.Status == store.StatusError && strings.Contains(v.Reason, "unknown user")
		}, 30*time.Second, 100*time.Millisecond)
	})
	t.Run("video id with a path in it", func(t *testing.T) {
		e.publishCreate("../x", DevUser, "uploads/x/audio.wav", 0, 2, "r5", "")
		e.coordinatorIdle()
		_, err := e.st.Store.GetVideo(ctx, "../x")
		require.True(t, errors.Is(err, store.ErrNotFound), "no video row for ../x")
	})
	t.Run("message that does not decode", func(t *testing.T) {
		vid := e.vid("garbage")
		msg := nats.NewMsg(e.st.Topo.Subjects.Event(vid, bus.KindVideoCreate))
		msg.Data = []byte{0xff, 0x01, 0x02, 0x03}
		_, err := e.st.JS.PublishMsg(ctx, msg)
		require.NoError(t, err)
		e.coordinatorIdle()
		require.Eventually(t, func() bool {
			for _, a := range e.alerts.all() {
				if a["kind"] == "message_rejected" && a["video_id"] == vid {
					return true
				}
			}
			return false
		}, 10*time.Second, 100*time.Millisecond, "operators are alerted")
	})
	t.Run("services still render", func(t *testing.T) {
		vid := e.vid("after")
		e.submit(vid, 0, 1, "square")
		e.waitStatus(vid, "ready")
		e.coordinatorIdle()
	})
}

// TestRenderRetriesOnNextPool: a render that fails on its first pool is
// retried on the next one and completes.
func TestRenderRetriesOnNextPool(t *testing.T) {
	e := setup(t, nil)
	e.faults.set("gpu", func(ctx context.Context, frame int) error {
		if frame == 5 {
			return errors.New("CUDA_ERROR_LAUNCH_FAILED (injected)")
		}
		return nil
	})
	vid := e.vid("retry")
	e.submit(vid, 0, 2, "square")
	v := e.waitStatus(vid, "ready")
	renders := stepsNamed(v, "render")
	require.Len(t, renders, 2)
	require.Equal(t, "gpu", renders[0].Pool)
	require.Contains(t, renders[0].Error, "CUDA_ERROR_LAUNCH_FAILED")
	require.Equal(t, "cpu", renders[1].Pool)
	require.Empty(t, renders[1].Error)
}

// TestPermanentRenderErrorIsNotRetried: an unknown template ends the run on
// the first attempt, with a refund.
func TestPermanentRenderErrorIsNotRetried(t *testing.T) {
	e := setup(t, nil)
	before := e.balance()
	vid := e.vid("permanent")
	key := e.upload(vid, "audio", e.tone)
	e.create(api.CreateRequest{VideoID: vid, AudioKey: key, StartSeconds: 0, EndSeconds: 2, Template: "no-such-template", Format: "square"})
	v := e.waitStatus(vid, "error")
	require.Contains(t, v.Reason, "no-such-template")
	require.Len(t, stepsNamed(v, "render"), 1)
	require.Equal(t, before, e.balance())
}

// failEveryRender makes each pool's renders fail at frame 3 until the
// faults are set again.
func (e *e2e) failEveryRender() {
	boom := func(ctx context.Context, frame int) error {
		if frame == 3 {
			return errors.New("encoder lost (injected)")
		}
		return nil
	}
	e.faults.set("gpu", boom)
	e.faults.set("cpu", boom)
}

// TestRetriesExhaustedFailAndAlert: when every pool fails: error, refund,
// and the alert webhook called.
func TestRetriesExhaustedFailAndAlert(t *testing.T) {
	e := setup(t, nil)
	before := e.balance()
	e.failEveryRender()
	vid := e.vid("exhausted")
	e.submit(vid, 0, 2, "square")
	v := e.waitStatus(vid, "error")
	require.Contains(t, v.Reason, "after 2 attempts")
	require.Len(t, stepsNamed(v, "render"), 2)
	require.Equal(t, before, e.balance())
	require.Eventually(t, func() bool {
		for _, a := range e.alerts.all() {
			if a["kind"] == "run_failed" && a["video_id"] == vid {
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond, "alert webhook called")
}

// TestStalledRenderRecovers: a render whose progress stops is stalled after
// the timeout without refund; recover requeues it and it completes.
func TestStalledRenderRecovers(t *testing.T) {
	e := setup(t, func(o *Options) { o.StallTimeout = 3 * time.Second })
	before := e.balance()
	e.faults.set("gpu", func(ctx context.Context, frame int) error {
		if frame >= 10 {
			<-ctx.Done() // a hung GPU: no more frames
			return ctx.Err()
		}
		return nil
	})
	vid := e.vid("stall")
	e.submit(vid, 0, 2, "square")
	v := e.waitStatus(vid, "stalled")
	require.Contains(t, v.Reason, "no render progress")
	require.Equal(t, before-1, e.balance(), "a stall is not refunded")
	require.Eventually(t, func() bool {
		for _, a := range e.alerts.all() {
			if a["kind"] == "run_stalled" && a["video_id"] == vid {
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond)

	e.faults.set("gpu", nil)
	require.Equal(t, 2, e.do("POST", "/v1/videos/"+vid+"/recover", nil, "", nil)/100)
	v = e.waitStatus(vid, "ready")
	require.Len(t, stepsNamed(v, "render"), 2)
	require.Equal(t, before-1, e.balance())
}
