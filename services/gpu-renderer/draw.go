package renderer

import (
	"encoding/binary"
	"image"
	"image/color"
	"math"
	"unsafe"

	xdraw "golang.org/x/image/draw"
)

// Drawing primitives on *image.RGBA. They write Pix directly and take a clip
// rectangle, because the per-frame parts run for every frame of every render
// (generic image/draw paths are several times slower), and because a layer
// must never touch a pixel outside its box: the renderer converts only the
// boxes of per-frame layers to YUV.

// fillBackground paints a gradient (or one colour when stops has one entry)
// over dst: linear at angle degrees (0 runs top to bottom) or radial from
// the centre. Done once per render.
func fillBackground(dst *image.RGBA, frame image.Rectangle, stops []color.NRGBA, angle float64, radial bool) {
	w, h := float64(frame.Dx()), float64(frame.Dy())
	cx, cy := w/2, h/2
	sin, cos := math.Sincos(angle * math.Pi / 180)
	extent := math.Abs(w*sin) + math.Abs(h*cos)
	half := math.Hypot(cx, cy)
	// A table of the gradient keeps the per-pixel work to a lookup.
	const steps = 1024
	lut := make([]color.NRGBA, steps+1)
	for i := range lut {
		lut[i] = gradientAt(stops, float64(i)/steps)
	}
	put := func(x, y, k int) {
		if c := lut[k]; c.A == 255 {
			o := dst.PixOffset(x, y)
			binary.LittleEndian.PutUint32(dst.Pix[o:o+4], rgbaWord(c))
		} else {
			blendPixel(dst, dst.PixOffset(x, y), c, 255)
		}
	}
	b := dst.Rect.Intersect(frame)
	if radial && b == frame && frame.Dx()%2 == 0 && frame.Dy()%2 == 0 {
		// Symmetric about both centre lines, exactly (the offsets are
		// halves): one quadrant's distances serve all four.
		x0, y0, mx, my := b.Min.X, b.Min.Y, b.Min.X+b.Max.X-1, b.Min.Y+b.Max.Y-1
		for y := y0; y < y0+frame.Dy()/2; y++ {
			for x := x0; x < x0+frame.Dx()/2; x++ {
				px, py := float64(x-x0)+0.5-cx, float64(y-y0)+0.5-cy
				k := int(clamp01(math.Hypot(px, py)/half)*steps + 0.5)
				put(x, y, k)
				put(mx-(x-x0), y, k)
				put(x, my-(y-y0), k)
				put(mx-(x-x0), my-(y-y0), k)
			}
		}
		return
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			px, py := float64(x-frame.Min.X)+0.5-cx, float64(y-frame.Min.Y)+0.5-cy
			var t float64
			if radial {
				t = math.Hypot(px, py) / half
			} else {
				t = (px*sin+py*cos)/extent + 0.5
			}
			put(x, y, int(clamp01(t)*steps+0.5))
		}
	}
}

// gradientAt interpolates evenly spaced stops at t in 0..1.
func gradientAt(stops []color.NRGBA, t float64) color.NRGBA {
	if len(stops) == 1 {
		return stops[0]
	}
	t = clamp01(t) * float64(len(stops)-1)
	i := min(int(t), len(stops)-2)
	return lerpNRGBA(stops[i], stops[i+1], t-float64(i))
}

func lerpNRGBA(a, b color.NRGBA, t float64) color.NRGBA {
	l := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + (float64(y)-float64(x))*t)) }
	return color.NRGBA{R: l(a.R, b.R), G: l(a.G, b.G), B: l(a.B, b.B), A: l(a.A, b.A)}
}

// coverCrop returns the centred part of src with the aspect ratio w:h, so that
// scaling it to w×h covers the target without distortion.
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

// backdrop turns an image into a w×h background: crop to cover, shrink so the
// blur is a small box blur, blur twice (close to a Gaussian), scale back up
// (bilinear smooths the blocks) and darken. Done once per render.
func backdrop(img image.Image, w, h int, blur, darken float64) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	blurPx := blur * float64(min(w, h))
	if blurPx < 1 {
		xdraw.CatmullRom.Scale(out, out.Rect, img, coverCrop(img.Bounds(), w, h), xdraw.Src, nil)
	} else {
		ds := max(1, int(math.Round(blurPx/3)))
		radius := max(1, int(math.Round(blurPx/float64(ds)/2)))
		small := image.NewRGBA(image.Rect(0, 0, max(1, w/ds), max(1, h/ds)))
		xdraw.BiLinear.Scale(small, small.Rect, img, coverCrop(img.Bounds(), w, h), xdraw.Src, nil)
		boxBlur(small, radius)
		boxBlur(small, radius)
		bilinearScale(out, small) // x/image's BiLinear, ten times cheaper
	}
	mul := uint32(math.Round((1 - darken) * 256))
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

