package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/api/apitest"
)

func publish(t *testing.T, b *testBundle, vid, kind string, m proto.Message, msgID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.api.Pub.Publish(ctx, b.api.Pub.Subjects().Event(vid, kind), m, msgID))
}

// admin is the bundle's environment with the admin key, as an operator has it.
func admin(b *testBundle) Env {
	env := b.env
	get := env.Getenv
	env.Getenv = func(k string) string {
		if k == "BACKBEAT_ADMIN_KEY" {
			return apitest.AdminKey
		}
		return get(k)
	}
	return env
}

func TestOperatorCommandsNeedTheAdminKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.ErrorContains(t, DLQ(t.Context(), b.env, nil), "no admin key")
	env := b.env
	env.Getenv = func(k string) string {
		if k == "BACKBEAT_ADMIN_KEY" {
			return b.api.Key // a user's key
		}
		return b.env.Getenv(k)
	}
	require.ErrorContains(t, DLQ(t.Context(), env, nil), "admin key required (HTTP 403)")
	require.ErrorContains(t, Replay(t.Context(), env, []string{"--video", "v1"}), "admin key required (HTTP 403)")
}

func TestDLQGroupsFailedSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	env := admin(b)
	require.NoError(t, DLQ(t.Context(), env, nil))
	require.Contains(t, b.stderr.String(), "no failed steps")

	now := time.Now().UTC()
	for i, v := range []string{"v1", "v2"} {
		run := []string{"r000000000000000000000001", "r000000000000000000000002"}[i]
		b.api.SeedVideo(t, store.Video{ID: v, UserID: b.api.UserID, RunID: run, Status: store.StatusError}, store.StageDone,
			store.Step{Name: "render", Attempt: 2, Pool: "cpu", Worker: "w7", StartedAt: now.Add(time.Duration(i) * time.Second),
				Error: "deliveries exhausted after " + []string{"3", "5"}[i] + " tries"})
	}
	b.api.SeedVideo(t, store.Video{ID: "v3", UserID: b.api.UserID, RunID: "r000000000000000000000003", Status: store.StatusError},
		store.StageDone, store.Step{Name: "audio", StartedAt: now, Error: "ffprobe: invalid data\nfound when processing input"})

	require.NoError(t, DLQ(t.Context(), env, nil))
	lines := strings.Split(strings.TrimSpace(b.stdout.String()), "\n")
	t.Log("\n" + b.stdout.String())
	require.Len(t, lines, 3)
	require.Regexp(t, `^COUNT\s+VIDEOS\s+STEP\s+LAST SEEN\s+REASON`, lines[0])
	require.Regexp(t, `^2\s+2\s+render\s+.*\s+deliveries exhausted after <n> tries\s+v2 r000000000000000000000002 2 cpu w7$`, lines[1])
	require.Regexp(t, `^1\s+1\s+audio\s+.*ffprobe: invalid data found when processing input\s+v3 `, lines[2])
	require.Contains(t, b.stderr.String(), "3 failed steps in 2 groups")

	b.stdout.b.Reset()
	require.NoError(t, DLQ(t.Context(), env, []string{"--video", "v1", "--json"}))
	require.Contains(t, b.stdout.String(), `"total": 1`)
	require.Contains(t, b.stdout.String(), `"worker": "w7"`)
	require.ErrorIs(t, DLQ(t.Context(), env, []string{"--video", "../x"}), ErrUsage)
}

