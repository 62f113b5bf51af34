package yuv

import (
	"bytes"
	"image"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestYUVVectorPathMatchesGo converts random pixels, including the extremes,
// over rectangles of every width from 2 to 40 pixels at odd offsets, and
// checks that ToYUV420Rect (vector steps plus a Go tail) writes exactly what
// the Go loop alone writes, and nothing outside the rectangle.
func TestYUVVectorPathMatchesGo(t *testing.T) {
	t.Parallel()
	if !useSIMD {
		t.Log("no vector path on this machine: the Go loop is compared with itself")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const w, h = 96, 8
	src := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range src.Pix {
		switch rng.IntN(8) {
		case 0:
			src.Pix[i] = 0
		case 1:
			src.Pix[i] = 255
		default:
			src.Pix[i] = byte(rng.IntN(256))
		}
	}
	for x0 := 0; x0 < 12; x0 += 2 {
		for width := 2; width <= 40; width += 2 {
			r := image.Rect(x0, 2, x0+width, 6)
			got := bytes.Repeat([]byte{7}, FrameSize(w, h, false))
			want := bytes.Clone(got)
			ToYUV420Rect(got, src, r)
			cw := w / 2
			for y := r.Min.Y; y < r.Max.Y; y += 2 {
				a, b := r.Min.X/2, r.Max.X/2
				yuvRowPairGo(src.Pix[y*src.Stride+8*a:y*src.Stride+8*b], src.Pix[(y+1)*src.Stride+8*a:(y+1)*src.Stride+8*b],
					want[y*w+2*a:y*w+2*b], want[(y+1)*w+2*a:(y+1)*w+2*b],
					want[w*h+(y/2)*cw+a:w*h+(y/2)*cw+b], want[w*h+cw*(h/2)+(y/2)*cw+a:w*h+cw*(h/2)+(y/2)*cw+b])
			}
			require.True(t, bytes.Equal(want, got), "rect %v", r)
		}
	}
}

func TestYUVKnownColours(t *testing.T) {
	t.Parallel()
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = 255, 255, 255, 255
	}
	buf := make([]byte, FrameSize(2, 2, false))
	ToYUV420(buf, img)
	require.Equal(t, []byte{235, 235, 235, 235, 128, 128}, buf)
	for i := range img.Pix {
		if i%4 != 3 {
			img.Pix[i] = 0
		}
	}
	ToYUV420(buf, img)
	require.Equal(t, []byte{16, 16, 16, 16, 128, 128}, buf)

	// HDR black is code 64, neutral chroma 512.
	hb := make([]byte, FrameSize(2, 2, true))
	ToYUV420P10(hb, img)
	require.Equal(t, []byte{64, 0, 64, 0, 64, 0, 64, 0, 0, 2, 0, 2}, hb)
}
