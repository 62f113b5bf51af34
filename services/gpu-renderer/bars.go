package renderer

import (
	"encoding/binary"
	"image"
	"image/color"
	"math"
	"slices"
)

// bars is the spectrum: linear, mirrored (lows in the middle) or circular.
type bars struct {
	s     *Scene
	box   image.Rectangle
	cfg   BarsLayer
	nbars int           // distinct levels (about half the bars when symmetric)
	rows  []color.NRGBA // colour by absolute row (linear and mirrored)
	circ  *circTable
}

func (s *Scene) newBars(box image.Rectangle, pal *palette, cfg *BarsLayer) (*bars, error) {
	lo, err := pal.color(cfg.Color, color.NRGBA{R: 255, G: 255, B: 255, A: 255})
	if err != nil {
		return nil, err
	}
	hi, err := pal.color(cfg.ColorTop, lo)
	if err != nil {
		return nil, err
	}
	b := &bars{s: s, box: box, cfg: *cfg, nbars: cfg.Count}
	if cfg.Style != "linear" {
		b.nbars = (cfg.Count + 1) / 2
	}
	if cfg.Style == "circular" {
		b.circ = newCircTable(box, cfg, lo, hi)
	} else {
		b.rows = rowGradient(s.h, box, lo, hi, cfg.Anchor == "center")
	}
	return b, nil
}

// levels returns the smoothed bar heights (0..1) at frame n: peak-hold with
// decay over the previous Hold frames, then a light spatial blur. It is a
// pure function of the analysis and n.
func (b *bars) levels(out []float64, n int) []float64 {
	out = out[:b.nbars]
	clear(out)
	decay := 1.0
	for k := 0; k <= b.cfg.Hold && n-k >= 0; k++ {
		fr := b.s.an.Frames[b.s.analysisIndex(n-k)]
		for j := range out {
			if v := bandLevel(fr.Spectrum, j, b.nbars) * decay; v > out[j] {
				out[j] = v
			}
		}
		decay *= b.cfg.Decay
	}
	prev := out[0]
	for j := range out {
		l, r := prev, out[min(j+1, len(out)-1)]
		prev = out[j]
		out[j] = min(1, 0.25*l+0.5*out[j]+0.25*r)
	}
	return out
}

// barIndex maps bar i of count to its level: symmetric styles put the lows
// in the middle (mirrored) or at the top (circular).
func (b *bars) barIndex(i int) int {
	count := b.cfg.Count
	switch b.cfg.Style {
	case "mirrored":
		if i >= count/2 {
			return i - count/2
		}
		return (count-1)/2 - i
	case "circular":
		return min(i, count-1-i)
	}
	return i
}

func (b *bars) draw(dst *image.RGBA, dmg *damage, n int) {
	var buf [256]float64
	lv := b.levels(buf[:], n)
	if b.circ != nil {
		b.circ.draw(dst, dmg, b, lv)
		return
	}
	c := b.cfg
	slot := float64(b.box.Dx()) / float64(c.Count)
	bw := slot * (1 - c.Gap)
	boxH := float64(b.box.Dy())
	radius := 0.0
	if c.Rounded {
		radius = bw / 2
	}
	for i := 0; i < c.Count; i++ {
		height := max(c.MinHeight, lv[b.barIndex(i)]) * boxH
		if c.Rounded {
			height = max(height, min(bw, boxH)) // keep a round dot when silent
		}
		x0 := float64(b.box.Min.X) + float64(i)*slot + slot*c.Gap/2
		y0, y1 := float64(b.box.Max.Y)-height, float64(b.box.Max.Y)
		if c.Anchor == "center" {
			mid := float64(b.box.Min.Y+b.box.Max.Y) / 2
			y0, y1 = mid-height/2, mid+height/2
		}
		fillRoundRect(dst, dmg, b.box, x0, y0, x0+bw, y1, radius, color.NRGBA{}, b.rows)
	}
}

// circTable precomputes, for every pixel a circular bar may cover, its bar,
// its angular coverage and its radius, sorted by bar then radius: a frame
// then visits only the pixels its bars actually cover.
type circTable struct {
	cx, cy, r0, r1 float64
	start          []int // entries of bar i are start[i]:start[i+1]
	pix            []circPixel
	colors         []color.NRGBA // by integer radius
	solid          []uint32      // colors as RGBA words where opaque, else 0
}

type circPixel struct {
	off int32   // y<<16 | x
	d   float32 // distance from the centre
	a   uint8   // angular coverage 0..255
	// full is the pixel's alpha when the bar reaches past it: its angular
	// coverage times its coverage by the inner edge, as draw computes it.
	full uint8
}

