package renderer

import (
	"image"

	"github.com/backbeat/backbeat/services/gpu-renderer/internal/yuv"
)

// Occluders. When a keyed layer (the cover) is drawn last in a dirty
// rectangle shared with other per-frame layers (halo's rings and bars
// around it), its opaque core hides whatever is drawn below: the core's YUV
// depends on the key alone. It is converted once per key and copied after;
// only the rest of the rectangle is compared and converted per frame.

// occluder is a keyed layer that can say where it is opaque.
type occluder interface {
	keyedDrawer
	// opaque returns, per row pair of r (even-aligned), the even-aligned
	// columns where the layer drawn with key k covers both rows with fully
	// opaque pixels; empty spans where it does not.
	opaque(k int, r image.Rectangle) []span
	// drawAround draws frame n except the columns cores[p] of each row
	// pair p of r: what is there comes from the core's cache.
	drawAround(dst *image.RGBA, dmg *damage, n int, r image.Rectangle, cores []span)
}

// occlusion is a dirty rectangle's topmost occluder and its per-key cores.
type occlusion struct {
	top   occluder
	r     image.Rectangle // the dirty rectangle
	cores [][]span        // by key, by row pair
	cache [2][]keyCache   // by bit depth, by key: the cores' YUV, packed
}

// draw draws the occluder for frame n: around the core when the core's YUV
// for n's key is cached (nothing reads the core's pixels then), else whole,
// so that core can convert it.
func (oc *occlusion) draw(dst *image.RGBA, dmg *damage, n int, hdr bool) {
	k, hd := oc.top.key(n), 0
	if hdr {
		hd = 1
	}
	if oc.cache[hd][k].ready.Load() {
		oc.top.drawAround(dst, dmg, n, oc.r, oc.cores[k])
		return
	}
	oc.top.draw(dst, dmg, n)
}

// setOccluder records layer j as the occluder of dirty rectangle i when it
// is an occluder and the last per-frame layer drawn there.
func (s *Scene) setOccluder(i int, layers []int) {
	if len(layers) < 2 {
		return
	}
	topIdx := layers[len(layers)-1]
	top, ok := s.layers[topIdx].d.(occluder)
	if !ok {
		return
	}
	d := &s.dirty[i]
	oc := &occlusion{top: top, cores: make([][]span, top.keys())}
	for k := range oc.cores {
		oc.cores[k] = top.opaque(k, d.r)
	}
	for hd := range oc.cache {
		oc.cache[hd] = make([]keyCache, top.keys())
	}
	d.occ = oc
	s.layers[topIdx].occ = oc
	oc.r = d.r
}

// core returns the opaque spans of frame n's key and makes sure their YUV
// is cached, converting them from work (which holds frame n) into out the
// first time a key is seen.
func (oc *occlusion) core(out []byte, work *image.RGBA, w, h int, r image.Rectangle, n int, hdr bool) (spans []span, data []byte) {
	k, hd := oc.top.key(n), 0
	if hdr {
		hd = 1
	}
	spans = oc.cores[k]
	kc := &oc.cache[hd][k]
	kc.once.Do(func() {
		for p, sp := range spans {
			if sp.lo < sp.hi {
				convertSpan(out, work, sp, r.Min.Y+2*p, hdr)
			}
		}
		kc.data = packSpans(nil, out, w, h, r, spans, hdr, false)
		kc.ready.Store(true)
	})
	return spans, kc.data
}

// convertSpan converts columns sp of the row pair at y.
func convertSpan(out []byte, work *image.RGBA, sp span, y int, hdr bool) {
	rr := image.Rect(sp.lo, y, sp.hi, y+2)
	if hdr {
		yuv.ToYUV420P10Rect(out, work, rr)
	} else {
		yuv.ToYUV420Rect(out, work, rr)
	}
}