// roundCorners multiplies a premultiplied image (origin 0,0) by a
// rounded-rectangle mask with anti-aliased edges; radius w/2 makes a circle.
func roundCorners(img *image.RGBA, radius float64) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	// Only a frame c pixels wide can be partly covered: inside it the edge
	// distance is below -1 and the coverage 1. (The outermost rows and
	// columns sit at -0.5, where rounding may give 0.99999, so they are
	// visited like the corners.)
	c := int(math.Ceil(radius)) + 1
	fw, fh := float64(w), float64(h)
	for y := 0; y < h; y++ {
		// Columns [skipLo, skipHi) are surely covered: between the corner
		// frames in the middle rows; in a corner row, where the arc is
		// more than a pixel and a half away (so coverage is exactly 1).
		skipLo, skipHi := 0, 0
		if y >= c && y < h-c {
			skipLo, skipHi = c, w-c
		} else if qy, m := math.Abs(float64(y)+0.5-fh/2)-(fh/2-radius), radius-1.5; qy > 0 && qy < m {
			half := fw/2 - radius + math.Sqrt(m*m-qy*qy)
			skipLo, skipHi = int(math.Ceil(fw/2-half-0.5))+1, int(math.Floor(fw/2+half-0.5))
		}
		for x := 0; x < w; x++ {
			if x == skipLo && skipHi > skipLo {
				x = skipHi
				if x >= w {
					break
				}
			}
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
	r = min(r, min(hx, hy))
	qx := math.Abs(px-cx) - (hx - r)
	qy := math.Abs(py-cy) - (hy - r)
	var d float64
	if qx > 0 && qy > 0 {
		d = math.Hypot(qx, qy) - r
	} else {
		d = max(qx, qy) - r
	}
	return min(1, max(0, 0.5-d))
}

// fillRoundRect blends a rounded rectangle (float edges, anti-aliased) over
// dst inside clip. Its colour is rows[y] (absolute y) or c when rows is nil.
func fillRoundRect(dst *image.RGBA, dmg *damage, clip image.Rectangle, x0, y0, x1, y1, r float64, c color.NRGBA, rows []color.NRGBA) {
	if x1-x0 <= 0 || y1-y0 <= 0 {
		return
	}
	clip = clip.Intersect(dst.Rect)
	ix0, iy0 := max(int(math.Floor(x0)), clip.Min.X), max(int(math.Floor(y0)), clip.Min.Y)
	ix1, iy1 := min(int(math.Ceil(x1)), clip.Max.X), min(int(math.Ceil(y1)), clip.Max.Y)
	if ix1 <= ix0 || iy1 <= iy0 {
		return
	}
	dmg.rect(ix0, iy0, ix1, iy1)
	r = min(r, min(x1-x0, y1-y0)/2)
	cx, cy := (x0+x1)/2, (y0+y1)/2
	hx, hy := (x1-x0)/2, (y1-y0)/2
	// Rows whose whole pixel lies between the caps share one horizontal
	// coverage profile: compute it once (bars are mostly such rows).
	var buf [64]uint32
	straight := buf[:0]
	if ix1-ix0 > len(buf) {
		straight = make([]uint32, 0, ix1-ix0)
	}
	midY := (y0 + y1) / 2
	for x := ix0; x < ix1; x++ {
		straight = append(straight, uint32(roundRectCoverage(float64(x)+0.5, midY, x0, y0, x1, y1, r)*255+0.5))
	}
	// [sLo, sHi): the columns of full coverage, one run between the edges.
	sLo, sHi := 0, 0
	for k, a := range straight {
		if a >= 255 {
			if sHi == 0 {
				sLo = k
			} else if sHi != k {
				sLo, sHi = 0, 0 // not one run: blend every column
				break
			}
			sHi = k + 1
		}
	}
	for y := iy0; y < iy1; y++ {
		if rows != nil {
			c = rows[y]
		}
		py := float64(y) + 0.5
		i := dst.PixOffset(ix0, y)
		if py-0.5 >= y0+r && py+0.5 <= y1-r {
			// The fully covered run of an opaque colour is a fill of
			// 32-bit words, exactly what blendPixel would write; only the
			// anti-aliased edge columns are blended.
			lo, hi := 0, 0
			if c.A == 255 {
				lo, hi = sLo, sHi
				fillWords(dst.Pix[i+4*lo:i+4*hi], rgbaWord(c))
			}
			for k, a := range straight {
				if a > 0 && (k < lo || k >= hi) {
					blendPixel(dst, i+4*k, c, a)
				}
			}
			continue
		}
		// In a cap row, pixels between the corners all have the coverage
		// of the centre column (the edge distance there is vertical):
		// compute it once, exactly as roundRectCoverage would.
		// roundRectCoverage, inlined with its row terms hoisted (same
		// arithmetic, same results).
		qy := math.Abs(py-cy) - (hy - r)
		flat := qy > 0
		mid := roundRectCoverage(cx, py, x0, y0, x1, y1, r)
		am := uint32(mid*255 + 0.5)
		// [fa, fb): columns within the corner arcs by more than a pixel
		// and a half, whose coverage is exactly 1 (no square root needed).
		fa, fb := 0, 0
		if flat && qy < r-1.5 {
			ext := hx - r + math.Sqrt((r-1.5)*(r-1.5)-qy*qy)
			fa, fb = max(ix0, int(math.Ceil(cx-ext-0.5))), min(ix1, int(math.Floor(cx+ext-0.5))+1)
		}
		for x := ix0; x < ix1; x, i = x+1, i+4 {
			if x == fa && fb > fa {
				fillRun(dst, i, fb-x, c, 255)
				i += 4 * (fb - 1 - x)
				x = fb - 1
				continue
			}
			px := float64(x) + 0.5
			if qx := math.Abs(px-cx) - (hx - r); !flat || qx > 0 {
				d := max(qx, qy) - r
				if qx > 0 && qy > 0 {
					d = math.Hypot(qx, qy) - r
				}
				if cov := min(1, max(0, 0.5-d)); cov > 0 {
					blendPixel(dst, i, c, uint32(cov*255+0.5))
				}
				continue
			}
			// The run between the corners, all at the centre's coverage:
			// a fill when that is full and the colour opaque.
			end := x + 1
			for end < ix1 && !(math.Abs(float64(end)+0.5-cx)-(hx-r) > 0) {
				end++
			}
			fillRun(dst, i, end-x, c, am)
			i += 4 * (end - 1 - x)
			x = end - 1
		}
	}
}

// rgbaWord is c as an opaque RGBA word, as Pix holds it in little-endian
// order: what blendPixel writes at full coverage.
func rgbaWord(c color.NRGBA) uint32 {
	return uint32(c.R) | uint32(c.G)<<8 | uint32(c.B)<<16 | 0xff<<24
}

// fillRun blends colour c at coverage a over the n pixels from Pix offset
// i: one word fill when that is an opaque overwrite, else pixel by pixel.
func fillRun(dst *image.RGBA, i, n int, c color.NRGBA, a uint32) {
	switch {
	case a >= 255 && c.A == 255:
		fillWords(dst.Pix[i:i+4*n], rgbaWord(c))
	case a > 0:
		for j := i; j < i+4*n; j += 4 {
			blendPixel(dst, j, c, a)
		}
	}
}

// fillWords sets every 4-byte pixel of p (a whole number of pixels, at a
// multiple of 4 bytes into an image's Pix) to the RGBA word w.
func fillWords(p []byte, w uint32) {
	if len(p) < 4 {
		return
	}
	// Pix comes from make, 8-byte aligned, and pixels start at multiples
	// of 4: the words are aligned.
	ws := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(p))), len(p)/4)
	for j := range ws {
		ws[j] = w
	}
}

