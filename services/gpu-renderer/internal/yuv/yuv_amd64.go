//go:build amd64 && !purego

package yuv

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useSIMD is whether ToYUV420Rect converts in AVX2 registers.
var useSIMD = cpu.X86.HasAVX2

// SIMDBlocks is the number of 2×2 blocks one AVX2 step converts (8 pixels
// of each row).
const SIMDBlocks = 4

// yuvConst holds the AVX2 path's constants, laid out as yuv_amd64.s reads
// them: the luma and chroma coefficients as 16-bit lanes, the rounding
// terms as 32-bit lanes, and the byte shuffle that separates U from V.
type yuvConst struct {
	yc   [16]int16
	uvc  [16]int16
	ry   [8]int32
	rc   [8]int32
	shuf [32]byte
}

var yuvK = func() (k yuvConst) {
	c := &bt709
	for i := 0; i < 16; i += 4 {
		k.yc[i], k.yc[i+1], k.yc[i+2] = int16(c.yr), int16(c.yg), int16(c.yb)
	}
	for i := 0; i < 16; i += 8 {
		k.uvc[i], k.uvc[i+1], k.uvc[i+2] = int16(c.ur), int16(c.ug), int16(c.ub)
		k.uvc[i+4], k.uvc[i+5], k.uvc[i+6] = int16(c.vr), int16(c.vg), int16(c.vb)
	}
	for i := range k.ry {
		k.ry[i], k.rc[i] = yRound, cRound
	}
	// Bytes U0 V0 U1 V1 U2 V2 U3 V3 → U0 U1 U2 U3 V0 V1 V2 V3, per lane.
	for lane := 0; lane < 32; lane += 16 {
		for i, j := range [16]byte{0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15} {
			k.shuf[lane+i] = j
		}
	}
	return k
}()

// yuvRowPairAVX2 converts n groups of SIMDBlocks blocks; see yuvRowPairGo.
//
//go:noescape
func yuvRowPairAVX2(r0, r1, y0, y1, u, v *byte, n int, k *yuvConst)

// yuvRowPairSIMD converts the first n×SIMDBlocks blocks of the row pair,
// exactly as yuvRowPairGo would. The slices must hold that many.
func yuvRowPairSIMD(r0, r1, y0, y1, uo, vo []byte, n int) {
	k := n * SIMDBlocks
	_, _, _, _, _, _ = r0[8*k-1], r1[8*k-1], y0[2*k-1], y1[2*k-1], uo[k-1], vo[k-1]
	yuvRowPairAVX2(unsafe.SliceData(r0), unsafe.SliceData(r1), unsafe.SliceData(y0), unsafe.SliceData(y1),
		unsafe.SliceData(uo), unsafe.SliceData(vo), n, &yuvK)
}
