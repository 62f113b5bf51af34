// Package yuv converts composed RGBA frames to planar YUV 4:2:0: 8-bit BT.709
// limited range (an AVX2 kernel on amd64, with a pure-Go twin that computes
// the same bytes and is all that builds with -tags purego or elsewhere) and
// 10-bit BT.2020 PQ for HDR. The conversion runs in Go, inside the parallel
// frame workers, so that ffmpeg receives frames already in the encoder's
// pixel format and spends its single input thread on encoding only.
package yuv

import (
	"encoding/binary"
	"image"
	"math"
)

// FrameSize is the byte size of one planar 4:2:0 frame.
func FrameSize(w, h int, hdr bool) int {
	n := w*h + 2*(w/2)*(h/2)
	if hdr {
		return 2 * n
	}
	return n
}

// BT.709 limited-range coefficients in 1.15 fixed point, for 8-bit R'G'B':
// 15 bits so that they fit the signed 16-bit lanes of the AVX2 path
// (yuv_amd64.s), which computes exactly what the Go loop below does.
var bt709 = func() (c struct{ yr, yg, yb, ur, ug, ub, vr, vg, vb int32 }) {
	const kr, kb = 0.2126, 0.0722
	const kg = 1 - kr - kb
	f := func(v float64) int32 { return int32(math.Round(v * 32768)) }
	ys, cs := 219.0/255, 224.0/255
	c.yr, c.yg, c.yb = f(ys*kr), f(ys*kg), f(ys*kb)
	c.ur, c.ug, c.ub = f(-cs*kr/(2*(1-kb))), f(-cs*kg/(2*(1-kb))), f(cs*0.5)
	c.vr, c.vg, c.vb = f(cs*0.5), f(-cs*kg/(2*(1-kr))), f(-cs*kb/(2*(1-kr)))
	return c
}()

// Rounding terms with the offsets folded in: Y = (…+yRound)>>15 is the
// rounded luma plus 16; chroma sums four pixels, so it shifts two more bits
// and its offset is 128.
const (
	yRound = 1<<14 + 16<<15
	cRound = 1<<16 + 128<<17
)

// ToYUV420 converts src (opaque, even size, origin 0,0) to 8-bit BT.709
// limited-range yuv420p in dst. Chroma is the mean of each 2×2 block.
func ToYUV420(dst []byte, src *image.RGBA) { ToYUV420Rect(dst, src, src.Rect) }

// ToYUV420Rect converts only the rectangle r (even coordinates) of src into
// the planes of a whole frame in dst; the rest of dst is left alone.
func ToYUV420Rect(dst []byte, src *image.RGBA, r image.Rectangle) {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	cw := w / 2
	yp := dst[:w*h]
	up := dst[w*h : w*h+cw*(h/2)]
	vp := dst[w*h+cw*(h/2) : w*h+2*cw*(h/2)]
	x0, x1 := r.Min.X/2, r.Max.X/2
	if x1 <= x0 {
		return
	}
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		// Rows sliced to exactly the span converted, so the loop below
		// walks them in step without bounds checks.
		r0 := src.Pix[y*src.Stride+8*x0 : y*src.Stride+8*x1]
		r1 := src.Pix[(y+1)*src.Stride+8*x0 : (y+1)*src.Stride+8*x1]
		y0 := yp[y*w+2*x0 : y*w+2*x1]
		y1 := yp[(y+1)*w+2*x0 : (y+1)*w+2*x1]
		uo := up[(y/2)*cw+x0 : (y/2)*cw+x1]
		vo := vp[(y/2)*cw+x0 : (y/2)*cw+x1]
		if n := len(uo) / SIMDBlocks; useSIMD && n > 0 {
			// Whole groups of blocks in vector registers, the rest below.
			yuvRowPairSIMD(r0, r1, y0, y1, uo, vo, n)
			k := n * SIMDBlocks
			r0, r1, y0, y1, uo, vo = r0[8*k:], r1[8*k:], y0[2*k:], y1[2*k:], uo[k:], vo[k:]
		}
		yuvRowPairGo(r0, r1, y0, y1, uo, vo)
	}
}

