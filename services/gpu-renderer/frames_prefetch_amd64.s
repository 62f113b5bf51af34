//go:build amd64 && !purego

#include "textflag.h"

// func prefetch(p *byte, n int)
//
// PREFETCHT0 for every cache line of the n > 0 bytes at p.
TEXT ·prefetch(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX
	LEAQ -1(AX)(CX*1), CX // the last byte
	PREFETCHT0 (CX)

loop:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	CMPQ AX, CX
	JB   loop
	RET
