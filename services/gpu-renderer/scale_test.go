package renderer

import (
	"image"
	"testing"

	"github.com/stretchr/testify/require"
	xdraw "golang.org/x/image/draw"

	"github.com/backbeat/backbeat/services/gpu-renderer/rendertest"
)

// TestBilinearScaleMatchesXDraw: the cover's pulse levels, made with our
// bilinearScale, look like x/image/draw's BiLinear made them before.
func TestBilinearScaleMatchesXDraw(t *testing.T) {
	t.Parallel()
	top := scaleImage(rendertest.SampleCover(), 240, 240)
	for _, sz := range []int{240, 236, 229, 226} {
		want := image.NewRGBA(image.Rect(0, 0, sz, sz))
		xdraw.BiLinear.Scale(want, want.Rect, top, top.Rect, xdraw.Src, nil)
		got := image.NewRGBA(want.Rect)
		bilinearScale(got, top)
		sum, worst := 0, 0
		for i := range got.Pix {
			d := int(got.Pix[i]) - int(want.Pix[i])
			d = max(d, -d)
			sum += d
			worst = max(worst, d)
		}
		mean := float64(sum) / float64(len(got.Pix))
		t.Logf("size %d: mean diff %.3f, worst %d", sz, mean, worst)
		require.Less(t, mean, 1.0, "size %d", sz)
	}
	// The backdrop's blurred small image scaled up to the frame.
	small := scaleImage(rendertest.SampleCover(), 40, 40)
	boxBlur(small, 2)
	want := image.NewRGBA(image.Rect(0, 0, 540, 540))
	xdraw.BiLinear.Scale(want, want.Rect, small, small.Rect, xdraw.Src, nil)
	got := image.NewRGBA(want.Rect)
	bilinearScale(got, small)
	sum, worst := 0, 0
	for i := range got.Pix {
		d := int(got.Pix[i]) - int(want.Pix[i])
		d = max(d, -d)
		sum += d
		worst = max(worst, d)
	}
	t.Logf("upscale: mean diff %.3f, worst %d", float64(sum)/float64(len(got.Pix)), worst)
	require.Less(t, float64(sum)/float64(len(got.Pix)), 1.0)
}

// TestRoundCornersCornersOnly: visiting only the corner squares gives the
// same mask as visiting every pixel.
func TestRoundCornersCornersOnly(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		size   int
		radius float64
	}{{100, 6}, {101, 0.4}, {64, 32}, {57, 28.5}, {30, 0}, {432, 25.9}} {
		got := scaleImage(rendertest.SampleCover(), c.size, c.size)
		want := image.NewRGBA(got.Rect)
		copy(want.Pix, got.Pix)
		roundCorners(got, c.radius)
		w, h := want.Rect.Dx(), want.Rect.Dy()
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				cov := roundRectCoverage(float64(x)+0.5, float64(y)+0.5, 0, 0, float64(w), float64(h), c.radius)
				if cov >= 1 {
					continue
				}
				a := uint32(cov * 256)
				i := y*want.Stride + x*4
				for k := 0; k < 4; k++ {
					want.Pix[i+k] = uint8(uint32(want.Pix[i+k]) * a >> 8)
				}
			}
		}
		require.Equal(t, want.Pix, got.Pix, "size %d radius %v", c.size, c.radius)
	}
}