// fillRing blends the ring between radii rIn and rOut around (cx,cy) (a disc
// when rIn <= 0) with opacity alpha (0..1), anti-aliased, inside clip. Only
// the pixels near the ring are visited, row by row.
func fillRing(dst *image.RGBA, dmg *damage, clip image.Rectangle, cx, cy, rIn, rOut float64, c color.NRGBA, alpha float64) {
	if rOut <= 0 || rOut <= rIn || alpha <= 0 {
		return
	}
	clip = clip.Intersect(dst.Rect)
	y0 := max(int(math.Floor(cy-rOut-1)), clip.Min.Y)
	y1 := min(int(math.Ceil(cy+rOut+1)), clip.Max.Y)
	// A pixel whose centre is farther than rOut+0.5 from the centre, or
	// nearer than rIn-0.5, is not covered at all; and any coverage below
	// 0.5/255 rounds to an alpha of 0. So the pixels drawn (and damaged)
	// are those within [rIn-0.5, rOut+0.5], widened by ringSlack against
	// rounding.
	ao := (rOut + 0.5 + ringSlack) * (rOut + 0.5 + ringSlack)
	ai := (rIn - 0.5 - ringSlack) * (rIn - 0.5 - ringSlack)
	// Above 1 an alpha would take coverage past 255, which the blends do
	// not take.
	k := newRingKernel(cx, rIn, rOut, min(1, alpha)*255, c)
	// A ring centred on a pixel edge or centre, clipped symmetrically (the
	// rings of a layer, centred in their box), is mirror-symmetric: column
	// x and column m2-x are at the same distance, exactly, since the
	// offsets are multiples of a half. Each coverage then serves two
	// pixels.
	m2 := int(2*cx) - 1
	if float64(m2+1) != 2*cx || clip.Min.X+clip.Max.X-1 != m2 {
		m2 = -1
	}
	// blend draws the n pixels from column x of the row at Pix offset row,
	// and with mirrors the n ending at column m2-x too: whole vector steps,
	// then the Go loop for the rest.
	blend := func(row, x, n int, mirrors bool) {
		v := 0
		if useSIMD {
			v = n &^ 3
		}
		left := dst.Pix[row+4*x : row+4*(x+n)]
		var vecMir, goMir []byte
		if mirrors {
			// Pixel j's mirror is pixel n-1-j of mir.
			mir := dst.Pix[row+4*(m2-x-n+1) : row+4*(m2-x+1)]
			vecMir, goMir = mir[4*(n-v):], mir[:4*(n-v)]
		}
		ringSpanSIMD(left[:4*v], vecMir, x, v, &k)
		ringSpanGo(left[4*v:], goMir, x+v, n-v, &k)
	}
	span := func(y, xa, xb int) {
		xa, xb = max(xa, clip.Min.X), min(xb, clip.Max.X)
		if xa >= xb {
			return
		}
		dmg.row(y, xa, xb)
		blend(dst.PixOffset(0, y), xa, xb-xa, false)
	}
	mirrored := func(y, xa, xb int) {
		xa, xb = max(xa, clip.Min.X), min(xb, clip.Max.X)
		if xa >= xb {
			return
		}
		dmg.row(y, xa, xb)
		dmg.row(y, m2-xb+1, m2-xa+1)
		row := dst.PixOffset(0, y)
		// The pixels left of their mirrors (2x < m2), each drawn with its
		// mirror, so none is blended twice; then the middle column, its
		// own mirror, when m2 is even.
		blend(row, xa, max(0, min(xb, (m2+1)/2)-xa), true)
		if mid := m2 / 2; m2%2 == 0 && mid >= xa && mid < xb {
			blend(row, mid, 1, false)
		}
	}
	for y := y0; y < y1; y++ {
		dy := float64(y) + 0.5 - cy
		dy2 := dy * dy
		if dy2 > ao {
			continue
		}
		k.dy2 = dy2
		// Columns whose centre x+0.5 is within xo of cx, and for a ring
		// not within xi.
		xo := math.Sqrt(ao - dy2)
		left, right := int(math.Ceil(cx-0.5-xo)), int(math.Floor(cx-0.5+xo))+1
		if rIn > 1 && dy2 < ai {
			xi := math.Sqrt(ai - dy2)
			end, start := int(math.Floor(cx-0.5-xi))+1, int(math.Ceil(cx-0.5+xi))
			if m2 >= 0 {
				mirrored(y, left, end) // and its mirror, the right arc
				continue
			}
			span(y, left, end)
			span(y, start, right)
			continue
		}
		if m2 >= 0 {
			mirrored(y, left, right)
			continue
		}
		span(y, left, right)
	}
}

