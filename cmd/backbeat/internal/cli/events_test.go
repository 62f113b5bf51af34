package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

func publish(t *testing.T, b *testBundle, vid, kind string, m proto.Message, msgID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.api.Pub.Publish(ctx, b.api.Pub.Subjects().Event(vid, kind), m, msgID))
}

func TestDLQListsFailedSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, DLQ(t.Context(), b.env, nil))
	require.Contains(t, b.stderr.String(), "no failed steps")

	publish(t, b, "v1", bus.KindAudioDone, &backbeatv1.AudioDone{VideoId: "v1", RunId: "r1"}, "a")
	publish(t, b, "v1", bus.KindStepFailed, &backbeatv1.StepFailed{VideoId: "v1", RunId: "r1", Step: "audio",
		Attempt: 0, Reason: "ffprobe: invalid data\nfound when processing input", Permanent: true}, "f1")
	publish(t, b, "v2", bus.KindStepFailed, &backbeatv1.StepFailed{VideoId: "v2", RunId: "r2", Step: "render",
		Attempt: 2, Reason: "deliveries exhausted", Pool: "cpu", Worker: "w7"}, "f2")

	require.NoError(t, DLQ(t.Context(), b.env, nil))
	lines := strings.Split(strings.TrimSpace(b.stdout.String()), "\n")
	t.Log("\n" + b.stdout.String())
	require.Len(t, lines, 3)
	require.Regexp(t, `^SEQ\s+TIME\s+VIDEO\s+RUN\s+STEP`, lines[0])
	require.Regexp(t, `^2\s+.*\s+v1\s+r1\s+audio\s+0\s+permanent\s+-\s+-\s+ffprobe: invalid data found when processing input$`, lines[1])
	require.Regexp(t, `^3\s+.*\s+v2\s+r2\s+render\s+2\s+retries spent\s+cpu\s+w7\s+deliveries exhausted$`, lines[2])

	b.stdout.b.Reset()
	require.NoError(t, DLQ(t.Context(), b.env, []string{"--video", "v2", "--json"}))
	out := strings.TrimSpace(b.stdout.String())
	require.NotContains(t, out, "\n")
	require.Contains(t, out, `"seq":3`)
	require.Contains(t, out, `"worker":"w7"`)

	b.stdout.b.Reset()
	require.NoError(t, DLQ(t.Context(), b.env, []string{"--limit", "1"}))
	require.Len(t, strings.Split(strings.TrimSpace(b.stdout.String()), "\n"), 2)
}

func TestReplayRepublishesHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.api.Pub.Subjects()
	publish(t, b, "v1", bus.KindVideoCreate, &backbeatv1.VideoCreate{VideoId: "v1", UserId: "u1", RequestId: "q1"}, "create:v1:q1")
	publish(t, b, "v1", bus.KindAudioDone, &backbeatv1.AudioDone{VideoId: "v1", RunId: "r1"}, bus.MsgID("r1", "audio", 0, bus.KindAudioDone))
	publish(t, b, "v1", bus.KindVideoStatus, &backbeatv1.VideoStatusChanged{VideoId: "v1", RunId: "r1"}, "s1")
	publish(t, b, "v2", bus.KindVideoCreate, &backbeatv1.VideoCreate{VideoId: "v2"}, "create:v2:q")

	require.NoError(t, Replay(t.Context(), b.env, []string{"--video", "v1", "--dry-run"}))
	out := b.stdout.String()
	t.Log("\n" + out)
	require.Equal(t, 2, strings.Count(out, "would replay"))
	require.Contains(t, out, `"request_id":"q1"`)
	require.Contains(t, out, "video.status  skipped")
	require.Len(t, b.api.Events(t, s.Events()), 4)

	b.stdout.b.Reset()
	require.NoError(t, Replay(t.Context(), b.env, []string{"--video", "v1"}))
	require.Contains(t, b.stderr.String(), "replayed 2 events of v1 (1 skipped)")
	msgs := b.api.Events(t, s.Event("v1", ">"))
	require.Len(t, msgs, 5)
	require.Equal(t, s.Event("v1", bus.KindVideoCreate), msgs[3].Subject())
	require.Equal(t, "1", msgs[3].Headers().Get(HeaderReplayOf))
	require.Empty(t, msgs[3].Headers().Get("Nats-Msg-Id"))
	var c backbeatv1.VideoCreate
	require.NoError(t, bus.Decode(msgs[3].Data(), msgs[3].Headers().Get(bus.HeaderContentType), &c))
	require.Equal(t, "q1", c.GetRequestId())
	require.Equal(t, s.Event("v1", bus.KindAudioDone), msgs[4].Subject())

	require.ErrorIs(t, Replay(t.Context(), b.env, []string{"--video", "../x"}), ErrUsage)
	b.stderr.b.Reset()
	require.NoError(t, Replay(t.Context(), b.env, []string{"--video", "v3"}))
	require.Contains(t, b.stderr.String(), "no events for video v3")
}
