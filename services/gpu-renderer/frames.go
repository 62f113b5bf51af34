package renderer

import (
	"image"
	"sync"
	"sync/atomic"

	"github.com/backbeat/backbeat/services/gpu-renderer/internal/yuv"
)

// Incremental YUV composition. A dirty rectangle is where per-frame layers
// may draw, but in most frames they draw in a part of it only (short bars,
// a thin waveform, small particles). The drawing primitives record the
// spans they write per row pair (damage), and the composer converts only
// those; the rest of the output keeps (or gets back) the static base's YUV.
// Converting a pixel the layers did not change gives the base's YUV again,
// so the output is byte for byte what converting the whole rectangle gives,
// as long as the damage covers every pixel written.
//
// A rectangle drawn by one layer whose pixels depend on a small key (the
// cover's pulse level) is converted once per key and copied afterwards.

// keyedDrawer is a per-frame layer whose drawing is a function of key(n)
// alone, one of keys() values.
type keyedDrawer interface {
	drawer
	key(n int) int
	keys() int
}

// dirtyRect is one even-aligned rectangle of the frame that per-frame layers
// draw in.
type dirtyRect struct {
	r image.Rectangle
	// keyed is set when the rectangle is drawn by this layer alone; its
	// converted pixels are cached per key and bit depth in cache.
	keyed keyedDrawer
	cache [2][]keyCache
	// occ is set when the last layer drawn here hides part of the others.
	occ *occlusion
}

// keyCache holds the planes of one rectangle for one key: Y rows, then U,
// then V, each as wide as the rectangle's part of that plane.
type keyCache struct {
	once sync.Once
	data []byte
	// ready is set once data is filled, for readers that must not wait.
	ready atomic.Bool
}

// span is the columns [lo, hi) of a row pair; lo >= hi is empty.
type span struct{ lo, hi int }

// yuvFrame is an output buffer and what it holds: in row pair p of dirty
// rectangle i, columns outside the spans moved[i][p] hold the static base.
type yuvFrame struct {
	b     []byte
	moved [][][]span
}

// newYUVFrame returns a buffer holding the static base.
func (s *Scene) newYUVFrame(hdr bool) *yuvFrame {
	return s.newYUVFrameIn(make([]byte, yuv.FrameSize(s.w, s.h, hdr)), hdr)
}

// newYUVFrameIn is newYUVFrame in b, which must be a frame's size.
func (s *Scene) newYUVFrameIn(b []byte, hdr bool) *yuvFrame {
	copy(b, s.staticYUV(hdr))
	return &yuvFrame{b: b, moved: s.rowSpans()}
}

// rowSpans is an empty list of spans per row pair of every dirty rectangle.
func (s *Scene) rowSpans() [][][]span {
	out := make([][][]span, len(s.dirty))
	for i, d := range s.dirty {
		out[i] = make([][]span, d.r.Dy()/2)
	}
	return out
}

// composer is one worker's scratch frame and what it holds: in row pair p
// of dirty rectangle i, columns outside the spans moved[i][p] equal the
// static base.
type composer struct {
	s     *Scene
	work  *image.RGBA
	dmg   *damage
	moved [][][]span
	runs  []span // scratch: this row pair's damaged runs
	gaps  []span // scratch: what the buffer must get back from the base
	held  []span // scratch: what the buffer holds after this frame
	conv  []span // scratch: runs to convert
	core  [1]span
	// restore is scratch: the Pix ranges, as spans of byte offsets, of
	// the rows this frame drew last time (restoreRows).
	restore []span
}

// restoreRows appends to out the Pix range of every row of the spans the
// scratch frame drew last time, outside keyed rectangles (whose pixels it
// never holds).
func (c *composer) restoreRows(out []span) []span {
	st := c.s.static
	for i, d := range c.s.dirty {
		if d.keyed != nil {
			continue
		}
		for p, ms := range c.moved[i] {
			for _, m := range ms {
				for y := d.r.Min.Y + 2*p; y < d.r.Min.Y+2*p+2; y++ {
					out = append(out, span{st.PixOffset(m.lo, y), st.PixOffset(m.hi, y)})
				}
			}
		}
	}
	return out
}

