package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/api/apitest"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testBundle struct {
	api            *apitest.Env
	env            Env
	stdout, stderr *syncBuffer
}

// setup runs the real API and returns an Env pointing the commands at it.
func setup(t *testing.T) *testBundle {
	t.Helper()
	e := apitest.New(t)
	vars := map[string]string{
		"BACKBEAT_API_URL":  e.URL,
		"BACKBEAT_API_KEY":  e.Key,
		"BACKBEAT_NATS_URL": e.NC.ConnectedUrl(),
	}
	b := &testBundle{api: e, stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	b.env = Env{Stdout: b.stdout, Stderr: b.stderr, Getenv: func(k string) string { return vars[k] },
		HTTP: e.Server.Client(), Poll: 20 * time.Millisecond}
	return b
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}

func TestSubmitUploadsAndPublishes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	song := writeFile(t, "song.wav", apitest.WAV(8000))
	cover := writeFile(t, "cover.png", apitest.PNG)
	err := Submit(t.Context(), b.env, []string{song, "--start", "0.25", "--end", "0.75", "--format", "landscape",
		"--title", "Song", "--artist", "Band", "--cover", cover, "--video-id", "vid9", "--set", "color=red"})
	require.NoError(t, err)
	require.Equal(t, "vid9\n", b.stdout.String())
	require.Contains(t, b.stderr.String(), "uploaded uploads/vid9/audio.wav (16044 bytes)")

	msgs := b.api.Events(t, b.api.Pub.Subjects().Event("vid9", bus.KindVideoCreate))
	require.Len(t, msgs, 1)
	var m backbeatv1.VideoCreate
	require.NoError(t, bus.Decode(msgs[0].Data(), "", &m))
	require.Equal(t, b.api.UserID, m.GetUserId())
	require.Equal(t, "uploads/vid9/audio.wav", m.GetAudioKey())
	require.Equal(t, "uploads/vid9/cover.png", m.GetCoverKey())
	require.Equal(t, backbeatv1.Format_FORMAT_LANDSCAPE, m.GetFormat())
	require.Equal(t, 0.75, m.GetEndSeconds())
	require.Equal(t, "spectrum", m.GetTemplate())
	require.Equal(t, map[string]string{"color": "red"}, m.GetTemplateSettings())

	// A bad file is refused by the API before anything is published.
	notAudio := writeFile(t, "notes.txt", []byte("just some text, not audio at all"))
	err = Submit(t.Context(), b.env, []string{notAudio, "--end", "1", "--video-id", "vid10"})
	require.ErrorContains(t, err, "not a supported format")
	require.ErrorIs(t, Submit(t.Context(), b.env, []string{song, "--start", "2", "--end", "1"}), ErrUsage)
	require.Len(t, b.api.Events(t, b.api.Pub.Subjects().Events()), 1)
}

// coordinate plays the coordinator for one video: it waits for the create,
// then moves the video through render progress to ready with thumbnails,
// each change only once the client has shown the previous one (seen), so the
// test does not depend on how fast the machine polls.
func coordinate(t *testing.T, e *apitest.Env, vid string, seen func(string) bool) {
	t.Helper()
	shown := func(what string) {
		require.Eventually(t, func() bool { return seen(what) }, 10*time.Second, 5*time.Millisecond, "client shows %q", what)
	}
	subj := e.Pub.Subjects().Event(vid, bus.KindVideoCreate)
	require.Eventually(t, func() bool { return len(e.Events(t, subj)) == 1 }, 10*time.Second, 10*time.Millisecond)
	shown("queued") // the watcher saw the not-yet-created video
	now := time.Now().UTC()
	e.SeedVideo(t, store.Video{ID: vid, UserID: e.UserID, RunID: "r1", Status: store.StatusPending}, store.StageAudio,
		store.Step{Name: "audio", Attempt: 1, StartedAt: now})
	shown("preparing audio")
	e.SetVideo(t, vid, map[string]any{"status": store.StatusProcessing})
	require.NoError(t, e.Store.DB.Model(&store.Run{}).Where("id = ?", "r1").Update("stage", store.StageRender).Error)
	for _, pct := range []float64{20, 60} {
		e.PublishProgress(t, vid, &backbeatv1.RenderProgress{VideoId: vid, RunId: "r1", Attempt: 1,
			FramesDone: int64(pct), FramesTotal: 100, Percent: pct, Pool: "cpu"})
		shown(fmt.Sprintf("frames %d/100", int(pct)))
	}
	e.SetVideo(t, vid, map[string]any{"status": store.StatusReady, "video_url": "https://cdn.example/videos/" + vid + ".mp4"})
	time.Sleep(100 * time.Millisecond)
	e.SetVideo(t, vid, map[string]any{
		"thumbnail_url":        "https://cdn.example/thumbnails/" + vid + ".jpg",
		"square_thumbnail_url": "https://cdn.example/thumbnails/" + vid + "-square.jpg",
	})
}

