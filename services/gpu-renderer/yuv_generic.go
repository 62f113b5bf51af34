//go:build !amd64 || purego

package renderer

// useSIMD is false: only amd64 has the vector path.
const useSIMD = false

const simdBlocks = 4

func yuvRowPairSIMD(r0, r1, y0, y1, uo, vo []byte, n int) {
	k := n * simdBlocks
	yuvRowPairGo(r0[:8*k], r1[:8*k], y0[:2*k], y1[:2*k], uo[:k], vo[:k])
}