func newCircTable(box image.Rectangle, cfg *BarsLayer, lo, hi color.NRGBA) *circTable {
	t := &circTable{cx: float64(box.Min.X+box.Max.X) / 2, cy: float64(box.Min.Y+box.Max.Y) / 2}
	t.r1 = float64(min(box.Dx(), box.Dy()))/2 - 0.5
	t.r0 = cfg.Inner * t.r1
	count := float64(cfg.Count)
	g := cfg.Gap / 2
	perBar := make([][]circPixel, cfg.Count)
	// Room for each bar's share of the annulus, so the appends below do
	// not keep regrowing (this table is built at every render's start).
	guess := int(math.Pi*((t.r1+1)*(t.r1+1)-max(0, t.r0-1)*max(0, t.r0-1))/count) + 16
	for i := range perBar {
		perBar[i] = make([]circPixel, 0, guess)
	}
	for y := box.Min.Y; y < box.Max.Y; y++ {
		for x := box.Min.X; x < box.Max.X; x++ {
			dx, dy := float64(x)+0.5-t.cx, float64(y)+0.5-t.cy
			d := math.Hypot(dx, dy)
			if d < t.r0-1 || d > t.r1+1 {
				continue
			}
			theta := math.Atan2(dx, -dy) // 0 at the top, clockwise
			if theta < 0 {
				theta += 2 * math.Pi
			}
			slot := theta / (2 * math.Pi) * count
			i := int(slot) % cfg.Count
			frac := slot - math.Floor(slot)
			ps := count / (2 * math.Pi * max(d, 1)) // one pixel in slot units
			cov := min((min(frac-g, 1-g-frac))/ps+0.5, (1-cfg.Gap)/ps)
			if cov <= 0 {
				continue
			}
			px := circPixel{off: int32(y<<16 | x), d: float32(d), a: uint8(min(1, cov)*255 + 0.5)}
			px.full = uint8(min(1, max(0, float64(px.d)-t.r0+0.5))*float64(px.a) + 0.5)
			perBar[i] = append(perBar[i], px)
		}
	}
	t.start = make([]int, cfg.Count+1)
	total := 0
	for _, ps := range perBar {
		total += len(ps)
	}
	t.pix = make([]circPixel, 0, total)
	for i, ps := range perBar {
		slices.SortFunc(ps, func(a, b circPixel) int {
			if a.d != b.d {
				if a.d < b.d {
					return -1
				}
				return 1
			}
			return int(a.off - b.off)
		})
		t.pix = append(t.pix, ps...)
		t.start[i+1] = len(t.pix)
	}
	t.colors = make([]color.NRGBA, int(t.r1)+3)
	t.solid = make([]uint32, len(t.colors))
	for r := range t.colors {
		c := lerpNRGBA(lo, hi, clamp01((float64(r)-t.r0)/max(1, t.r1-t.r0)))
		t.colors[r] = c
		if c.A == 255 {
			t.solid[r] = uint32(c.R) | uint32(c.G)<<8 | uint32(c.B)<<16 | 0xff<<24
		}
	}
	return t
}

func (t *circTable) draw(dst *image.RGBA, dmg *damage, b *bars, lv []float64) {
	span := t.r1 - t.r0
	for i := 0; i < b.cfg.Count; i++ {
		reach := t.r0 + max(b.cfg.MinHeight, lv[b.barIndex(i)])*span
		x0, y0, x1, y1 := math.MaxInt, math.MaxInt, math.MinInt, math.MinInt
		for _, p := range t.pix[t.start[i]:t.start[i+1]] {
			d := float64(p.d)
			if d > reach+0.5 {
				break
			}
			// Short of the tip the coverage is the table's; only the
			// last pixel or two are computed.
			a := uint32(p.full)
			if d > reach-0.5 {
				a = uint32(min(1, reach-d+0.5)*min(1, max(0, d-t.r0+0.5))*float64(p.a) + 0.5)
			}
			if a == 0 {
				continue // blending nothing leaves the pixel as it is
			}
			x, y := int(p.off&0xffff), int(p.off>>16)
			x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x+1), max(y1, y+1)
			o := dst.PixOffset(x, y)
			if w := t.solid[int(d)]; a >= 255 && w != 0 {
				binary.LittleEndian.PutUint32(dst.Pix[o:o+4], w)
				continue
			}
			blendPixel(dst, o, t.colors[int(d)], a)
		}
		if x0 < x1 {
			dmg.rect(x0, y0, x1, y1)
		}
	}
}

// bandLevel resamples the spectrum to bar j of nbars: the mean of the bands
// under the bar, or linear interpolation when bars outnumber bands.
func bandLevel(spec []float32, j, nbars int) float64 {
	nb := len(spec)
	lo := float64(j) * float64(nb) / float64(nbars)
	hi := float64(j+1) * float64(nb) / float64(nbars)
	if hi-lo >= 1 {
		sum, cnt := 0.0, 0
		for k := int(lo); k < int(math.Ceil(hi)) && k < nb; k++ {
			sum += float64(spec[k])
			cnt++
		}
		return clamp01(sum / float64(cnt))
	}
	c := (lo+hi)/2 - 0.5
	k := int(math.Floor(c))
	t := c - float64(k)
	a := spec[min(max(k, 0), nb-1)]
	bb := spec[min(max(k+1, 0), nb-1)]
	return clamp01(float64(a)*(1-t) + float64(bb)*t)
}
