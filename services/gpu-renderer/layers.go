package renderer

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"

	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// Per-frame layers. Each is built once per render (pre-scaled images,
// colour tables, lookup tables) so that drawing a frame is a few passes over
// its box, and each reads only the analysis and the frame number.

// newDrawer prepares a per-frame layer; nil means it draws nothing here (a
// cover layer in a video without cover art).
func (s *Scene) newDrawer(box image.Rectangle, in SceneInput, pal *template.Palette, l *template.Layer) (drawer, error) {
	white := color.NRGBA{R: 255, G: 255, B: 255, A: 255}
	switch {
	case l.Cover != nil:
		if in.Cover == nil {
			return nil, nil
		}
		return s.newCover(box, in.Cover, pal, l.Cover), nil
	case l.Bars != nil:
		return s.newBars(box, pal, l.Bars)
	case l.Waveform != nil:
		lo, err := pal.Color(l.Waveform.Color, white)
		if err != nil {
			return nil, err
		}
		hi, err := pal.Color(l.Waveform.ColorTop, lo)
		if err != nil {
			return nil, err
		}
		return &waveform{s: s, box: box, window: l.Waveform.Window, rows: rowGradient(s.h, box, lo, hi, true)}, nil
	case l.Rings != nil:
		c, err := pal.Color(l.Rings.Color, white)
		if err != nil {
			return nil, err
		}
		return &rings{s: s, box: box, cfg: *l.Rings, color: c}, nil
	case l.Particles != nil:
		c, err := pal.Color(l.Particles.Color, white)
		if err != nil {
			return nil, err
		}
		return s.newParticles(box, c, l.Particles), nil
	case l.Progress != nil:
		fill, err := pal.Color(l.Progress.Color, white)
		if err != nil {
			return nil, err
		}
		track, err := pal.Color(l.Progress.Track, color.NRGBA{R: 255, G: 255, B: 255, A: 70})
		if err != nil {
			return nil, err
		}
		return &progress{s: s, box: box, fill: fill, track: track}, nil
	}
	return nil, fmt.Errorf("not a per-frame layer")
}

// rowGradient is a colour per absolute row: lo at the box's foot, hi at its
// top, or (centred) lo on the middle line and hi at both edges.
func rowGradient(h int, box image.Rectangle, lo, hi color.NRGBA, centred bool) []color.NRGBA {
	rows := make([]color.NRGBA, h)
	for y := box.Min.Y; y < box.Max.Y; y++ {
		t := float64(box.Max.Y-1-y) / float64(max(1, box.Dy()-1))
		if centred {
			t = math.Abs(2*t - 1)
		}
		rows[y] = lerpNRGBA(lo, hi, t)
	}
	return rows
}

// pulseLevels is how many pre-scaled sizes of the cover exist; a frame picks
// the nearest one, so the pulse costs a blend, not a resample, per frame.
const pulseLevels = 9

// cover is the cover art pulsing with BeatPulse.
type cover struct {
	s      *Scene
	box    image.Rectangle
	levels []*image.RGBA
	// visible[k][y] is the span of level k's row y that is not fully
	// transparent: a circle's corners are skipped, not blended as nothing.
	visible [][]span
}

func (s *Scene) newCover(box image.Rectangle, img image.Image, pal *template.Palette, c *template.CoverLayer) *cover {
	pulse := pal.CoverPulse(c.Pulse)
	side := min(box.Dx(), box.Dy())
	base := float64(side) / (1 + pulse)
	cv := &cover{s: s, box: box, levels: make([]*image.RGBA, pulseLevels)}
	// One good (Catmull-Rom) scale to the largest size; the smaller levels
	// are at most Pulse smaller and come from it with a cheap bilinear pass
	// (our own: x/image's costs ten times as much for the same look),
	// in parallel: render start-up is part of the render's wall time.
	size := func(k int) int {
		sz := int(math.Round(base * (1 + pulse*float64(k)/(pulseLevels-1))))
		return max(2, min(sz, side))
	}
	top := scaleImage(img, size(pulseLevels-1), size(pulseLevels-1))
	var wg sync.WaitGroup
	for k := range cv.levels {
		wg.Go(func() {
			sz := size(k)
			scaled := top
			if k != pulseLevels-1 {
				scaled = image.NewRGBA(image.Rect(0, 0, sz, sz))
				bilinearScale(scaled, top)
			}
			cv.levels[k] = scaled
		})
	}
	wg.Wait()
	for _, scaled := range cv.levels {
		sz := scaled.Rect.Dx()
		wg.Go(func() {
			switch c.Shape {
			case "circle":
				roundCorners(scaled, float64(sz)/2)
			case "square":
			default:
				r := c.Radius
				if r == 0 {
					r = 0.06
				}
				roundCorners(scaled, float64(sz)*r)
			}
		})
	}
	wg.Wait()
	cv.visible = make([][]span, len(cv.levels))
	for k, img := range cv.levels {
		cv.visible[k] = visibleSpans(img)
	}
	return cv
}

// visibleSpans returns, per row of img (origin 0,0), the columns from its
// first to its last pixel with non-zero alpha (empty if none).
func visibleSpans(img *image.RGBA) []span {
	out := make([]span, img.Rect.Dy())
	for y := range out {
		row := img.Pix[y*img.Stride : y*img.Stride+4*img.Rect.Dx()]
		lo, hi := 0, img.Rect.Dx()
		for lo < hi && row[4*lo+3] == 0 {
			lo++
		}
		for hi > lo && row[4*hi-1] == 0 {
			hi--
		}
		out[y] = span{lo, hi}
	}
	return out
}

