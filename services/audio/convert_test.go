package audio

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/media"
	"github.com/backbeat/backbeat/pkg/testenv"
)

func TestCheckRegion(t *testing.T) {
	t.Parallel()
	ok := []struct{ start, end, dur, max, from, to float64 }{
		{0, 30, 60, 60, 0, 30},
		{10, 60.04, 60, 0, 10, 60},  // inside the slack: clamped
		{0, 0, 60, 15, 0, 15},       // whole track, bounded by the plan
		{0, 0, 12.5, 0, 0, 12.5},    // whole track, no limit
		{59.5, 60, 60, 1, 59.5, 60}, // the last half second
		{5, 20, 60, 15, 5, 20},      // exactly the limit
	}
	for _, c := range ok {
		from, to, err := CheckRegion(c.start, c.end, c.dur, c.max)
		require.NoError(t, err, "%+v", c)
		require.Equal(t, c.from, from)
		require.Equal(t, c.to, to)
	}
	bad := []struct {
		start, end, dur, max float64
		msg                  string
	}{
		{0, 95, 60, 0, "region end 95.0s is past the end of the track (60.0s)"},
		{-1, 10, 60, 0, "region start -1.0s is negative"},
		{10, 10, 60, 0, "region end 10.0s is not after its start 10.0s"},
		{20, 10, 60, 0, "is not after its start"},
		{61, 70, 60, 0, "region start 61.0s is past the end of the track (60.0s)"},
		{0, 60, 60, 30, "region is 60.0s long, longer than the 30.0s your plan allows"},
		{math.NaN(), 10, 60, 0, "not a number"},
		{5, 0, 60, 0, "not after its start"},
	}
	for _, c := range bad {
		_, _, err := CheckRegion(c.start, c.end, c.dur, c.max)
		require.ErrorContains(t, err, c.msg)
		require.True(t, bus.IsPermanent(err), "%q must be permanent", err)
	}
}

func TestConvert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testenv.Tone(t, dir, 6)
	// Give the source metadata that must not survive.
	tagged := filepath.Join(dir, "tagged.mp3")
	require.NoError(t, media.Run(context.Background(), []string{"-y", "-loglevel", "error", "-i", src,
		"-metadata", "title=Secret Title", "-metadata", "comment=gps 1,2", "-c:a", "libmp3lame", tagged}))

	out, err := Convert(context.Background(), tagged, dir, Request{Start: 1.75, End: 5.25, MaxRegion: 60, FPS: 30})
	require.NoError(t, err)
	const want, frame = 3.5, 1.0 / 30
	require.InDelta(t, want, out.Duration, frame)
	require.InDelta(t, 6, out.SourceDuration, 0.1)

	aac, err := media.Probe(context.Background(), out.AudioPath)
	require.NoError(t, err)
	require.Equal(t, "aac", aac.Audio().CodecName)
	require.Equal(t, 48000, aac.Audio().SampleRate)
	require.Equal(t, 2, aac.Audio().Channels)
	require.InDelta(t, want, aac.Duration, frame)
	require.Len(t, aac.Streams, 1)

	mp3, err := media.Probe(context.Background(), out.MP3Path)
	require.NoError(t, err)
	require.Equal(t, "mp3", mp3.Audio().CodecName)
	require.InDelta(t, 320000, mp3.BitRate, 20000)
	require.InDelta(t, want, mp3.Duration, frame)

	for _, p := range []string{out.AudioPath, out.MP3Path} {
		tags, err := media.FFprobe(context.Background(), "-v", "error", "-show_entries", "format_tags:stream_tags", "-of", "default", p).Output()
		require.NoError(t, err)
		require.NotContains(t, string(tags), "Secret", p)
		require.NotContains(t, string(tags), "gps", p)
	}

	// The analysis on disk matches the one returned, has one frame per video
	// frame, and sees the 120 BPM clicks (at 2.0, 2.5, … in the source, so
	// 0.25, 0.75, … in the region).
	f, err := os.Open(out.AnalysisPath)
	require.NoError(t, err)
	defer f.Close()
	an, err := decodeAnalysis(f)
	require.NoError(t, err)
	require.Equal(t, out.Analysis.Frames, an.Frames)
	require.Len(t, an.Frames, FrameCount(out.Duration, 30))
	ts := beatTimes(an)
	require.GreaterOrEqual(t, len(ts), 6, "%v", ts)
	for i := 1; i < len(ts); i++ {
		require.InDelta(t, 0.5, ts[i]-ts[i-1], 1.01/30, "%v", ts)
	}
	require.InDelta(t, 0.25, ts[0], 1.5/30, "%v", ts)
}

// TestPCMWriterSplitsSamples feeds the samples in pieces that cut through
// them, as a pipe may: every whole sample comes out once, in order.
func TestPCMWriterSplitsSamples(t *testing.T) {
	t.Parallel()
	want := []float32{0, 1, -1, 0.5, float32(math.Pi), -2.25, 1e-7, 3}
	var b []byte
	for _, v := range want {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	b = append(b, 0xAA, 0xBB) // a partial sample at the end is dropped
	for _, piece := range []int{1, 2, 3, 4, 5, 7, 11, len(b)} {
		w := &pcmWriter{}
		for rest := b; len(rest) > 0; {
			k := min(piece, len(rest))
			n, err := w.Write(rest[:k])
			require.NoError(t, err)
			require.Equal(t, k, n)
			rest = rest[k:]
		}
		require.Equal(t, want, w.pcm, "pieces of %d bytes", piece)
	}
}

func TestConvertWholeTrackDefaultFPS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testenv.Tone(t, dir, 2)
	out, err := Convert(context.Background(), src, dir, Request{})
	require.NoError(t, err)
	require.InDelta(t, 2, out.Duration, 1.0/30)
	require.Equal(t, DefaultFPS, out.Analysis.FPS)
	require.Len(t, out.Analysis.Frames, FrameCount(out.Duration, DefaultFPS))
}

func TestConvertRefusesBadSources(t *testing.T) {
	t.Parallel()
	testenv.RequireFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()

	text := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("not audio\n", 100)), 0o644))
	_, err := Convert(ctx, text, dir, Request{Start: 0, End: 1})
	require.True(t, bus.IsPermanent(err), "%v", err) // ffprobe sees a "tty" video

	empty := filepath.Join(dir, "empty.mp3")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	_, err = Convert(ctx, empty, dir, Request{Start: 0, End: 1})
	require.True(t, bus.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "not a readable media file")

	video := filepath.Join(dir, "silent.mp4")
	require.NoError(t, media.Run(ctx, []string{"-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=32x32:rate=10:duration=1",
		"-c:v", "libx264", "-preset", "ultrafast", video}))
	_, err = Convert(ctx, video, dir, Request{Start: 0, End: 1})
	require.True(t, bus.IsPermanent(err), "%v", err)
	require.EqualError(t, err, "source is not an audio file")

	tone := testenv.Tone(t, dir, 2)
	_, err = Convert(ctx, tone, dir, Request{Start: 0, End: 95})
	require.True(t, bus.IsPermanent(err))
	require.ErrorContains(t, err, "region end 95.0s is past the end of the track (2.0s)")

	_, err = Convert(ctx, tone, dir, Request{Start: 0, End: 1, FPS: 500})
	require.True(t, bus.IsPermanent(err))
}

func TestConvertCancelled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := testenv.Tone(t, dir, 2)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(bus.ErrNotCurrent)
	_, err := Convert(ctx, src, dir, Request{Start: 0, End: 1})
	require.ErrorIs(t, err, bus.ErrNotCurrent)
	require.False(t, bus.IsPermanent(err))
}