// ringSlack widens the bounds of the pixels a ring draws: less than the
// 0.5/255 of coverage that would round to an alpha of 1, far more than the
// rounding of the bounds' square roots.
const ringSlack = 1.0 / 1024

// ringKernel is what ringSpanGo and its vector twin need of a ring (or
// disc) and the row being drawn, laid out as draw_ring_amd64.s reads it.
type ringKernel struct {
	cx, dy2, rIn, rOut, av float64 // av: the ring's opacity × 255
	inner                  int64   // rIn > 0
	color                  [16]uint16
	ca                     [4]uint32 // the colour's alpha
	opaque                 int64     // the colour's alpha is 255
	c                      color.NRGBA
}

func newRingKernel(cx, rIn, rOut, av float64, c color.NRGBA) ringKernel {
	k := ringKernel{cx: cx, rIn: rIn, rOut: rOut, av: av, c: c}
	if rIn > 0 {
		k.inner = 1
	}
	if c.A == 255 {
		k.opaque = 1
	}
	w := rgbaWord(c)
	for i := range k.color {
		k.color[i] = uint16(w >> (8 * (i % 4)) & 0xff)
	}
	for i := range k.ca {
		k.ca[i] = uint32(c.A)
	}
	return k
}

// ringSpanGo blends the ring into the n pixels of row (columns x0..x0+n-1
// of row k.dy2's), at ringAlpha's coverage; when mir is not nil it holds
// their mirrors, in reverse order, which get the same blends.
func ringSpanGo(row, mir []byte, x0, n int, k *ringKernel) {
	for j := range n {
		a := ringAlpha(float64(x0+j)+0.5-k.cx, k.dy2, k.rIn, k.rOut, k.av)
		if a == 0 {
			continue
		}
		blendBytes(row[4*j:4*j+4:4*j+4], k.c, a)
		if mir != nil {
			m := 4 * (n - 1 - j)
			blendBytes(mir[m:m+4:m+4], k.c, a)
		}
	}
}

