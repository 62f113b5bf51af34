package audio

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/analysis"
)

const sr = AnalysisSampleRate

// clickTrack is a quiet sine bed with a 20 ms 2 kHz click every 60/bpm s,
// plus a little noise so the flux is never exactly zero.
func clickTrack(seconds float64, bpm float64, offset float64) []float32 {
	n := int(seconds * sr)
	pcm := make([]float32, n)
	rng := rand.New(rand.NewPCG(7, 7))
	period := 60 / bpm
	for i := range pcm {
		t := float64(i) / sr
		v := 0.1*math.Sin(2*math.Pi*220*t) + 0.001*(rng.Float64()*2-1)
		if t >= offset {
			if ph := math.Mod(t-offset, period); ph < 0.02 {
				v += 0.7 * math.Sin(2*math.Pi*2000*t) * (1 - ph/0.02)
			}
		}
		pcm[i] = float32(v)
	}
	return pcm
}

func tone(seconds, freq, amp float64) []float32 {
	pcm := make([]float32, int(seconds*sr))
	for i := range pcm {
		pcm[i] = float32(amp * math.Sin(2*math.Pi*freq*float64(i)/sr))
	}
	return pcm
}

func beatTimes(a *analysis.Analysis) []float64 {
	var ts []float64
	for i, f := range a.Frames {
		if f.Beat {
			ts = append(ts, float64(i)/float64(a.FPS))
		}
	}
	return ts
}

func TestAnalyzeClickTrackBeats(t *testing.T) {
	t.Parallel()
	a, err := Analyze(context.Background(), clickTrack(6, 120, 0.25), sr, 6, DefaultParams(30))
	require.NoError(t, err)
	require.NoError(t, a.Validate())
	ts := beatTimes(a)
	require.Len(t, ts, 12, "one beat per click: %v", ts)
	require.InDelta(t, 0.25, ts[0], 1.5/30, "first beat at the first click: %v", ts)
	for i := 1; i < len(ts); i++ {
		require.InDelta(t, 0.5, ts[i]-ts[i-1], 1.01/30, "beats %v", ts)
	}
	// BeatPulse is 1 on a beat and decays before the next one.
	for i, f := range a.Frames {
		if f.Beat && i+12 < len(a.Frames) {
			require.Equal(t, float32(1), f.BeatPulse)
			require.Less(t, a.Frames[i+3].BeatPulse, f.BeatPulse)
			require.Less(t, a.Frames[i+12].BeatPulse, float32(0.05))
		}
	}
	require.Zero(t, a.Frames[0].BeatPulse, "no pulse before the first beat")
}

func TestAnalyzeOtherTempos(t *testing.T) {
	t.Parallel()
	for _, bpm := range []float64{90, 150} {
		a, err := Analyze(context.Background(), clickTrack(8, bpm, 0.1), sr, 8, DefaultParams(60))
		require.NoError(t, err)
		ts := beatTimes(a)
		require.GreaterOrEqual(t, len(ts), int(8*bpm/60)-1, "bpm %g: %v", bpm, ts)
		for i := 1; i < len(ts); i++ {
			require.InDelta(t, 60/bpm, ts[i]-ts[i-1], 1.01/60, "bpm %g: %v", bpm, ts)
		}
	}
}

func TestAnalyzeSteadyToneHasNoBeats(t *testing.T) {
	t.Parallel()
	a, err := Analyze(context.Background(), tone(3, 440, 0.5), sr, 3, DefaultParams(30))
	require.NoError(t, err)
	// The tone starting from silence may count as one onset, nothing after.
	ts := beatTimes(a)
	require.LessOrEqual(t, len(ts), 1, "%v", ts)
	for _, tt := range ts {
		require.Less(t, tt, 0.1)
	}

	silent, err := Analyze(context.Background(), make([]float32, sr), sr, 1, DefaultParams(30))
	require.NoError(t, err)
	require.Empty(t, beatTimes(silent))
	for _, f := range silent.Frames {
		require.Zero(t, f.Loudness)
		for _, v := range f.Spectrum {
			require.Zero(t, v)
		}
	}
}

