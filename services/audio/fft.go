package audio

import (
	"fmt"
	"math"
	"math/bits"
)

// fft is an in-place iterative radix-2 Cooley–Tukey transform of one size,
// with its twiddles and bit-reversal table computed once. The analysis runs
// thousands of same-size transforms, so the tables pay for themselves; and a
// 60-line transform is cheaper to own than a dependency.
type fft struct {
	n      int
	cos    []float64 // cos(2πk/n), k < n/2
	sin    []float64 // sin(2πk/n), k < n/2
	rev    []int
	window []float64 // Hann window of length n
}

// newFFT prepares transforms of size n, a power of two ≥ 2.
func newFFT(n int) (*fft, error) {
	if n < 2 || n&(n-1) != 0 {
		return nil, fmt.Errorf("fft size %d is not a power of two", n)
	}
	f := &fft{n: n, cos: make([]float64, n/2), sin: make([]float64, n/2), rev: make([]int, n), window: hann(n)}
	for k := range f.cos {
		a := 2 * math.Pi * float64(k) / float64(n)
		f.cos[k], f.sin[k] = math.Cos(a), math.Sin(a)
	}
	shift := 64 - bits.TrailingZeros(uint(n))
	for i := range f.rev {
		f.rev[i] = int(bits.Reverse64(uint64(i)) >> shift)
	}
	return f, nil
}

// transform replaces (re, im) by its discrete Fourier transform
// X[k] = Σ x[j]·e^(−2πi·jk/n). Both slices must have length n.
func (f *fft) transform(re, im []float64) {
	n := f.n
	for i, j := range f.rev {
		if i < j {
			re[i], re[j] = re[j], re[i]
			im[i], im[j] = im[j], im[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		half := size >> 1
		step := n / size
		for start := 0; start < n; start += size {
			for k := 0; k < half; k++ {
				wr, wi := f.cos[k*step], -f.sin[k*step]
				a, b := start+k, start+k+half
				tr := re[b]*wr - im[b]*wi
				ti := re[b]*wi + im[b]*wr
				re[b], im[b] = re[a]-tr, im[a]-ti
				re[a], im[a] = re[a]+tr, im[a]+ti
			}
		}
	}
}

// magnitudes windows the n samples of pcm centred on sample centre (zero
// outside pcm), transforms them and writes |X[k]|/(n/4) for k ≤ n/2 into mag.
// With that scale a full-scale sine on a bin centre reads 1 (0 dBFS): the
// Hann window's coherent gain is 1/2 and a real sine splits over ±f.
func (f *fft) magnitudes(pcm []float32, centre int, re, im, mag []float64) {
	start := centre - f.n/2
	for j := range re {
		s := start + j
		v := 0.0
		if s >= 0 && s < len(pcm) {
			v = float64(pcm[s]) * f.window[j]
		}
		re[j], im[j] = v, 0
	}
	f.transform(re, im)
	scale := 4 / float64(f.n)
	for k := 0; k <= f.n/2; k++ {
		mag[k] = math.Hypot(re[k], im[k]) * scale
	}
}

// hann is the periodic Hann window, which sums to n/2.
func hann(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n))
	}
	return w
}
