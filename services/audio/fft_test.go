package audio

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFFTMatchesDFT compares the transform with the O(n²) definition.
func TestFFTMatchesDFT(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 8, 64, 256} {
		f, err := newFFT(n)
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		re, im := make([]float64, n), make([]float64, n)
		x := make([]complex128, n)
		for i := range re {
			re[i], im[i] = rng.Float64()*2-1, rng.Float64()*2-1
			x[i] = complex(re[i], im[i])
		}
		f.transform(re, im)
		for k := 0; k < n; k++ {
			var want complex128
			for j := 0; j < n; j++ {
				want += x[j] * cmplx.Exp(complex(0, -2*math.Pi*float64(j*k)/float64(n)))
			}
			require.InDelta(t, real(want), re[k], 1e-9, "n=%d k=%d", n, k)
			require.InDelta(t, imag(want), im[k], 1e-9, "n=%d k=%d", n, k)
		}
	}
}

func TestFFTSizeMustBePowerOfTwo(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 3, 1000} {
		_, err := newFFT(n)
		require.Error(t, err, n)
	}
}

// TestMagnitudesScale checks that a full-scale sine on a bin centre reads 1.
func TestMagnitudesScale(t *testing.T) {
	t.Parallel()
	const n, sr = 1024, 48000
	f, err := newFFT(n)
	require.NoError(t, err)
	bin := 40
	freq := float64(bin) * sr / n
	pcm := make([]float32, 4*n)
	for i := range pcm {
		pcm[i] = float32(math.Sin(2 * math.Pi * freq * float64(i) / sr))
	}
	re, im, mag := make([]float64, n), make([]float64, n), make([]float64, n/2+1)
	f.magnitudes(pcm, 2*n, re, im, mag)
	require.InDelta(t, 1.0, mag[bin], 1e-3)
	require.InDelta(t, 0.5, mag[bin+1], 1e-3, "Hann: neighbours at -6 dB")
	require.Less(t, mag[bin+5], 1e-6)
}
