//go:build !amd64 || purego

package yuv

// useSIMD is false: only amd64 has the vector path.
const useSIMD = false

// SIMDBlocks is the number of 2×2 blocks one vector step would convert; the
// compositor widens dirty spans to it, so it is the same on every build.
const SIMDBlocks = 4

func yuvRowPairSIMD(r0, r1, y0, y1, uo, vo []byte, n int) {
	k := n * SIMDBlocks
	yuvRowPairGo(r0[:8*k], r1[:8*k], y0[:2*k], y1[:2*k], uo[:k], vo[:k])
}
