package renderer

import (
	"encoding/binary"
	"image"
	"image/color"
	"math"

	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// bars is the spectrum: linear, mirrored (lows in the middle) or circular.
type bars struct {
	s     *Scene
	box   image.Rectangle
	cfg   template.BarsLayer
	nbars int           // distinct levels (about half the bars when symmetric)
	rows  []color.NRGBA // colour by absolute row (linear and mirrored)
	circ  *circTable
}

func (s *Scene) newBars(box image.Rectangle, pal *template.Palette, cfg *template.BarsLayer) (*bars, error) {
	lo, err := pal.Color(cfg.Color, color.NRGBA{R: 255, G: 255, B: 255, A: 255})
	if err != nil {
		return nil, err
	}
	hi, err := pal.Color(cfg.ColorTop, lo)
	if err != nil {
		return nil, err
	}
	b := &bars{s: s, box: box, cfg: *cfg, nbars: cfg.Count}
	if cfg.Style != "linear" {
		b.nbars = (cfg.Count + 1) / 2
	}
	if cfg.Style == "circular" {
		b.circ = newCircTable(box, 4*s.w, cfg, lo, hi)
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
// its angular coverage and its radius, grouped by bar and then by whole
// radius: a frame visits only the pixels its bars actually cover.
type circTable struct {
	cx, cy, r0, r1 float64
	stride         int // Pix stride the offsets are for
	// m2 is x + mirror(x) for the vertical axis through cx, when the table
	// holds only the left half (x <= m2-x) and each pixel stands for its
	// mirror too; -1 when it holds every pixel.
	m2       int
	base, nb int   // bucket k holds radii [base+k, base+k+1); nb buckets
	start    []int // entries of bar i, bucket k end at start[i*(nb+1)+k+1]
	pix      []circPixel
	// box[i*nb+k] bounds the pixels of bar i in buckets 0..k: the damage
	// of a bar reaching into bucket k.
	box    []image.Rectangle
	colors []color.NRGBA // by integer radius
	solid  []uint32      // colors as RGBA words where opaque, else 0
}

type circPixel struct {
	off int32   // Pix offset
	d   float32 // distance from the centre
	a   uint8   // angular coverage 0..255
	// full is the pixel's alpha when the bar reaches past it: its angular
	// coverage times its coverage by the inner edge, as draw computes it.
	full uint8
}

func newCircTable(box image.Rectangle, stride int, cfg *template.BarsLayer, lo, hi color.NRGBA) *circTable {
	t := &circTable{cx: float64(box.Min.X+box.Max.X) / 2, cy: float64(box.Min.Y+box.Max.Y) / 2, stride: stride}
	t.r1 = float64(min(box.Dx(), box.Dy()))/2 - 0.5
	t.r0 = cfg.Inner * t.r1
	count := float64(cfg.Count)
	g := cfg.Gap / 2
	dMin, dMax := t.r0-1, t.r1+1
	t.base = int(math.Floor(max(0, dMin)))
	t.nb = int(dMax) - t.base + 1
	// Bar i and bar count-1-i show the same level (barIndex) and are
	// mirror images about the vertical axis: when that axis falls on a
	// pixel edge or centre, only the left half is tabled, and drawing a
	// pixel draws its mirror as well, at the same distance and coverage.
	t.m2 = box.Min.X + box.Max.X - 1
	if float64(t.m2+1) != 2*t.cx {
		t.m2 = -1
	}
	type entry struct {
		p    circPixel
		x, y int
	}
	perBar := make([][]entry, cfg.Count)
	guess := int(math.Pi*((dMax)*(dMax)-max(0, dMin)*max(0, dMin))/count) + 16
	for i := range perBar {
		perBar[i] = make([]entry, 0, guess)
	}
	for y := box.Min.Y; y < box.Max.Y; y++ {
		dy := float64(y) + 0.5 - t.cy
		if math.Abs(dy) > dMax+1 {
			continue
		}
		// Only the annulus is visited: |dx| beyond outer is farther than
		// dMax+1, and below hole nearer than dMin-1 (a pixel of margin
		// each; the distance test below decides).
		outer := math.Sqrt((dMax+1)*(dMax+1) - dy*dy)
		hole := -1.0
		if dMin-1 > math.Abs(dy) {
			hole = math.Sqrt((dMin-1)*(dMin-1) - dy*dy)
		}
		xa := max(box.Min.X, int(math.Floor(t.cx-outer))-1)
		xb := min(box.Max.X, int(math.Ceil(t.cx+outer))+1)
		if t.m2 >= 0 {
			xb = min(xb, t.m2/2+1) // x <= m2-x
		}
		for x := xa; x < xb; x++ {
			dx := float64(x) + 0.5 - t.cx
			if math.Abs(dx) < hole {
				continue
			}
			d := math.Hypot(dx, dy)
			if d < dMin || d > dMax {
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
			px := circPixel{off: int32(y*stride + 4*x), d: float32(d), a: uint8(min(1, cov)*255 + 0.5)}
			px.full = uint8(min(1, max(0, float64(px.d)-t.r0+0.5))*float64(px.a) + 0.5)
			perBar[i] = append(perBar[i], entry{px, x, y})
		}
	}
	// Per bar, a counting sort by whole radius (stable, so the order is
	// the scan's), and the running bounding box per bucket.
	total := 0
	for _, es := range perBar {
		total += len(es)
	}
	t.pix = make([]circPixel, total)
	t.start = make([]int, cfg.Count*(t.nb+1)+1)
	t.box = make([]image.Rectangle, cfg.Count*t.nb)
	at := 0
	counts := make([]int, t.nb)
	for i, es := range perBar {
		clear(counts)
		for _, e := range es {
			counts[t.bucket(float64(e.p.d))]++
		}
		first := i * (t.nb + 1)
		t.start[first] = at
		for k, c := range counts {
			t.start[first+k+1] = t.start[first+k] + c
		}
		next := append([]int(nil), t.start[first:first+t.nb]...)
		bb := make([]image.Rectangle, t.nb)
		for _, e := range es {
			k := t.bucket(float64(e.p.d))
			t.pix[next[k]] = e.p
			next[k]++
			bb[k] = bb[k].Union(image.Rect(e.x, e.y, e.x+1, e.y+1))
		}
		run := image.Rectangle{}
		for k := range bb {
			run = run.Union(bb[k])
			t.box[i*t.nb+k] = run
		}
		at += len(es)
	}
	t.colors = make([]color.NRGBA, int(t.r1)+3)
	t.solid = make([]uint32, len(t.colors))
	for r := range t.colors {
		c := lerpNRGBA(lo, hi, clamp01((float64(r)-t.r0)/max(1, t.r1-t.r0)))
		t.colors[r] = c
		if c.A == 255 {
			t.solid[r] = rgbaWord(c)
		}
	}
	return t
}

// put writes a bar pixel of alpha a at Pix offset o, distance d.
func (t *circTable) put(dst *image.RGBA, o int, d float64, a uint32) {
	if w := t.solid[int(d)]; a >= 255 && w != 0 {
		binary.LittleEndian.PutUint32(dst.Pix[o:o+4], w)
		return
	}
	blendPixel(dst, o, t.colors[int(d)], a)
}

// bucket is the bucket of distance d, clamped to the table.
func (t *circTable) bucket(d float64) int { return min(max(int(d)-t.base, 0), t.nb-1) }

func (t *circTable) draw(dst *image.RGBA, dmg *damage, b *bars, lv []float64) {
	if dst.Stride != t.stride {
		panic("circular bars drawn into a frame of another size")
	}
	span := t.r1 - t.r0
	for i := 0; i < b.cfg.Count; i++ {
		reach := t.r0 + max(b.cfg.MinHeight, lv[b.barIndex(i)])*span
		lim := reach + 0.5
		if lim < float64(t.base) {
			continue
		}
		// Every bucket that may hold a pixel within lim; inside the last
		// one the order is not by distance, so none is skipped by a break.
		k := t.bucket(lim)
		first := i * (t.nb + 1)
		for _, p := range t.pix[t.start[first]:t.start[first+k+1]] {
			d := float64(p.d)
			if d > lim {
				continue
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
			o := int(p.off)
			t.put(dst, o, d, a)
			if t.m2 >= 0 {
				// The mirror: same row, column m2-x.
				row := o - o%t.stride
				if mo := row + 4*t.m2 - (o - row); mo != o {
					t.put(dst, mo, d, a)
				}
			}
		}
		if r := t.box[i*t.nb+k]; !r.Empty() {
			dmg.rect(r.Min.X, r.Min.Y, r.Max.X, r.Max.Y)
			if t.m2 >= 0 {
				dmg.rect(t.m2+1-r.Max.X, r.Min.Y, t.m2+1-r.Min.X, r.Max.Y)
			}
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