// yuvRowPairGo converts the 2×2 blocks of two RGBA rows r0, r1 (8 bytes a
// block) to luma y0, y1 (2 bytes a block) and chroma u, v (1 byte a block).
func yuvRowPairGo(r0, r1, y0, y1, uo, vo []byte) {
	c := &bt709
	for len(r0) >= 8 && len(r1) >= 8 && len(y0) >= 2 && len(y1) >= 2 && len(uo) >= 1 && len(vo) >= 1 {
		a, b := r0[:8:8], r1[:8:8]
		ra, ga, ba := int32(a[0]), int32(a[1]), int32(a[2])
		rb, gb, bb := int32(a[4]), int32(a[5]), int32(a[6])
		rc, gc, bc := int32(b[0]), int32(b[1]), int32(b[2])
		rd, gd, bd := int32(b[4]), int32(b[5]), int32(b[6])
		y0[0] = uint8((c.yr*ra + c.yg*ga + c.yb*ba + yRound) >> 15)
		y0[1] = uint8((c.yr*rb + c.yg*gb + c.yb*bb + yRound) >> 15)
		y1[0] = uint8((c.yr*rc + c.yg*gc + c.yb*bc + yRound) >> 15)
		y1[1] = uint8((c.yr*rd + c.yg*gd + c.yb*bd + yRound) >> 15)
		sr, sg, sb := ra+rb+rc+rd, ga+gb+gc+gd, ba+bb+bc+bd
		uo[0] = uint8((c.ur*sr + c.ug*sg + c.ub*sb + cRound) >> 17)
		vo[0] = uint8((c.vr*sr + c.vg*sg + c.vb*sb + cRound) >> 17)
		r0, r1, y0, y1, uo, vo = r0[8:], r1[8:], y0[2:], y1[2:], uo[1:], vo[1:]
	}
}

// HDR: the SDR frame is placed in a PQ (SMPTE ST 2084) BT.2020 container with
// its reference white at 203 cd/m² (ITU-R BT.2408), so it looks as designed
// on HDR displays and the 10-bit stream carries honest colour tags.
const hdrReferenceWhite = 203.0 / 10000

var (
	// srgbToLinear maps an 8-bit sRGB value to linear light 0..1.
	srgbToLinear = func() (t [256]float32) {
		for i := range t {
			v := float64(i) / 255
			if v <= 0.04045 {
				t[i] = float32(v / 12.92)
			} else {
				t[i] = float32(math.Pow((v+0.055)/1.055, 2.4))
			}
		}
		return t
	}()
	// pqLUT maps linear SDR light (0..1 quantised to 16 bits) to the PQ signal 0..1.
	pqLUT = func() []float32 {
		const m1, m2 = 2610.0 / 16384, 2523.0 / 4096 * 128
		const c1, c2, c3 = 3424.0 / 4096, 2413.0 / 4096 * 32, 2392.0 / 4096 * 32
		t := make([]float32, 65536)
		for i := range t {
			l := float64(i) / 65535 * hdrReferenceWhite
			p := math.Pow(l, m1)
			t[i] = float32(math.Pow((c1+c2*p)/(1+c3*p), m2))
		}
		return t
	}()
)

// pqFromSRGB converts one 8-bit sRGB pixel to PQ-encoded BT.2020 R'G'B'.
func pqFromSRGB(r8, g8, b8 byte) (float32, float32, float32) {
	r, g, b := srgbToLinear[r8], srgbToLinear[g8], srgbToLinear[b8]
	// BT.709 → BT.2020 primaries (ITU-R BT.2087), linear light.
	r2 := 0.6274*r + 0.3293*g + 0.0433*b
	g2 := 0.0691*r + 0.9195*g + 0.0114*b
	b2 := 0.0164*r + 0.0880*g + 0.8956*b
	q := func(v float32) float32 { return pqLUT[min(int(v*65535+0.5), 65535)] }
	return q(r2), q(g2), q(b2)
}

// ToYUV420P10 converts src to 10-bit BT.2020 non-constant-luminance PQ
// limited-range yuv420p10le (little-endian 16-bit words) in dst.
func ToYUV420P10(dst []byte, src *image.RGBA) { ToYUV420P10Rect(dst, src, src.Rect) }

// ToYUV420P10Rect converts only the rectangle r (even coordinates).
func ToYUV420P10Rect(dst []byte, src *image.RGBA, r image.Rectangle) {
	const kr, kb = 0.2627, 0.0593
	const kg = 1 - kr - kb
	w, h := src.Rect.Dx(), src.Rect.Dy()
	cw, ch := w/2, h/2
	yOff, uOff, vOff := 0, 2*w*h, 2*w*h+2*cw*ch
	put := func(off int, v float32, lo, hi float32) {
		v = min(max(v, lo), hi)
		binary.LittleEndian.PutUint16(dst[off:], uint16(v+0.5))
	}
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X / 2; x < r.Max.X/2; x++ {
			var sr, sg, sb float32
			for k := 0; k < 4; k++ {
				px, py := 2*x+k%2, y+k/2
				i := py*src.Stride + px*4
				r, g, b := pqFromSRGB(src.Pix[i], src.Pix[i+1], src.Pix[i+2])
				sr, sg, sb = sr+r, sg+g, sb+b
				lum := kr*r + kg*g + kb*b
				put(yOff+2*(py*w+px), 64+876*lum, 64, 940)
			}
			sr, sg, sb = sr/4, sg/4, sb/4
			lum := kr*sr + kg*sg + kb*sb
			ci := 2 * ((y/2)*cw + x)
			put(uOff+ci, 512+896*(sb-lum)/(2*(1-kb)), 64, 960)
			put(vOff+ci, 512+896*(sr-lum)/(2*(1-kr)), 64, 960)
		}
	}
}
