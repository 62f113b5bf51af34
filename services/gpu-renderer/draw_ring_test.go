package renderer

import (
	"bytes"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestRingKernelLayout pins the offsets draw_ring_amd64.s reads.
func TestRingKernelLayout(t *testing.T) {
	t.Parallel()
	var k ringKernel
	require.Equal(t, []uintptr{0, 8, 16, 24, 32, 40, 48, 80, 96},
		[]uintptr{unsafe.Offsetof(k.cx), unsafe.Offsetof(k.dy2), unsafe.Offsetof(k.rIn), unsafe.Offsetof(k.rOut),
			unsafe.Offsetof(k.av), unsafe.Offsetof(k.inner), unsafe.Offsetof(k.color), unsafe.Offsetof(k.ca),
			unsafe.Offsetof(k.opaque)})
}

// randomRow is n pixels of random bytes, with some all-0 and all-255
// pixels.
func randomRow(rng *rand.Rand, n int) []byte {
	p := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		switch rng.IntN(6) {
		case 0:
		case 1:
			copy(p[4*i:], []byte{255, 255, 255, 255})
		default:
			for j := range 4 {
				p[4*i+j] = byte(rng.IntN(256))
			}
		}
	}
	return p
}

// TestRingSpanVectorMatchesGo blends random rings and discs, opaque and
// translucent colours, at every coverage from none through the anti-aliased
// edges to full, into random pixels with and without mirrors, and checks
// that the vector path writes exactly what the Go loop writes.
func TestRingSpanVectorMatchesGo(t *testing.T) {
	t.Parallel()
	if !useSIMD {
		t.Log("no vector path on this machine: the Go loop is compared with itself")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 4000; i++ {
		n := 4 * (1 + rng.IntN(12))
		x0 := rng.IntN(600)
		c := color.NRGBA{R: uint8(rng.IntN(256)), G: uint8(rng.IntN(256)), B: uint8(rng.IntN(256)), A: 255}
		if rng.IntN(2) == 0 {
			c.A = uint8(rng.IntN(256))
		}
		rOut := 1 + rng.Float64()*400
		rIn := 0.0
		if rng.IntN(3) > 0 {
			rIn = rOut - 0.5 - rng.Float64()*12
		}
		// The span starts within a few pixels of the ring's edges, so it
		// crosses them.
		cx := float64(x0) + float64(rng.IntN(2*n+8)-4) + rOut*float64(rng.IntN(2)*2-1) + 0.5*float64(rng.IntN(3))
		dy := float64(rng.IntN(int(rOut)+2)) + 0.5
		k := newRingKernel(cx, rIn, rOut, rng.Float64()*255, c)
		k.dy2 = dy * dy
		row, mir := randomRow(rng, n), randomRow(rng, n)
		if rng.IntN(2) == 0 {
			mir = nil
		}
		gotRow, gotMir := bytes.Clone(row), bytes.Clone(mir)
		ringSpanGo(row, mir, x0, n, &k)
		ringSpanSIMD(gotRow, gotMir, x0, n, &k)
		require.Equal(t, row, gotRow, "case %d: kernel %+v, x0 %d, n %d", i, k, x0, n)
		require.Equal(t, mir, gotMir, "case %d: mirrors", i)
	}
}

// TestFillRingMatchesPerPixel draws rings and discs, centred on pixel
// edges, centres and elsewhere, clipped symmetrically or not, and checks
// that fillRing (vector steps, mirrors, Go tails) blends exactly what
// blending every pixel of the clip at ringAlpha's coverage gives, and
// records every pixel it changes as damage.
func TestFillRingMatchesPerPixel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	const w, h = 160, 120
	bg := image.NewRGBA(image.Rect(0, 0, w, h))
	copy(bg.Pix, randomRow(rng, w*h))
	for i := 0; i < 300; i++ {
		cx := 20 + float64(rng.IntN(240))/2
		if rng.IntN(4) == 0 {
			cx += rng.Float64()
		}
		cy := 20 + rng.Float64()*80
		rOut := 0.5 + rng.Float64()*60
		rIn := 0.0
		if rng.IntN(3) > 0 {
			rIn = rOut * rng.Float64()
		}
		clip := bg.Rect
		if rng.IntN(2) == 0 {
			// Symmetric about cx when cx is a half-integer: the mirrored path.
			half := min(int(cx), w-int(cx)) - rng.IntN(10)
			m := int(2 * cx)
			clip = image.Rect((m-2*half)/2, 10, (m+2*half)/2, 110)
		}
		c := color.NRGBA{R: uint8(rng.IntN(256)), G: uint8(rng.IntN(256)), B: uint8(rng.IntN(256)), A: uint8(128 + rng.IntN(128))}
		alpha := 0.05 + rng.Float64()

		got := image.NewRGBA(bg.Rect)
		copy(got.Pix, bg.Pix)
		dmg := newDamage(h)
		fillRing(got, dmg, clip, cx, cy, rIn, rOut, c, alpha)

		want := image.NewRGBA(bg.Rect)
		copy(want.Pix, bg.Pix)
		cl := clip.Intersect(want.Rect)
		for y := cl.Min.Y; y < cl.Max.Y; y++ {
			dy := float64(y) + 0.5 - cy
			for x := cl.Min.X; x < cl.Max.X; x++ {
				if a := ringAlpha(float64(x)+0.5-cx, dy*dy, rIn, rOut, min(1, alpha)*255); a > 0 {
					blendPixel(want, want.PixOffset(x, y), c, a)
				}
			}
		}
		require.Equal(t, want.Pix, got.Pix, "ring %d: centre (%v,%v) radii %v..%v clip %v", i, cx, cy, rIn, rOut, clip)
		for y := 0; y < h; y++ {
			spans := dmg.spans(nil, y/2, 0, w)
			for x := 0; x < w; x++ {
				o := got.PixOffset(x, y)
				if !bytes.Equal(got.Pix[o:o+4], bg.Pix[o:o+4]) {
					require.True(t, inSpans(spans, x), "ring %d: pixel (%d,%d) changed but not damaged", i, x, y)
				}
			}
		}
	}
}

func inSpans(spans []span, x int) bool {
	for _, s := range spans {
		if x >= s.lo && x < s.hi {
			return true
		}
	}
	return false
}
