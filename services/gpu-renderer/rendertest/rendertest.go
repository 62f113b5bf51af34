// Package rendertest holds deterministic stand-ins for a render's inputs, a
// synthetic analysis and a generated cover, so tests, benchmarks, the
// contact sheets in docs/templates and `backbeat frame` need neither audio
// nor image files. It is fixtures only: the renderer's production code does
// not import it.
package rendertest

import (
	"image"
	"image/color"
	"math"

	"github.com/backbeat/backbeat/pkg/analysis"
)

// SyntheticAnalysis is a deterministic stand-in for a real track's analysis
// (120 BPM kick, a bass line, moving mids and a slow loudness swell), for
// designing templates, contact sheets and benchmarks without audio.
func SyntheticAnalysis(duration float64, fps, bands int) *analysis.Analysis {
	n := max(1, int(math.Ceil(duration*float64(fps))))
	a := &analysis.Analysis{Version: analysis.Version, FPS: fps, Duration: duration, Bands: bands,
		Frames: make([]analysis.Frame, n)}
	beat := 0.5 // seconds per beat at 120 BPM
	for i := range a.Frames {
		t := float64(i) / float64(fps)
		since := math.Mod(t, beat)
		kick := math.Exp(-since / 0.09)
		swell := 0.6 + 0.3*math.Sin(2*math.Pi*t/16)
		f := analysis.Frame{Spectrum: make([]float32, bands)}
		for b := range f.Spectrum {
			x := float64(b) / float64(max(1, bands-1)) // 0 lows .. 1 highs
			v := 0.55 * math.Exp(-x*4) * (0.4 + 0.6*kick)
			v += 0.35 * (0.5 + 0.5*math.Sin(t*2.1+x*9)) * math.Exp(-math.Pow((x-0.4)/0.25, 2))
			v += 0.18 * (0.5 + 0.5*math.Sin(t*7.3+x*23)) * x
			f.Spectrum[b] = float32(clamp01(v * swell * 1.3))
		}
		prevSince := math.Mod(t-1/float64(fps), beat)
		f.Beat = i == 0 || since < prevSince
		f.BeatPulse = float32(math.Exp(-since / 0.12))
		f.Loudness = float32(clamp01(swell * (0.75 + 0.25*kick)))
		a.Frames[i] = f
	}
	return a
}

// SampleCover is a generated 600×600 cover art (colour fields and circles),
// so contact sheets and `backbeat frame` show a cover without any file.
func SampleCover() image.Image {
	const n = 600
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			fx, fy := float64(x)/n, float64(y)/n
			r := 0.5 + 0.5*math.Sin(fx*3+1)
			g := 0.3 + 0.3*math.Sin(fy*4+fx*2)
			b := 0.6 + 0.4*math.Cos(fy*3-1)
			for _, c := range [][3]float64{{0.35, 0.4, 0.22}, {0.7, 0.65, 0.15}, {0.55, 0.25, 0.08}} {
				if d := math.Hypot(fx-c[0], fy-c[1]); d < c[2] {
					k := 1 - d/c[2]
					r, g, b = r+0.5*k, g+0.35*k, b-0.2*k
				}
			}
			img.SetRGBA(x, y, color.RGBA{R: u8(r), G: u8(g), B: u8(b), A: 255})
		}
	}
	return img
}

func u8(v float64) uint8 { return uint8(math.Round(clamp01(v) * 255)) }

func clamp01(v float64) float64 { return min(1, max(0, v)) }