// ringAlpha is the alpha (0..255, opacity av = alpha·255) of the pixel at
// offset dx from a ring's centre, in a row dy2 = dy·dy away: its coverage
// by the disc of radius rOut, less the disc of radius rIn when rIn > 0,
// anti-aliased over a pixel. Zero blends nothing. The float64 conversions
// keep the compiler from fusing a multiply and an add, so the vector path,
// which does not fuse them either, computes the same bits.
func ringAlpha(dx, dy2, rIn, rOut, av float64) uint32 {
	d := math.Sqrt(float64(dx*dx) + dy2)
	cov := min(1, max(0, rOut-d+0.5))
	if rIn > 0 {
		cov *= min(1, max(0, d-rIn+0.5))
	}
	if cov <= 0 {
		return 0
	}
	return uint32(float64(cov*av) + 0.5)
}

// blendPixel mixes colour c into the pixel at Pix offset i with coverage a
// (0..255), scaled by c's own alpha: each channel becomes
// (c·a + p·(255−a) + 127) / 255, alpha with c's taken as 255.
func blendPixel(dst *image.RGBA, i int, c color.NRGBA, a uint32) {
	blendBytes(dst.Pix[i:i+4:i+4], c, a)
}

// blendBytes is blendPixel on the pixel p.
func blendBytes(p []byte, c color.NRGBA, a uint32) {
	if c.A != 255 {
		a = (a*uint32(c.A) + 127) / 255
	}
	cw := rgbaWord(c)
	if a >= 255 {
		binary.LittleEndian.PutUint32(p, cw)
		return
	}
	binary.LittleEndian.PutUint32(p, blendWord(cw, binary.LittleEndian.Uint32(p), a))
}

// blendWord is the blend of blendPixel on RGBA words, all four channels at
// once in 16-bit lanes of a uint64 (each lane's sum stays below 65 153).
// x/255 is (x + 1 + x>>8) >> 8, exact for x < 65 535.
func blendWord(c, p, a uint32) uint32 {
	x := lanes(c)*uint64(a) + lanes(p)*uint64(255-a) + 0x007f007f007f007f
	x = (x + 0x0001000100010001 + (x>>8)&0x00ff00ff00ff00ff) >> 8 & 0x00ff00ff00ff00ff
	x = (x | x>>8) & 0x0000ffff0000ffff
	return uint32(x | x>>16)
}

// lanes spreads the bytes of a word into the low bytes of four 16-bit
// lanes.
func lanes(w uint32) uint64 {
	x := uint64(w)
	x = (x | x<<16) & 0x0000ffff0000ffff
	return (x | x<<8) & 0x00ff00ff00ff00ff
}

// blendOver composites a premultiplied src over dst with src's rectangle
// placed at (ox,oy) relative to src.Rect.Min, clipped to clip.
func blendOver(dst *image.RGBA, dmg *damage, src *image.RGBA, ox, oy int, clip image.Rectangle) {
	r := src.Rect.Sub(src.Rect.Min).Add(image.Pt(ox, oy)).Intersect(clip).Intersect(dst.Rect)
	dmg.rect(r.Min.X, r.Min.Y, r.Max.X, r.Max.Y)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		blendOverRow(dst, nil, src, ox, oy, y, r.Min.X, r.Max.X)
	}
}

