//go:build !amd64 || purego

package renderer

// useSIMD is false: only amd64 has the vector path.
const useSIMD = false

// ringSpanSIMD is ringSpanGo: only amd64 has the vector path, and useSIMD
// is false elsewhere, so fillRing does not call it.
func ringSpanSIMD(row, mir []byte, x0, n int, k *ringKernel) { ringSpanGo(row, mir, x0, n, k) }