// newComposer returns a worker's compositor; it is not safe for concurrent
// use, but any number of composers may share the scene.
func (s *Scene) newComposer() *composer {
	c := &composer{s: s, work: s.NewFrame(), dmg: newDamage(s.h), moved: s.rowSpans()}
	// The scratch frame starts black, not static: everything has moved.
	for i, d := range s.dirty {
		for p := range c.moved[i] {
			c.moved[i][p] = []span{{d.r.Min.X, d.r.Max.X}}
		}
	}
	return c
}

// compose writes frame n into out, equal byte for byte to converting
// Compose's output.
//
// The layers record the spans they draw in (damage), so what must be
// converted is known without comparing pixels: the damaged spans, less an
// occluder's opaque core, which comes from its per-key cache. The buffer
// gets back the base's YUV where it held an older frame's pixels and this
// frame drew nothing.
func (c *composer) compose(out *yuvFrame, n int, hdr bool) {
	s, work := c.s, c.work
	st := s.static
	// Back to the base where this scratch frame drew last time: hundreds
	// of short copies. Asking for all their cache lines first lets their
	// misses overlap.
	c.restore = c.restoreRows(c.restore[:0])
	for _, r := range c.restore {
		prefetchSpan(st.Pix[r.lo:r.hi])
		prefetchSpan(work.Pix[r.lo:r.hi])
	}
	for _, r := range c.restore {
		copy(work.Pix[r.lo:r.hi], st.Pix[r.lo:r.hi])
	}
	c.dmg.reset()
	for _, l := range s.layers {
		switch {
		case l.keyed:
		case l.occ != nil:
			l.occ.draw(work, c.dmg, n, hdr)
		default:
			l.d.draw(work, c.dmg, n)
		}
	}
	base := s.staticYUV(hdr)
	for i := range s.dirty {
		d := &s.dirty[i]
		if d.keyed != nil {
			c.composeKeyed(out.b, d, n, hdr)
			continue
		}
		r := d.r
		var cores []span
		var coreYUV []byte
		if d.occ != nil {
			cores, coreYUV = d.occ.core(out.b, work, s.w, s.h, r, n, hdr)
		}
		for p := range c.moved[i] {
			y := r.Min.Y + 2*p
			c.runs = c.dmg.spans(c.runs[:0], y/2, r.Min.X, r.Max.X)
			c.moved[i][p] = append(c.moved[i][p][:0], c.runs...)
			var core span
			if cores != nil {
				core = cores[p]
			}
			if core.lo < core.hi {
				// Converted: the damage either side of the core; the core
				// itself comes from the cache below.
				c.core[0] = core
				c.conv = subtractSpans(c.conv[:0], c.runs, c.core[:])
				c.held = insertSpan(append(c.held[:0], c.conv...), core)
			} else {
				c.conv = append(c.conv[:0], c.runs...)
				c.held = append(c.held[:0], c.runs...)
			}
			// Back to the base where this buffer held an older frame, then
			// the new frame's runs over it.
			c.gaps = subtractSpans(c.gaps[:0], out.moved[i][p], c.held)
			for _, m := range c.gaps {
				copyRowPair(out.b, base, s.w, s.h, m.lo, m.hi, y, hdr)
			}
			out.moved[i][p] = append(out.moved[i][p][:0], c.held...)
			for _, run := range c.conv {
				if !hdr {
					run = vectorWidth(run, r, core)
				}
				convertSpan(out.b, work, run, y, hdr)
			}
		}
		if cores != nil {
			packSpans(coreYUV, out.b, s.w, s.h, r, cores, hdr, true)
		}
	}
}