// blendOverRow is blendOver for columns [x0, x1) of row y, which the caller
// has clipped; it records them in dmg.
func blendOverRow(dst *image.RGBA, dmg *damage, src *image.RGBA, ox, oy, y, x0, x1 int) {
	if x0 >= x1 {
		return
	}
	dmg.row(y, x0, x1)
	si := src.PixOffset(src.Rect.Min.X+x0-ox, src.Rect.Min.Y+y-oy)
	di := dst.PixOffset(x0, y)
	for x := x0; x < x1; x, si, di = x+1, si+4, di+4 {
		a := uint32(src.Pix[si+3])
		if a == 0 {
			continue
		}
		if a == 255 {
			copy(dst.Pix[di:di+4], src.Pix[si:si+4])
			continue
		}
		na := 255 - a
		for c := 0; c < 3; c++ {
			dst.Pix[di+c] = uint8(uint32(src.Pix[si+c]) + (uint32(dst.Pix[di+c])*na+127)/255)
		}
		dst.Pix[di+3] = uint8(a + (uint32(dst.Pix[di+3])*na+127)/255)
	}
}

// scaleImage returns src cropped to w:h and scaled to w×h with a good kernel
// (used once per render).
func scaleImage(src image.Image, w, h int) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	xdraw.CatmullRom.Scale(out, out.Rect, src, coverCrop(src.Bounds(), w, h), xdraw.Src, nil)
	return out
}

func clamp01(v float64) float64 { return min(1, max(0, v)) }

// bilinearScale resamples src (origin 0,0) to fill dst (origin 0,0) by
// bilinear interpolation of the four nearest pixels, in 8-bit fixed point.
// For the small shrinks of the cover's pulse levels (at most Pulse, a few
// per cent) it matches x/image/draw's BiLinear within a level or two at a
// tenth of the cost, which matters because it runs at every render's start.
func bilinearScale(dst, src *image.RGBA) {
	dw, dh := dst.Rect.Dx(), dst.Rect.Dy()
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	// Source column (and weight of the right neighbour) per destination column.
	xs := make([]int, dw)
	xw := make([]uint32, dw)
	for x := range dw {
		fx := (float64(x)+0.5)*float64(sw)/float64(dw) - 0.5
		fx = min(max(fx, 0), float64(sw-1))
		xs[x] = int(fx)
		xw[x] = uint32((fx-float64(xs[x]))*256 + 0.5)
	}
	for y := range dh {
		fy := (float64(y)+0.5)*float64(sh)/float64(dh) - 0.5
		fy = min(max(fy, 0), float64(sh-1))
		y0 := int(fy)
		wy := uint32((fy-float64(y0))*256 + 0.5)
		y1 := min(y0+1, sh-1)
		r0 := src.Pix[y0*src.Stride : y0*src.Stride+4*sw]
		r1 := src.Pix[y1*src.Stride : y1*src.Stride+4*sw]
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*dw]
		le := binary.LittleEndian
		for x := range dw {
			i := 4 * xs[x]
			j := min(i+4, 4*(sw-1))
			wx := uint64(xw[x])
			// Per channel: top = a·(256−wx) + b·wx, bot likewise, then
			// (top·(256−wy) + bot·wy + 32768) >> 16. The horizontal step
			// runs on four 16-bit lanes (at most 65 280 each), the
			// vertical one on two pairs of 32-bit lanes (R,B and G,A).
			top := lanes(le.Uint32(r0[i:i+4]))*(256-wx) + lanes(le.Uint32(r0[j:j+4]))*wx
			bot := lanes(le.Uint32(r1[i:i+4]))*(256-wx) + lanes(le.Uint32(r1[j:j+4]))*wx
			const lo = 0x0000ffff0000ffff
			const half = 0x0000800000008000
			const low8 = 0x000000ff000000ff
			rb := ((top&lo)*(256-uint64(wy)) + (bot&lo)*uint64(wy) + half) >> 16 & low8
			ga := ((top>>16&lo)*(256-uint64(wy)) + (bot>>16&lo)*uint64(wy) + half) >> 16 & low8
			le.PutUint32(out[4*x:4*x+4], uint32(rb|rb>>16|ga<<8|ga>>8))
		}
	}
}