func TestSubmitWaitShowsProgressUntilReady(t *testing.T) {
	t.Parallel()
	b := setup(t)
	song := writeFile(t, "song.wav", apitest.WAV(800))
	done := make(chan struct{})
	go func() {
		defer close(done)
		coordinate(t, b.api, "vw1", func(s string) bool { return strings.Contains(b.stderr.String(), s) })
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := Submit(ctx, b.env, []string{song, "--end", "0.1", "--video-id", "vw1", "--wait"})
	<-done
	require.NoError(t, err)
	require.Equal(t, "video:            https://cdn.example/videos/vw1.mp4\n"+
		"thumbnail:        https://cdn.example/thumbnails/vw1.jpg\n"+
		"square thumbnail: https://cdn.example/thumbnails/vw1-square.jpg\n", b.stdout.String())
	errOut := b.stderr.String()
	for _, want := range []string{"queued", "preparing audio", "rendering", "frames 20/100 on cpu", "frames 60/100", "ready", Bar(100, BarWidth)} {
		require.Contains(t, errOut, want)
	}
	require.NotContains(t, errOut, "\r")
}

func TestWatchReportsFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.SeedVideo(t, store.Video{ID: "bad", UserID: b.api.UserID, RunID: "r1", Status: store.StatusError,
		Reason: "audio: no audio stream in the upload"}, store.StageAudio)
	err := Watch(t.Context(), b.env, []string{"bad"})
	require.Equal(t, ExitError{Code: 1}, err)
	require.Contains(t, b.stderr.String(), "video bad error: audio: no audio stream in the upload")
	require.Empty(t, b.stdout.String())

	err = Watch(t.Context(), b.env, []string{"--key", "wrong-key-0123456789", "bad"})
	require.ErrorContains(t, err, "invalid API key (HTTP 401)")
}

func TestStatusPrintsTable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	t1 := t0.Add(2500 * time.Millisecond)
	b.api.SeedVideo(t, store.Video{ID: "v1", UserID: b.api.UserID, RunID: "r1", Status: store.StatusProcessing}, store.StageRender,
		store.Step{Name: "audio", Attempt: 1, StartedAt: t0, EndedAt: &t1, Output: "audio/v1.m4a"},
		store.Step{Name: "render", Attempt: 1, Pool: "gpu", StartedAt: t1, EndedAt: &t1, Error: "nvenc: no device"},
		store.Step{Name: "render", Attempt: 2, Pool: "cpu", StartedAt: t1.Add(time.Second)},
	)
	b.api.PublishProgress(t, "v1", &backbeatv1.RenderProgress{VideoId: "v1", RunId: "r1", Attempt: 2,
		FramesDone: 50, FramesTotal: 200, Percent: 25, Pool: "cpu"})
	require.NoError(t, Status(t.Context(), b.env, []string{"v1"}))
	out := b.stdout.String()
	t.Log("\n" + out)
	lines := strings.Split(out, "\n")
	require.Equal(t, "video     v1", lines[0])
	require.Equal(t, "status    processing (rendering)", lines[1])
	require.Equal(t, "run       r1, attempt 1 on cpu", lines[2])
	require.Contains(t, lines[3], "progress  "+Bar(10+85*0.25, BarWidth)+"  31%  frames 50/200 on cpu (attempt 2)")
	require.Regexp(t, `^STEP\s+ATTEMPT\s+POOL\s+STARTED\s+TOOK\s+RESULT$`, lines[5])
	require.Regexp(t, `^audio\s+1\s+-\s+\S+ \S+\s+2.5s\s+audio/v1.m4a$`, lines[6])
	require.Regexp(t, `^render\s+1\s+gpu\s+.*\s+0s\s+error: nvenc: no device$`, lines[7])
	require.Regexp(t, `^render\s+2\s+cpu\s+.*\s+running\s*$`, lines[8])

	b.stdout.b.Reset()
	require.NoError(t, Status(t.Context(), b.env, []string{"v1", "--json"}))
	require.Contains(t, b.stdout.String(), `"frames_done": 50`)

	require.ErrorContains(t, Status(t.Context(), b.env, []string{"nope"}), "video nope not found (HTTP 404)")
	require.ErrorIs(t, Status(t.Context(), b.env, nil), ErrUsage)
}

func TestCancelAndRecover(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.SeedVideo(t, store.Video{ID: "v1", UserID: b.api.UserID, RunID: "r1", Status: store.StatusStalled}, store.StageRender)
	require.NoError(t, Cancel(t.Context(), b.env, []string{"v1", "--reason", "changed my mind"}))
	require.Contains(t, b.stdout.String(), "cancel of v1 requested")
	msgs := b.api.Events(t, b.api.Pub.Subjects().Event("v1", bus.KindVideoCancel))
	require.Len(t, msgs, 1)
	var c backbeatv1.VideoCancel
	require.NoError(t, bus.Decode(msgs[0].Data(), "", &c))
	require.Equal(t, "changed my mind", c.GetReason())

	require.ErrorContains(t, Recover(t.Context(), b.env, []string{"v1"}), "no admin key")
	require.ErrorContains(t, Recover(t.Context(), b.env, []string{"--admin-key", b.api.Key, "v1"}), "admin key required (HTTP 403)")
	require.NoError(t, Recover(t.Context(), b.env, []string{"--admin-key", apitest.AdminKey, "v1", "--dry-run"}))
	require.Empty(t, b.api.Events(t, b.api.Pub.Subjects().Event("v1", bus.KindVideoRecover)))
	require.NoError(t, Recover(t.Context(), b.env, []string{"--admin-key", apitest.AdminKey, "v1"}))
	require.Regexp(t, `v1\s+r1\s+stalled\s+done\s+published video.recover of run r1`, b.stdout.String())
	require.Len(t, b.api.Events(t, b.api.Pub.Subjects().Event("v1", bus.KindVideoRecover)), 1)
}
