//go:build !amd64 || purego

package renderer

// prefetchSpan is only a hint, and elsewhere than amd64 nothing.
func prefetchSpan(b []byte) {}
