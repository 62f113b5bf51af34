package renderer

import (
	"bytes"
	"encoding/binary"
	"image"
	"sync"
)

// Incremental YUV composition. A dirty rectangle is where per-frame layers
// may draw, but in most frames they draw in a part of it only (short bars,
// a thin waveform). The composer therefore compares each composed row pair
// with the static base and converts only the span that differs; the rest of
// the output keeps (or gets back) the static base's YUV. Comparing is a
// memcmp, many times cheaper than converting, and exact, so the output is
// byte for byte what converting the whole rectangle gives.
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
	return &yuvFrame{b: append([]byte(nil), s.staticYUV(hdr)...), moved: s.rowSpans()}
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
	moved [][][]span
	runs  []span // scratch: this row pair's differing runs
	gaps  []span // scratch: what the buffer must get back from the base
	right []span // scratch: runs right of an occluder's core
	conv  []span // scratch: runs to convert
}

// newComposer returns a worker's compositor; it is not safe for concurrent
// use, but any number of composers may share the scene.
func (s *Scene) newComposer() *composer {
	c := &composer{s: s, work: s.NewFrame(), moved: s.rowSpans()}
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
func (c *composer) compose(out *yuvFrame, n int, hdr bool) {
	s, work := c.s, c.work
	st := s.static
	for i, d := range s.dirty {
		if d.keyed != nil {
			continue
		}
		for p, ms := range c.moved[i] {
			for _, m := range ms {
				for y := d.r.Min.Y + 2*p; y < d.r.Min.Y+2*p+2; y++ {
					o, e := st.PixOffset(m.lo, y), st.PixOffset(m.hi, y)
					copy(work.Pix[o:e], st.Pix[o:e])
				}
			}
		}
	}
	for _, l := range s.layers {
		if !l.keyed {
			l.d.draw(work, n)
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
			var core span
			if cores != nil {
				core = cores[p]
			}
			if core.lo < core.hi {
				// Compared and converted: the columns either side of the
				// core; the core itself comes from the cache below.
				c.runs = diffRuns(c.runs[:0], work, st, r.Min.X, core.lo, y)
				c.right = diffRuns(c.right[:0], work, st, core.hi, r.Max.X, y)
				c.conv = append(append(c.conv[:0], c.runs...), c.right...)
				c.runs = append(append(c.runs, core), c.right...)
			} else {
				c.runs = diffRuns(c.runs[:0], work, st, r.Min.X, r.Max.X, y)
				c.conv = append(c.conv[:0], c.runs...)
			}
			c.moved[i][p] = append(c.moved[i][p][:0], c.runs...)
			// Back to the base where this buffer held an older frame, then
			// the new frame's runs over it.
			c.gaps = subtractSpans(c.gaps[:0], out.moved[i][p], c.runs)
			for _, m := range c.gaps {
				copyRowPair(out.b, base, s.w, s.h, m.lo, m.hi, y, hdr)
			}
			out.moved[i][p] = append(out.moved[i][p][:0], c.runs...)
			for _, run := range c.conv {
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
		d.keyed.draw(c.work, n)
		// Converted straight into out, which this frame needs anyway.
		if hdr {
			toYUV420P10Rect(out, c.work, r)
		} else {
			toYUV420Rect(out, c.work, r)
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

// diffChunk is the number of bytes diffRuns compares at once (16 pixels):
// long enough for memcmp to be fast, short enough to skip the holes between
// bars and inside rings.
const diffChunk = 64

// diffRuns appends to runs the column ranges of rows y and y+1 between x0
// and x1 (even) where a differs from b, in chunks of diffChunk/4 pixels;
// runs separated by a single equal chunk are merged, since a conversion
// call costs more than a chunk's pixels. Every bound is even.
func diffRuns(runs []span, a, b *image.RGBA, x0, x1, y int) []span {
	o0, o1 := a.PixOffset(x0, y), a.PixOffset(x0, y+1)
	n := 4 * (x1 - x0)
	a0, b0 := a.Pix[o0:o0+n], b.Pix[o0:o0+n]
	a1, b1 := a.Pix[o1:o1+n], b.Pix[o1:o1+n]
	if bytes.Equal(a0, b0) && bytes.Equal(a1, b1) {
		return runs
	}
	for lo := 0; lo < n; lo += diffChunk {
		hi := min(lo+diffChunk, n)
		if hi-lo == diffChunk {
			if equal64(a0[lo:hi], b0[lo:hi]) && equal64(a1[lo:hi], b1[lo:hi]) {
				continue
			}
		} else if bytes.Equal(a0[lo:hi], b0[lo:hi]) && bytes.Equal(a1[lo:hi], b1[lo:hi]) {
			continue
		}
		xa, xb := x0+lo/4, x0+hi/4
		if k := len(runs) - 1; k >= 0 && xa-runs[k].hi <= diffChunk/4 {
			runs[k].hi = xb
			continue
		}
		runs = append(runs, span{xa, xb})
	}
	return runs
}

// equal64 reports whether the first 64 bytes of a and b are equal: eight
// word compares inline, cheaper than a call to bytes.Equal for so few.
func equal64(a, b []byte) bool {
	a, b = a[:64:64], b[:64:64]
	le := binary.LittleEndian
	x := (le.Uint64(a[0:8]) ^ le.Uint64(b[0:8])) | (le.Uint64(a[8:16]) ^ le.Uint64(b[8:16])) |
		(le.Uint64(a[16:24]) ^ le.Uint64(b[16:24])) | (le.Uint64(a[24:32]) ^ le.Uint64(b[24:32])) |
		(le.Uint64(a[32:40]) ^ le.Uint64(b[32:40])) | (le.Uint64(a[40:48]) ^ le.Uint64(b[40:48])) |
		(le.Uint64(a[48:56]) ^ le.Uint64(b[48:56])) | (le.Uint64(a[56:64]) ^ le.Uint64(b[56:64]))
	return x == 0
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