// packSpans copies the YUV of spans (one per row pair of r) of a w×h frame
// to a packed slice (toFrame false; packed may be nil and is returned) or
// from it back into frame (toFrame true).
func packSpans(packed, frame []byte, w, h int, r image.Rectangle, spans []span, hdr, toFrame bool) []byte {
	bs := 1
	if hdr {
		bs = 2
	}
	cw, ch := w/2, h/2
	at := 0
	move := func(off, n int) {
		if toFrame {
			copy(frame[off:off+n], packed[at:at+n])
		} else {
			packed = append(packed, frame[off:off+n]...)
		}
		at += n
	}
	for p, sp := range spans {
		if sp.lo >= sp.hi {
			continue
		}
		y := r.Min.Y + 2*p
		move(bs*(y*w+sp.lo), bs*(sp.hi-sp.lo))
		move(bs*((y+1)*w+sp.lo), bs*(sp.hi-sp.lo))
		for _, plane := range []int{w * h, w*h + cw*ch} {
			move(bs*(plane+(y/2)*cw+sp.lo/2), bs*(sp.hi-sp.lo)/2)
		}
	}
	return packed
}

// opaque implements occluder: the cover at level k is placed centred in its
// box and clipped to it; its rounded corners are not opaque.
func (c *cover) drawAround(dst *image.RGBA, dmg *damage, n int, r image.Rectangle, cores []span) {
	k := c.key(n)
	img := c.levels[k]
	ox := c.box.Min.X + c.box.Dx()/2 - img.Rect.Dx()/2
	oy := c.box.Min.Y + c.box.Dy()/2 - img.Rect.Dy()/2
	at := image.Rectangle{Min: image.Pt(ox, oy), Max: image.Pt(ox+img.Rect.Dx(), oy+img.Rect.Dy())}
	clip := at.Intersect(c.box).Intersect(dst.Rect)
	for y := clip.Min.Y; y < clip.Max.Y; y++ {
		// Transparent pixels leave dst as it is: only the visible part
		// of the row is blended.
		vis := c.visible[k][y-oy]
		xa, xb := max(clip.Min.X, ox+vis.lo), min(clip.Max.X, ox+vis.hi)
		core := span{}
		if p := (y - r.Min.Y) / 2; y >= r.Min.Y && p < len(cores) {
			core = cores[p]
		}
		if core.lo >= core.hi {
			blendOverRow(dst, dmg, img, ox, oy, y, xa, xb)
			continue
		}
		blendOverRow(dst, dmg, img, ox, oy, y, xa, min(xb, core.lo))
		blendOverRow(dst, dmg, img, ox, oy, y, max(xa, core.hi), xb)
	}
}

func (c *cover) opaque(k int, r image.Rectangle) []span {
	img := c.levels[k]
	ox := c.box.Min.X + c.box.Dx()/2 - img.Rect.Dx()/2
	oy := c.box.Min.Y + c.box.Dy()/2 - img.Rect.Dy()/2
	row := func(y int) span {
		if y < c.box.Min.Y || y >= c.box.Max.Y || y-oy < 0 || y-oy >= img.Rect.Dy() {
			return span{}
		}
		pix := img.Pix[(y-oy)*img.Stride : (y-oy)*img.Stride+4*img.Rect.Dx()]
		a, b := -1, -1
		for x := 0; x < img.Rect.Dx(); x++ {
			if pix[4*x+3] == 255 {
				if a < 0 {
					a = x
				}
				b = x + 1
			}
		}
		if a < 0 {
			return span{}
		}
		for x := a; x < b; x++ {
			if pix[4*x+3] != 255 {
				return span{} // holes: not worth tracking
			}
		}
		return span{max(ox+a, c.box.Min.X, r.Min.X), min(ox+b, c.box.Max.X, r.Max.X)}
	}
	out := make([]span, r.Dy()/2)
	for p := range out {
		y := r.Min.Y + 2*p
		s0, s1 := row(y), row(y+1)
		lo, hi := (max(s0.lo, s1.lo)+1)&^1, min(s0.hi, s1.hi)&^1
		if s0.lo < s0.hi && s1.lo < s1.hi && lo < hi {
			out[p] = span{lo, hi}
		}
	}
	return out
}