func TestAnalyzeToneBand(t *testing.T) {
	t.Parallel()
	p := DefaultParams(30)
	for _, freq := range []float64{50, 1000, 8000} {
		a, err := Analyze(context.Background(), tone(2, freq, 0.5), sr, 2, p)
		require.NoError(t, err)
		want := bandOf(freq, p)
		for _, i := range []int{15, 30, 45} {
			s := a.Frames[i].Spectrum
			peak := 0
			for b := range s {
				if s[b] > s[peak] {
					peak = b
				}
			}
			require.Equal(t, want, peak, "%g Hz at frame %d: %v", freq, i, s)
			require.Greater(t, s[peak], float32(0.8))
			// Far bands stay near the floor.
			require.Less(t, s[(peak+p.Bands/2)%p.Bands], float32(0.3))
		}
	}
}

// bandOf is the band a frequency falls in, from the band edges' definition.
func bandOf(freq float64, p Params) int {
	return int(float64(p.Bands) * math.Log(freq/p.MinHz) / math.Log(p.MaxHz/p.MinHz))
}

func TestAnalyzeFrameCountAndRanges(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		dur  float64
		fps  int
		want int
	}{{1, 30, 30}, {1.01, 30, 31}, {2.5, 24, 60}, {0.02, 60, 2}} {
		a, err := Analyze(context.Background(), clickTrack(c.dur, 120, 0), sr, c.dur, DefaultParams(c.fps))
		require.NoError(t, err)
		require.Len(t, a.Frames, c.want)
		require.Equal(t, c.want, FrameCount(c.dur, c.fps))
		require.NoError(t, a.Validate())
		for _, f := range a.Frames {
			require.GreaterOrEqual(t, f.Loudness, float32(0))
			require.LessOrEqual(t, f.Loudness, float32(1))
			for _, v := range f.Spectrum {
				require.GreaterOrEqual(t, v, float32(0))
				require.LessOrEqual(t, v, float32(1))
			}
		}
	}
}

func TestAnalyzeLoudnessFollowsLevel(t *testing.T) {
	t.Parallel()
	quiet, err := Analyze(context.Background(), tone(1, 440, 0.01), sr, 1, DefaultParams(30))
	require.NoError(t, err)
	loud, err := Analyze(context.Background(), tone(1, 440, 0.9), sr, 1, DefaultParams(30))
	require.NoError(t, err)
	require.InDelta(t, 1+20*math.Log10(0.9/math.Sqrt2)/60, loud.Frames[20].Loudness, 0.02)
	require.Less(t, quiet.Frames[20].Loudness, loud.Frames[20].Loudness-0.5)
}

func TestAnalyzeRefusesBadParams(t *testing.T) {
	t.Parallel()
	pcm := tone(0.1, 440, 0.5)
	_, err := Analyze(context.Background(), pcm, sr, 0.1, DefaultParams(0))
	require.Error(t, err)
	_, err = Analyze(context.Background(), pcm, sr, 0, DefaultParams(30))
	require.Error(t, err)
	_, err = Analyze(context.Background(), pcm, 22050, 0.1, DefaultParams(30))
	require.ErrorContains(t, err, "Nyquist")
}

func TestAnalyzeIsDeterministic(t *testing.T) {
	t.Parallel()
	pcm := clickTrack(2, 120, 0)
	a, err := Analyze(context.Background(), pcm, sr, 2, DefaultParams(30))
	require.NoError(t, err)
	b, err := Analyze(context.Background(), pcm, sr, 2, DefaultParams(30))
	require.NoError(t, err)
	require.Equal(t, a, b)
}

// BenchmarkAnalyze measures the analysis of 30 s of audio at 30 fps, the
// length of a typical clip.
func BenchmarkAnalyze(b *testing.B) {
	pcm := clickTrack(30, 120, 0)
	p := DefaultParams(30)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Analyze(context.Background(), pcm, sr, 30, p); err != nil {
			b.Fatal(err)
		}
	}
}