// TestReplayRepublishesHistory: a dry run prints what it would replay and
// publishes nothing; the replay re-publishes the history (video.status
// skipped) marked as a replay; repeating its request id adds nothing.
func TestReplayRepublishesHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	env := admin(b)
	s := b.api.Pub.Subjects()
	b.api.SeedVideo(t, store.Video{ID: "v1", UserID: b.api.UserID, RunID: "r1", Status: store.StatusReady}, store.StageDone)
	publish(t, b, "v1", bus.KindVideoCreate, &backbeatv1.VideoCreate{VideoId: "v1", UserId: "u1", RequestId: "q1"}, "create:v1:q1")
	publish(t, b, "v1", bus.KindAudioDone, &backbeatv1.AudioDone{VideoId: "v1", RunId: "r1"}, bus.MsgID("r1", "audio", 0, bus.KindAudioDone))
	publish(t, b, "v1", bus.KindVideoStatus, &backbeatv1.VideoStatusChanged{VideoId: "v1", RunId: "r1"}, "s1")
	publish(t, b, "v2", bus.KindVideoCreate, &backbeatv1.VideoCreate{VideoId: "v2"}, "create:v2:q")

	require.NoError(t, Replay(t.Context(), env, []string{"--video", "v1", "--dry-run"}))
	t.Log("\n" + b.stdout.String())
	require.Regexp(t, `v1\s+r1\s+ready\s+would\s+would replay 2 events`, b.stdout.String())
	require.Contains(t, b.stderr.String(), "nothing changed")
	require.Len(t, b.api.Events(t, s.Events()), 4)

	b.stdout.b.Reset()
	require.NoError(t, Replay(t.Context(), env, []string{"--video", "v1", "--request-id", "op-1"}))
	require.Regexp(t, `v1\s+r1\s+ready\s+done\s+replayed 2 events`, b.stdout.String())
	msgs := b.api.Events(t, s.Event("v1", ">"))
	require.Len(t, msgs, 6, "two replayed, and the action recorded")
	require.Equal(t, s.Event("v1", bus.KindVideoCreate), msgs[3].Subject())
	require.Equal(t, "1", msgs[3].Headers().Get(bus.HeaderReplayOf))
	var c backbeatv1.VideoCreate
	require.NoError(t, bus.Decode(msgs[3].Data(), msgs[3].Headers().Get(bus.HeaderContentType), &c))
	require.Equal(t, "q1", c.GetRequestId())
	require.Equal(t, s.Event("v1", bus.KindAudioDone), msgs[4].Subject())

	b.stderr.b.Reset()
	require.NoError(t, Replay(t.Context(), env, []string{"--video", "v1", "--request-id", "op-1"}))
	require.Contains(t, b.stderr.String(), "request op-1 was taken before: nothing done now")
	require.Len(t, b.api.Events(t, s.Event("v1", ">")), 6)

	b.stdout.b.Reset()
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	require.NoError(t, Replay(t.Context(), env, []string{"--from", from, "--status", "ready", "--dry-run"}))
	require.Regexp(t, `v1\s+r1\s+ready\s+would`, b.stdout.String())

	require.ErrorIs(t, Replay(t.Context(), env, []string{"--video", "../x"}), ErrUsage)
	require.ErrorIs(t, Replay(t.Context(), env, nil), ErrUsage)
	require.ErrorIs(t, Replay(t.Context(), env, []string{"--from", "yesterday"}), ErrUsage)
	require.ErrorContains(t, Replay(t.Context(), env, []string{"--from", from, "--status", "done"}), `unknown status "done" (HTTP 400)`)
}

// TestRecoverAfterAnOutage: `backbeat recover --from … --status stalled`
// requeues every stalled run of the range, and only those.
func TestRecoverAfterAnOutage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	env := admin(b)
	for _, v := range []string{"s1", "s2"} {
		b.api.SeedVideo(t, store.Video{ID: v, UserID: b.api.UserID, RunID: "r-" + v, Status: store.StatusStalled}, store.StageRender)
	}
	b.api.SeedVideo(t, store.Video{ID: "ok", UserID: b.api.UserID, RunID: "r-ok", Status: store.StatusReady}, store.StageDone)
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	require.NoError(t, Recover(t.Context(), env, []string{"--from", from, "--status", "stalled", "--request-id", "outage-1"}))
	t.Log("\n" + b.stdout.String())
	require.Regexp(t, `s1\s+r-s1\s+stalled\s+done\s+published video.recover of run r-s1`, b.stdout.String())
	require.Regexp(t, `s2\s+r-s2\s+stalled\s+done`, b.stdout.String())
	require.NotContains(t, b.stdout.String(), "r-ok")
	require.Contains(t, b.stderr.String(), "recover: 2 videos acted on, 0 skipped (request outage-1")
	require.Len(t, b.api.Events(t, b.api.Pub.Subjects().EventsOfKind(bus.KindVideoRecover)), 2)
	require.ErrorIs(t, Recover(t.Context(), env, []string{"a", "b"}), ErrUsage)
}