// composeKeyed copies the cached planes of a keyed rectangle into out,
// drawing and converting them first if this key has not been seen.
func (c *composer) composeKeyed(out []byte, d *dirtyRect, n int, hdr bool) {
	k, hd := d.keyed.key(n), 0
	if hdr {
		hd = 1
	}
	kc := &d.cache[hd][k]
	filled := false
	kc.once.Do(func() {
		s, r, st := c.s, d.r, c.s.static
		for y := r.Min.Y; y < r.Max.Y; y++ {
			o := st.PixOffset(r.Min.X, y)
			copy(c.work.Pix[o:o+4*r.Dx()], st.Pix[o:o+4*r.Dx()])
		}
		d.keyed.draw(c.work, nil, n)
		// Converted straight into out, which this frame needs anyway.
		if hdr {
			yuv.ToYUV420P10Rect(out, c.work, r)
		} else {
			yuv.ToYUV420Rect(out, c.work, r)
		}
		kc.data = rectPlanes(nil, out, s.w, s.h, r, hdr, false)
		filled = true
	})
	if filled {
		return
	}
	rectPlanes(kc.data, out, c.s.w, c.s.h, d.r, hdr, true)
}

// rectPlanes copies rectangle r of the planes of a w×h frame to a packed
// slice (toFrame false; packed may be nil and is returned) or from it back
// into frame (toFrame true).
func rectPlanes(packed, frame []byte, w, h int, r image.Rectangle, hdr, toFrame bool) []byte {
	bs := 1
	if hdr {
		bs = 2
	}
	cw, ch := w/2, h/2
	if packed == nil {
		packed = make([]byte, 0, bs*(r.Dx()*r.Dy()+r.Dx()*r.Dy()/2))
	}
	at := 0
	move := func(off, n int) {
		if toFrame {
			copy(frame[off:off+n], packed[at:at+n])
		} else {
			packed = append(packed, frame[off:off+n]...)
		}
		at += n
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		move(bs*(y*w+r.Min.X), bs*r.Dx())
	}
	for _, plane := range []int{w * h, w*h + cw*ch} {
		for y := r.Min.Y / 2; y < r.Max.Y/2; y++ {
			move(bs*(plane+y*cw+r.Min.X/2), bs*r.Dx()/2)
		}
	}
	return packed
}

// copyRowPair copies the YUV of pixels [x0, x1) of rows y and y+1 (y even)
// from the static base into out.
func copyRowPair(out, base []byte, w, h, x0, x1, y int, hdr bool) {
	bs := 1
	if hdr {
		bs = 2
	}
	for yy := y; yy < y+2; yy++ {
		o := bs * (yy*w + x0)
		copy(out[o:o+bs*(x1-x0)], base[o:o+bs*(x1-x0)])
	}
	cw, ch := w/2, h/2
	for _, plane := range []int{w * h, w*h + cw*ch} {
		o := bs * (plane + (y/2)*cw + x0/2)
		n := bs * (x1 - x0) / 2
		copy(out[o:o+n], base[o:o+n])
	}
}

// subtractSpans appends to out the parts of the sorted, disjoint spans a
// that no span of the sorted, disjoint b covers.
func subtractSpans(out, a, b []span) []span {
	j := 0
	for _, m := range a {
		lo := m.lo
		for j < len(b) && b[j].hi <= lo {
			j++
		}
		for k := j; k < len(b) && b[k].lo < m.hi; k++ {
			if b[k].lo > lo {
				out = append(out, span{lo, b[k].lo})
			}
			lo = max(lo, b[k].hi)
		}
		if lo < m.hi {
			out = append(out, span{lo, m.hi})
		}
	}
	return out
}

// insertSpan adds sp, disjoint from every span of the sorted spans, in
// its place.
func insertSpan(spans []span, sp span) []span {
	i := 0
	for i < len(spans) && spans[i].lo < sp.lo {
		i++
	}
	spans = append(spans, span{})
	copy(spans[i+1:], spans[i:])
	spans[i] = sp
	return spans
}

