//go:build amd64 && !purego

package renderer

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useSIMD is whether fillRing blends in AVX2 registers.
var useSIMD = cpu.X86.HasAVX2

// ringConst holds ringSpanAVX2's constants, laid out as draw_ring_amd64.s reads
// them.
type ringConst struct {
	offs [4]float64 // 0.5 1.5 2.5 3.5: pixel centres of a step
	half [4]float64
	one  [4]float64
	four [4]float64
	w255 [16]uint16
	w127 [16]uint16
	w1   [16]uint16
	rep  [16]byte // byte shuffle: alpha k (low byte of dword k) to bytes 4k..4k+3
	d127 [4]uint32
	d1   [4]uint32
}

var ringK = func() (k ringConst) {
	for i := range 4 {
		k.offs[i] = float64(i) + 0.5
		k.half[i], k.one[i], k.four[i] = 0.5, 1, 4
		k.d127[i], k.d1[i] = 127, 1
	}
	for i := range 16 {
		k.w255[i], k.w127[i], k.w1[i] = 255, 127, 1
		k.rep[i] = byte(i &^ 3)
	}
	return k
}()

// ringSpanAVX2 blends n pixels (n a positive multiple of 4) from pix, and
// their mirrors from mir leftwards when mir is not nil; see ringSpanGo.
//
//go:noescape
func ringSpanAVX2(pix, mir *byte, x0, n int, k *ringKernel, c *ringConst)

// ringSpanSIMD is ringSpanGo in AVX2 registers, four pixels a step; n must
// be a multiple of 4 and useSIMD true.
func ringSpanSIMD(row, mir []byte, x0, n int, k *ringKernel) {
	if n <= 0 {
		return
	}
	_ = row[4*n-1]
	var m *byte
	if mir != nil {
		_ = mir[4*n-1]
		m = &mir[4*(n-1)]
	}
	ringSpanAVX2(unsafe.SliceData(row), m, x0, n, k, &ringK)
}