// key is the pulse level of frame n: the cover's pixels depend on it alone.
func (c *cover) key(n int) int {
	fr := c.s.an.Frames[c.s.analysisIndex(n)]
	p := clamp01(float64(fr.BeatPulse))
	return int(math.Round(p * (pulseLevels - 1)))
}

func (c *cover) keys() int { return pulseLevels }

func (c *cover) draw(dst *image.RGBA, dmg *damage, n int) {
	img := c.levels[c.key(n)]
	cx := c.box.Min.X + c.box.Dx()/2
	cy := c.box.Min.Y + c.box.Dy()/2
	blendOver(dst, dmg, img, cx-img.Rect.Dx()/2, cy-img.Rect.Dy()/2, c.box)
}

// progress is the track and the part of it played by frame n.
type progress struct {
	s           *Scene
	box         image.Rectangle
	fill, track color.NRGBA
	// trackInBase is set when the track is drawn once into the static base.
	trackInBase bool
}

// drawTrack draws the whole track, unplayed.
func (p *progress) drawTrack(dst *image.RGBA) {
	b := p.box
	fillRoundRect(dst, nil, b, float64(b.Min.X), float64(b.Min.Y), float64(b.Max.X), float64(b.Max.Y), float64(b.Dy())/2, p.track, nil)
}

func (p *progress) draw(dst *image.RGBA, dmg *damage, n int) {
	b := p.box
	x0, y0, y1 := float64(b.Min.X), float64(b.Min.Y), float64(b.Max.Y)
	r := float64(b.Dy()) / 2
	if !p.trackInBase {
		fillRoundRect(dst, dmg, b, x0, y0, float64(b.Max.X), y1, r, p.track, nil)
	}
	frac := min(1, float64(n+1)/float64(p.s.frames))
	fillRoundRect(dst, dmg, b, x0, y0, x0+frac*float64(b.Dx()), y1, r, p.fill, nil)
}

// loudAt is the loudness at a fractional analysis frame (0 before the start).
func (s *Scene) loudAt(a float64) float64 {
	if a < 0 {
		return 0
	}
	fr := s.an.Frames
	i := min(int(a), len(fr)-1)
	j := min(i+1, len(fr)-1)
	t := a - float64(i)
	bass := func(k int) float64 { // the low quarter of the spectrum adds punch
		sp := fr[k].Spectrum
		q := max(1, len(sp)/4)
		sum := float32(0)
		for _, v := range sp[:q] {
			sum += v
		}
		return float64(fr[k].Loudness) * (0.55 + 0.45*float64(sum)/float64(q))
	}
	return clamp01(bass(i)*(1-t) + bass(j)*min(1, t))
}

// waveform is the loudness envelope of the last window seconds.
type waveform struct {
	s      *Scene
	box    image.Rectangle
	window float64
	rows   []color.NRGBA
}

// waveStrokes is the number of strokes across a waveform box, the same at
// every resolution so a small preview looks like the full-size video.
const waveStrokes = 90

func (wf *waveform) draw(dst *image.RGBA, dmg *damage, n int) {
	b := wf.box
	an := float64(wf.s.an.FPS)
	now := float64(n) * an / float64(wf.s.fps)
	mid := float64(b.Min.Y+b.Max.Y) / 2
	half := float64(b.Dy()) / 2
	slot := float64(b.Dx()) / waveStrokes
	sw := max(1, slot*0.55)
	for k := 0; k < waveStrokes; k++ {
		x0 := float64(b.Min.X) + float64(k)*slot + (slot-sw)/2
		a := now - float64(waveStrokes-1-k)/(waveStrokes-1)*wf.window*an
		// Contrast: quiet passages shrink to a thread, loud ones fill the box.
		v := math.Pow(clamp01((wf.s.loudAt(a)-0.2)/0.8), 1.6)
		hh := max(sw/2, v*half)
		fillRoundRect(dst, dmg, b, x0, mid-hh, x0+sw, mid+hh, sw/2, color.NRGBA{}, wf.rows)
	}
}

// rings are born on beats and grow and fade over their life.
type rings struct {
	s     *Scene
	box   image.Rectangle
	cfg   template.RingsLayer
	color color.NRGBA
}

func (r *rings) draw(dst *image.RGBA, dmg *damage, n int) {
	fps := float64(r.s.fps)
	life := int(math.Ceil(r.cfg.Life * fps))
	b := r.box
	cx, cy := float64(b.Min.X+b.Max.X)/2, float64(b.Min.Y+b.Max.Y)/2
	R := float64(min(b.Dx(), b.Dy())) / 2
	// Oldest first, so newer rings are drawn on top. Beats are found by
	// looking back from n: a pure function of the analysis and n.
	for k := min(life, n); k >= 0; k-- {
		i := r.s.analysisIndex(n - k)
		if !r.s.an.Frames[i].Beat || (n-k > 0 && r.s.analysisIndex(n-k-1) == i) {
			continue
		}
		age := float64(k) / float64(life)
		loud := float64(r.s.an.Frames[i].Loudness)
		ease := 1 - (1-age)*(1-age)
		radius := (r.cfg.MinRadius + (r.cfg.MaxRadius-r.cfg.MinRadius)*ease) * R
		th := r.cfg.Thickness * R * (0.5 + loud)
		alpha := (1 - age) * (0.35 + 0.65*loud)
		fillRing(dst, dmg, b, cx, cy, max(0, radius-th), min(R, radius), r.color, alpha)
	}
}
