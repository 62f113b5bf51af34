//go:build amd64 && !purego

package renderer

import "unsafe"

// prefetch asks for the cache lines of the n > 0 bytes at p.
//
//go:noescape
func prefetch(p *byte, n int)

// prefetchSpan asks for the cache lines of b, which is not empty, ahead of
// their use: composing runs in the encoder's gaps on cores whose caches the
// encoder has just filled, and issuing a frame's misses together overlaps
// their waits, which a copy or a conversion, span after span, does not.
func prefetchSpan(b []byte) { prefetch(unsafe.SliceData(b), len(b)) }