// damage is what one frame's per-frame layers wrote: per row pair of the
// frame, the even-aligned column spans of every primitive drawn there, in
// drawing order until spans sorts them. A nil *damage records nothing (a
// frame drawn for a PNG, a keyed layer filling its cache).
type damage struct {
	pairs [][]span // by row pair, y/2
	used  []int    // row pairs with spans, so reset is cheap
}

// damageGap is the widest gap between two damaged spans of a row pair that
// is converted rather than skipped: a conversion call costs more than a few
// pixels, and converting unchanged pixels is exact.
const damageGap = 16

func newDamage(h int) *damage { return &damage{pairs: make([][]span, h/2)} }

// reset forgets the last frame's damage, keeping the memory.
func (d *damage) reset() {
	for _, p := range d.used {
		d.pairs[p] = d.pairs[p][:0]
	}
	d.used = d.used[:0]
}

// rect records the pixels [x0, x1) × [y0, y1), inside the frame.
func (d *damage) rect(x0, y0, x1, y1 int) {
	if d == nil || x0 >= x1 || y0 >= y1 {
		return
	}
	sp := span{x0 &^ 1, (x1 + 1) &^ 1}
	for p := y0 / 2; p < (y1+1)/2; p++ {
		d.add(p, sp)
	}
}

// row records the pixels [x0, x1) of row y, inside the frame.
func (d *damage) row(y, x0, x1 int) {
	if d == nil || x0 >= x1 {
		return
	}
	d.add(y/2, span{x0 &^ 1, (x1 + 1) &^ 1})
}

func (d *damage) add(p int, sp span) {
	ps := d.pairs[p]
	if len(ps) == 0 {
		d.used = append(d.used, p)
	} else if last := &ps[len(ps)-1]; sp.lo <= last.hi+damageGap && sp.hi+damageGap >= last.lo {
		// Mostly the other row of the same primitive: grow in place.
		last.lo, last.hi = min(last.lo, sp.lo), max(last.hi, sp.hi)
		return
	}
	d.pairs[p] = append(ps, sp)
}

// spans appends to out the damage of row pair p within columns [lo, hi),
// sorted, with spans closer than damageGap merged.
func (d *damage) spans(out []span, p, lo, hi int) []span {
	start := len(out)
	for _, sp := range d.pairs[p] {
		sp.lo, sp.hi = max(sp.lo, lo), min(sp.hi, hi)
		if sp.lo >= sp.hi {
			continue
		}
		// Insertion sort: primitives mostly draw left to right.
		i := len(out)
		out = append(out, sp)
		for i > start && out[i-1].lo > sp.lo {
			out[i] = out[i-1]
			i--
		}
		out[i] = sp
	}
	merged := out[:start]
	for _, sp := range out[start:] {
		if k := len(merged) - 1; k >= start && sp.lo <= merged[k].hi+damageGap {
			merged[k].hi = max(merged[k].hi, sp.hi)
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

// vectorWidth widens run to a whole number of vector steps (yuv.SIMDBlocks
// blocks) where the rectangle allows, so no pixel of it is left to the Go
// loop. The pixels it adds are the static base in the work frame (or a
// neighbour run's, converted twice), so their YUV is what the buffer must
// hold anyway; it never reaches into the occluder's core, whose pixels the
// work frame does not have.
func vectorWidth(run span, r image.Rectangle, core span) span {
	const step = 2 * yuv.SIMDBlocks
	if rem := (run.hi - run.lo) % step; rem != 0 {
		limit := r.Max.X
		if core.lo < core.hi && run.hi <= core.lo {
			limit = core.lo
		}
		if hi := run.hi + step - rem; hi <= limit {
			run.hi = hi
		}
	}
	return run
}
