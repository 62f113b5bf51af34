package audio

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/backbeat/backbeat/pkg/analysis"
)

// AnalysisSampleRate is the rate the cropped region is decoded at for the
// analysis: high enough for the 16 kHz top band, and the rate of the AAC.
const AnalysisSampleRate = 48000

// Params tune the analysis. DefaultParams is what the service uses; they are
// a struct so tests and benchmarks can vary one thing at a time.
type Params struct {
	// FPS is the video frame rate: one analysis frame per video frame.
	FPS int
	// Bands is the number of log-spaced spectrum bands from MinHz to MaxHz.
	Bands        int
	MinHz, MaxHz float64
	// SpectrumSize is the FFT size of the spectrum window centred on each
	// frame (4096 at 48 kHz: 85 ms, 11.7 Hz bins, fine enough for 40 Hz).
	SpectrumSize int
	// FloorDB and CeilDB map band levels (dBFS) onto 0..1.
	FloorDB, CeilDB float64
	// LoudFloorDB maps RMS loudness from LoudFloorDB..0 dBFS onto 0..1.
	LoudFloorDB float64
	// Attack and Release are the smoothing time constants: levels rise fast
	// and fall slowly, which is what makes spectrum bars look musical.
	Attack, Release time.Duration
	// Onset detection: FFT size and hop of the spectral flux, and the
	// shortest gap between two beats.
	OnsetSize, OnsetHop int
	MinBeatGap          time.Duration
	// PulseDecay is the time constant of BeatPulse's fall from 1.
	PulseDecay time.Duration
}

// DefaultParams returns the service's analysis settings for a frame rate.
func DefaultParams(fps int) Params {
	return Params{
		FPS:          fps,
		Bands:        48,
		MinHz:        40,
		MaxHz:        16000,
		SpectrumSize: 4096,
		FloorDB:      -75,
		CeilDB:       -5,
		LoudFloorDB:  -60,
		Attack:       15 * time.Millisecond,
		Release:      120 * time.Millisecond,
		OnsetSize:    1024,
		OnsetHop:     480, // 10 ms at 48 kHz
		MinBeatGap:   250 * time.Millisecond,
		PulseDecay:   120 * time.Millisecond,
	}
}

func (p Params) validate() error {
	switch {
	case p.FPS <= 0 || p.FPS > 120:
		return fmt.Errorf("fps %d out of range 1..120", p.FPS)
	case p.Bands <= 0 || p.Bands > 512:
		return fmt.Errorf("bands %d out of range 1..512", p.Bands)
	case p.MinHz <= 0 || p.MaxHz <= p.MinHz:
		return fmt.Errorf("band range %g..%g Hz is empty", p.MinHz, p.MaxHz)
	case p.CeilDB <= p.FloorDB || p.LoudFloorDB >= 0:
		return fmt.Errorf("dB ranges are empty")
	case p.OnsetHop <= 0:
		return fmt.Errorf("onset hop %d must be positive", p.OnsetHop)
	}
	return nil
}

// FrameCount is the number of video (and analysis) frames for a duration:
// ceil(duration·fps), the length pkg/analysis promises.
func FrameCount(duration float64, fps int) int {
	return int(math.Ceil(duration * float64(fps)))
}

// Analyze computes the per-frame analysis of mono PCM at sampleRate for a
// clip of the given duration (the probed duration of the encoded audio; the
// PCM may be a few samples shorter or longer and is zero-padded as needed).
// It is deterministic: the same samples always give the same analysis. It
// stops early with ctx's cause when ctx ends (a cancelled run).
func Analyze(ctx context.Context, pcm []float32, sampleRate int, duration float64, p Params) (*analysis.Analysis, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	if sampleRate <= 0 || duration <= 0 {
		return nil, fmt.Errorf("analyze: sample rate %d and duration %g must be positive", sampleRate, duration)
	}
	if p.MaxHz > float64(sampleRate)/2 {
		return nil, fmt.Errorf("analyze: top band %g Hz is above Nyquist at %d Hz", p.MaxHz, sampleRate)
	}
	n := FrameCount(duration, p.FPS)
	frames := make([]analysis.Frame, n)
	if err := spectrum(ctx, pcm, sampleRate, p, frames); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	loudness(pcm, sampleRate, p, frames)
	beats, err := detectBeats(pcm, sampleRate, p)
	if err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	markBeats(beats, p, frames)
	return &analysis.Analysis{
		Version:  analysis.Version,
		FPS:      p.FPS,
		Duration: duration,
		Bands:    p.Bands,
		Frames:   frames,
	}, nil
}

