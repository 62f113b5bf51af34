package audio

import (
	"math"
)

// detectBeats returns beat times in seconds: peaks of a log-magnitude
// spectral flux (the summed rise of every bin from one 10 ms hop to the next,
// which catches both percussive energy onsets and new notes) that are local
// maxima, stand above an adaptive threshold (the local mean plus a margin, in
// units of the flux's standard deviation) and are at least MinBeatGap apart.
func detectBeats(pcm []float32, sr int, p Params) ([]float64, error) {
	if len(pcm) == 0 {
		return nil, nil
	}
	f, err := newFFT(p.OnsetSize)
	if err != nil {
		return nil, err
	}
	size, hop := p.OnsetSize, p.OnsetHop
	hops := (len(pcm) + hop - 1) / hop
	re, im := make([]float64, size), make([]float64, size)
	mag := make([]float64, size/2+1)
	prevLog := make([]float64, size/2+1) // the hop before the first is silence
	topBin := min(int(p.MaxHz*float64(size)/float64(sr)), size/2)
	flux := make([]float64, hops)
	for n := range flux {
		f.magnitudes(pcm, n*hop, re, im, mag)
		var sum float64
		for k := 1; k <= topBin; k++ {
			l := math.Log1p(1000 * mag[k])
			if d := l - prevLog[k]; d > 0 {
				sum += d
			}
			prevLog[k] = l
		}
		flux[n] = sum
	}
	hopSec := float64(hop) / float64(sr)
	peaks := pickPeaks(flux, hopSec, p.MinBeatGap.Seconds())
	times := make([]float64, len(peaks))
	for i, n := range peaks {
		times[i] = float64(n) * hopSec
	}
	return times, nil
}

// Peak picking windows, in seconds (after Dixon, "Onset detection revisited").
const (
	peakMaxWindow   = 0.05 // a peak is the maximum within ±50 ms
	peakMeanBefore  = 0.15 // the threshold averages 150 ms before…
	peakMeanAfter   = 0.05 // …and 50 ms after the candidate
	peakMarginStd   = 1.0  // margin above the local mean, in standard deviations
	peakMinRelative = 0.1  // and at least this fraction of the strongest onset
)

// pickPeaks returns the indices of onset peaks in an onset function sampled
// every hopSec seconds.
func pickPeaks(od []float64, hopSec, minGap float64) []int {
	_, std, top := stats(od)
	if std < 1e-9 || top <= 0 {
		return nil // silence or a steady tone: no onsets
	}
	w := max(1, int(math.Round(peakMaxWindow/hopSec)))
	before := max(1, int(math.Round(peakMeanBefore/hopSec)))
	after := max(1, int(math.Round(peakMeanAfter/hopSec)))
	gap := int(math.Round(minGap / hopSec))

	// Prefix sums make the local mean O(1) per hop.
	prefix := make([]float64, len(od)+1)
	for i, v := range od {
		prefix[i+1] = prefix[i] + v
	}
	var peaks []int
	last := math.MinInt / 2
	for n, v := range od {
		if v < peakMinRelative*top || n-last < gap {
			continue
		}
		a, b := max(0, n-before), min(len(od), n+after+1)
		if v < (prefix[b]-prefix[a])/float64(b-a)+peakMarginStd*std {
			continue
		}
		if !isLocalMax(od, n, w) {
			continue
		}
		peaks = append(peaks, n)
		last = n
	}
	return peaks
}

// isLocalMax reports whether od[n] is the maximum of od[n-w..n+w]; ties go to
// the earliest index so a flat top yields one peak.
func isLocalMax(od []float64, n, w int) bool {
	for j := max(0, n-w); j <= min(len(od)-1, n+w); j++ {
		if od[j] > od[n] || (od[j] == od[n] && j < n) {
			return false
		}
	}
	return true
}

func stats(xs []float64) (mean, std, top float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	for _, x := range xs {
		mean += x
		top = max(top, x)
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(xs))), top
}
