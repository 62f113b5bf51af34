package renderer

import (
	"image"
	"image/color"
	"math"

	xdraw "golang.org/x/image/draw"
)

// Drawing primitives on *image.RGBA with origin (0,0). They write Pix directly
// because the per-frame parts (bars, cover, progress) run for every frame of
// every render and the generic image/draw paths are several times slower.

// fillGradient paints a vertical gradient from top to bottom.
func fillGradient(dst *image.RGBA, top, bottom color.RGBA) {
	h := dst.Rect.Dy()
	w := dst.Rect.Dx()
	for y := 0; y < h; y++ {
		t := 0.0
		if h > 1 {
			t = float64(y) / float64(h-1)
		}
		c := lerpRGBA(top, bottom, t)
		row := dst.Pix[y*dst.Stride : y*dst.Stride+w*4]
		for x := 0; x < w*4; x += 4 {
			row[x], row[x+1], row[x+2], row[x+3] = c.R, c.G, c.B, 255
		}
	}
}

func lerpRGBA(a, b color.RGBA, t float64) color.RGBA {
	l := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + (float64(y)-float64(x))*t)) }
	return color.RGBA{R: l(a.R, b.R), G: l(a.G, b.G), B: l(a.B, b.B), A: 255}
}

// coverCrop returns the centred part of src with the aspect ratio w:h, so that
// scaling it to w×h covers the frame without distortion.
func coverCrop(src image.Rectangle, w, h int) image.Rectangle {
	sw, sh := src.Dx(), src.Dy()
	if sw*h > sh*w { // source wider than target: crop the sides
		cw := sh * w / h
		x0 := src.Min.X + (sw-cw)/2
		return image.Rect(x0, src.Min.Y, x0+cw, src.Max.Y)
	}
	ch := sw * h / w
	y0 := src.Min.Y + (sh-ch)/2
	return image.Rect(src.Min.X, y0, src.Max.X, y0+ch)
}

// backdrop turns the cover into a w×h background: crop to cover, shrink by
// bg.Downscale, box-blur, scale back up (bilinear smooths the blocks) and
// darken. Done once per render.
func backdrop(cover image.Image, w, h int, bg Background) *image.RGBA {
	sw := max(1, w/bg.Downscale)
	sh := max(1, h/bg.Downscale)
	small := image.NewRGBA(image.Rect(0, 0, sw, sh))
	xdraw.BiLinear.Scale(small, small.Rect, cover, coverCrop(cover.Bounds(), w, h), xdraw.Src, nil)
	boxBlur(small, bg.BlurRadius)
	boxBlur(small, bg.BlurRadius)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	xdraw.BiLinear.Scale(out, out.Rect, small, small.Rect, xdraw.Src, nil)
	mul := uint32(math.Round((1 - bg.Darken) * 256))
	for i := 0; i < len(out.Pix); i += 4 {
		out.Pix[i] = uint8(uint32(out.Pix[i]) * mul >> 8)
		out.Pix[i+1] = uint8(uint32(out.Pix[i+1]) * mul >> 8)
		out.Pix[i+2] = uint8(uint32(out.Pix[i+2]) * mul >> 8)
		out.Pix[i+3] = 255
	}
	return out
}

// boxBlur blurs img in place with a separable box of radius r (edges clamped).
func boxBlur(img *image.RGBA, r int) {
	if r <= 0 {
		return
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	tmp := make([]uint8, len(img.Pix))
	pass := func(src, dst []uint8, n, m int, idx func(i, j int) int) {
		for j := 0; j < m; j++ {
			for c := 0; c < 4; c++ {
				for i := 0; i < n; i++ {
					sum, cnt := 0, 0
					for k := i - r; k <= i+r; k++ {
						kk := min(max(k, 0), n-1)
						sum += int(src[idx(kk, j)+c])
						cnt++
					}
					dst[idx(i, j)+c] = uint8(sum / cnt)
				}
			}
		}
	}
	pass(img.Pix, tmp, w, h, func(x, y int) int { return y*img.Stride + x*4 })
	pass(tmp, img.Pix, h, w, func(y, x int) int { return y*img.Stride + x*4 })
}

// roundCorners multiplies a premultiplied image by a rounded-rectangle mask
// with anti-aliased edges.
func roundCorners(img *image.RGBA, radius float64) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			cov := roundRectCoverage(float64(x)+0.5, float64(y)+0.5, 0, 0, float64(w), float64(h), radius)
			if cov >= 1 {
				continue
			}
			a := uint32(cov * 256)
			i := y*img.Stride + x*4
			for c := 0; c < 4; c++ {
				img.Pix[i+c] = uint8(uint32(img.Pix[i+c]) * a >> 8)
			}
		}
	}
}