// spectrum fills each frame's bands from an FFT of a Hann window centred on
// the frame's midpoint. A band's level is the strongest bin inside it, or
// for bands narrower than a bin (the lowest ones) the magnitude interpolated
// at the band's centre, so a pure tone reads the same in any band.
func spectrum(ctx context.Context, pcm []float32, sr int, p Params, frames []analysis.Frame) error {
	f, err := newFFT(p.SpectrumSize)
	if err != nil {
		return err
	}
	size := p.SpectrumSize
	re, im, mag := make([]float64, size), make([]float64, size), make([]float64, size/2+1)
	binHz := float64(sr) / float64(size)
	type band struct {
		lo, hi int     // bins [lo, hi]; lo > hi when the band holds none
		centre float64 // centre frequency in bins
	}
	bands := make([]band, p.Bands)
	ratio := p.MaxHz / p.MinHz
	for b := range bands {
		loHz := p.MinHz * math.Pow(ratio, float64(b)/float64(p.Bands))
		hiHz := p.MinHz * math.Pow(ratio, float64(b+1)/float64(p.Bands))
		bands[b] = band{
			lo:     int(math.Ceil(loHz / binHz)),
			hi:     min(int(math.Ceil(hiHz/binHz))-1, size/2),
			centre: math.Sqrt(loHz*hiHz) / binHz,
		}
	}
	atk, rel := smoothing(p.Attack, p.FPS), smoothing(p.Release, p.FPS)
	prev := make([]float64, p.Bands)
	for i := range frames {
		if i%64 == 0 && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		centre := int(math.Round((float64(i) + 0.5) * float64(sr) / float64(p.FPS)))
		f.magnitudes(pcm, centre, re, im, mag)
		s := make([]float32, p.Bands)
		for b, bd := range bands {
			var m float64
			if bd.lo <= bd.hi {
				for k := bd.lo; k <= bd.hi; k++ {
					m = max(m, mag[k])
				}
			} else {
				k := int(bd.centre)
				frac := bd.centre - float64(k)
				m = mag[k]*(1-frac) + mag[min(k+1, size/2)]*frac
			}
			v := scaleDB(20*math.Log10(m+1e-12), p.FloorDB, p.CeilDB)
			prev[b] = smooth(prev[b], v, atk, rel)
			s[b] = float32(prev[b])
		}
		frames[i].Spectrum = s
	}
	return nil
}

// loudness sets each frame's RMS level over the samples of that frame.
func loudness(pcm []float32, sr int, p Params, frames []analysis.Frame) {
	atk, rel := smoothing(p.Attack, p.FPS), smoothing(p.Release, p.FPS)
	var prev float64
	for i := range frames {
		a := i * sr / p.FPS
		b := (i + 1) * sr / p.FPS
		var sum float64
		for j := a; j < b; j++ {
			if j >= 0 && j < len(pcm) {
				sum += float64(pcm[j]) * float64(pcm[j])
			}
		}
		rms := math.Sqrt(sum / float64(max(b-a, 1)))
		v := scaleDB(20*math.Log10(rms+1e-12), p.LoudFloorDB, 0)
		prev = smooth(prev, v, atk, rel)
		frames[i].Loudness = float32(prev)
	}
}

// markBeats sets Beat on the frame of each beat and BeatPulse decaying from
// 1 there (0 before the first beat).
func markBeats(beats []float64, p Params, frames []analysis.Frame) {
	for _, t := range beats {
		if i := int(t * float64(p.FPS)); i >= 0 && i < len(frames) {
			frames[i].Beat = true
		}
	}
	tau := p.PulseDecay.Seconds() * float64(p.FPS) // in frames
	last := -1
	for i := range frames {
		if frames[i].Beat {
			last = i
		}
		if last < 0 || tau <= 0 {
			continue
		}
		v := math.Exp(-float64(i-last) / tau)
		if v < 0.01 {
			v = 0
		}
		frames[i].BeatPulse = float32(v)
	}
}

// smoothing turns a time constant into the per-frame coefficient of a
// one-pole filter, so the feel does not change with the frame rate.
func smoothing(tau time.Duration, fps int) float64 {
	if tau <= 0 {
		return 1
	}
	return 1 - math.Exp(-1/(tau.Seconds()*float64(fps)))
}

func smooth(prev, v, attack, release float64) float64 {
	if v > prev {
		return prev + attack*(v-prev)
	}
	return prev + release*(v-prev)
}

func scaleDB(db, floor, ceil float64) float64 {
	return math.Min(1, math.Max(0, (db-floor)/(ceil-floor)))
}