// roundRectCoverage is the approximate area of the pixel centred at (px,py)
// inside the rounded rectangle (x0,y0)-(x1,y1) of corner radius r, from the
// signed distance to its edge.
func roundRectCoverage(px, py, x0, y0, x1, y1, r float64) float64 {
	cx, cy := (x0+x1)/2, (y0+y1)/2
	hx, hy := (x1-x0)/2, (y1-y0)/2
	r = math.Min(r, math.Min(hx, hy))
	qx := math.Abs(px-cx) - (hx - r)
	qy := math.Abs(py-cy) - (hy - r)
	var d float64
	if qx > 0 && qy > 0 {
		d = math.Hypot(qx, qy) - r
	} else {
		d = math.Max(qx, qy) - r
	}
	return math.Min(1, math.Max(0, 0.5-d))
}

// fillRoundRect blends a rounded rectangle (float edges, anti-aliased) whose
// colour per row comes from rowColor (indexed by absolute y), over dst.
func fillRoundRect(dst *image.RGBA, x0, y0, x1, y1, r float64, rowColor func(y int) color.RGBA) {
	if x1-x0 <= 0 || y1-y0 <= 0 {
		return
	}
	ix0, iy0 := max(int(math.Floor(x0)), 0), max(int(math.Floor(y0)), 0)
	ix1, iy1 := min(int(math.Ceil(x1)), dst.Rect.Dx()), min(int(math.Ceil(y1)), dst.Rect.Dy())
	r = math.Min(r, math.Min(x1-x0, y1-y0)/2)
	// Rows whose whole pixel lies between the caps share one horizontal
	// coverage profile: compute it once (bars are mostly such rows).
	straight := make([]uint32, ix1-max(ix0, 0))
	midY := (y0 + y1) / 2
	for x := ix0; x < ix1; x++ {
		straight[x-ix0] = uint32(roundRectCoverage(float64(x)+0.5, midY, x0, y0, x1, y1, r)*255 + 0.5)
	}
	for y := iy0; y < iy1; y++ {
		c := rowColor(y)
		py := float64(y) + 0.5
		if py-0.5 >= y0+r && py+0.5 <= y1-r {
			for x := ix0; x < ix1; x++ {
				if a := straight[x-ix0]; a > 0 {
					blendPixel(dst, x, y, c, a)
				}
			}
			continue
		}
		for x := ix0; x < ix1; x++ {
			cov := roundRectCoverage(float64(x)+0.5, py, x0, y0, x1, y1, r)
			if cov <= 0 {
				continue
			}
			blendPixel(dst, x, y, c, uint32(cov*255+0.5))
		}
	}
}

// blendPixel mixes an opaque colour into dst with alpha a in 0..255.
func blendPixel(dst *image.RGBA, x, y int, c color.RGBA, a uint32) {
	i := y*dst.Stride + x*4
	p := dst.Pix[i : i+4 : i+4]
	if a >= 255 {
		p[0], p[1], p[2], p[3] = c.R, c.G, c.B, 255
		return
	}
	na := 255 - a
	p[0] = uint8((uint32(c.R)*a + uint32(p[0])*na + 127) / 255)
	p[1] = uint8((uint32(c.G)*a + uint32(p[1])*na + 127) / 255)
	p[2] = uint8((uint32(c.B)*a + uint32(p[2])*na + 127) / 255)
	p[3] = 255
}

// blendOver composites a premultiplied src over dst with its top-left at (ox,oy).
func blendOver(dst, src *image.RGBA, ox, oy int) {
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	for y := 0; y < sh; y++ {
		dy := oy + y
		if dy < 0 || dy >= dst.Rect.Dy() {
			continue
		}
		for x := 0; x < sw; x++ {
			dx := ox + x
			if dx < 0 || dx >= dst.Rect.Dx() {
				continue
			}
			si := y*src.Stride + x*4
			a := uint32(src.Pix[si+3])
			if a == 0 {
				continue
			}
			di := dy*dst.Stride + dx*4
			if a == 255 {
				copy(dst.Pix[di:di+4], src.Pix[si:si+4])
				continue
			}
			na := 255 - a
			for c := 0; c < 3; c++ {
				dst.Pix[di+c] = uint8(uint32(src.Pix[si+c]) + (uint32(dst.Pix[di+c])*na+127)/255)
			}
			dst.Pix[di+3] = 255
		}
	}
}

// scaleImage returns src scaled to w×h with a good kernel (used once per render).
func scaleImage(src image.Image, w, h int) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	xdraw.CatmullRom.Scale(out, out.Rect, src, coverCrop(src.Bounds(), w, h), xdraw.Src, nil)
	return out
}
