//go:build amd64 && !purego

#include "textflag.h"

// func ringSpanAVX2(pix, mir *byte, x0, n int, k *ringKernel, c *ringConst)
//
// Each step computes ringAlpha for four pixels in float64 lanes (the same
// operations in the same order, so the same roundings), scales it by the
// colour's alpha when that is not opaque, and blends the colour into the
// four pixels at DI (and, when SI is not 0, into the four ending at SI,
// their mirrors, in reverse order) as blendWord does, in 16-bit lanes.
// BLEND4 blends colour Y10 into the four pixels Y0 (16 words) at alphas Y3
// (16 words), (c·a + p·(255−a) + 127) / 255 per channel, and leaves the
// bytes in X0. Y8 holds 255 per word and BX the constants.
#define BLEND4 \
	VPSUBW    Y3, Y8, Y4; \
	VPMULLW   Y10, Y3, Y5; \
	VPMULLW   Y4, Y0, Y0; \
	VPADDW    Y5, Y0, Y0; \
	VPADDW    160(BX), Y0, Y0; \
	VPSRLW    $8, Y0, Y1; \
	VPADDW    Y1, Y0, Y0; \
	VPADDW    192(BX), Y0, Y0; \
	VPSRLW    $8, Y0, Y0; \
	VEXTRACTI128 $1, Y0, X1; \
	VPACKUSWB X1, X0, X0

TEXT ·ringSpanAVX2(SB), NOSPLIT, $0-48
	MOVQ pix+0(FP), DI
	MOVQ mir+8(FP), SI
	MOVQ x0+16(FP), AX
	MOVQ n+24(FP), CX
	MOVQ k+32(FP), DX
	MOVQ c+40(FP), BX

	VBROADCASTSD 0(DX), Y15  // cx
	VBROADCASTSD 8(DX), Y14  // dy*dy
	VBROADCASTSD 16(DX), Y13 // rIn
	VBROADCASTSD 24(DX), Y12 // rOut
	VBROADCASTSD 32(DX), Y11 // av
	MOVQ 40(DX), R8          // rIn > 0
	VMOVDQU 48(DX), Y10      // the colour's channels as words, four pixels
	MOVQ 96(DX), R9          // the colour is opaque
	VMOVDQU 128(BX), Y8      // 255 per word
	VXORPD Y7, Y7, Y7        // 0.0

	// Y9: float64(x) + 0.5 for the step's four pixels (exact).
	CVTSQ2SD AX, X9
	VBROADCASTSD X9, Y9
	VADDPD 0(BX), Y9, Y9

loop:
	// Coverage: exactly ringAlpha's arithmetic.
	VSUBPD  Y15, Y9, Y0      // dx = x + 0.5 - cx
	VMULPD  Y0, Y0, Y0       // dx*dx
	VADDPD  Y14, Y0, Y0      // + dy*dy
	VSQRTPD Y0, Y0           // d
	VSUBPD  Y0, Y12, Y1      // rOut - d
	VADDPD  32(BX), Y1, Y1   // + 0.5
	VMAXPD  Y7, Y1, Y1       // max(0, .)
	VMINPD  64(BX), Y1, Y1   // min(1, .)
	TESTQ   R8, R8
	JZ      covered
	VSUBPD  Y13, Y0, Y2      // d - rIn
	VADDPD  32(BX), Y2, Y2
	VMAXPD  Y7, Y2, Y2
	VMINPD  64(BX), Y2, Y2
	VMULPD  Y2, Y1, Y1       // cov *= inner coverage

covered:
	VMULPD      Y11, Y1, Y1  // cov*av
	VADDPD      32(BX), Y1, Y1
	VCVTTPD2DQY Y1, X1       // a: four int32, truncated as uint32() does
	TESTQ       R9, R9
	JNZ         alphas
	// Not opaque: a = (a*A + 127) / 255, with x/255 = (x + 1 + x>>8) >> 8.
	VPMULLD 80(DX), X1, X1
	VPADDD  240(BX), X1, X1
	VPSRLD  $8, X1, X2
	VPADDD  X2, X1, X1
	VPADDD  256(BX), X1, X1
	VPSRLD  $8, X1, X1

alphas:
	VPSHUFD $0x1B, X1, X6    // the alphas in reverse order, for the mirrors
	VPSHUFB 224(BX), X1, X3
	VPMOVZXBW X3, Y3         // a per channel
	VPMOVZXBW 0(DI), Y0      // the pixels as words
	BLEND4
	VMOVDQU X0, 0(DI)

	TESTQ SI, SI
	JZ    next
	VPSHUFB 224(BX), X6, X3
	VPMOVZXBW X3, Y3
	VPMOVZXBW -12(SI), Y0
	BLEND4
	VMOVDQU X0, -12(SI)
	SUBQ    $16, SI

next:
	ADDQ   $16, DI
	VADDPD 96(BX), Y9, Y9
	SUBQ   $4, CX
	JNZ    loop
	VZEROUPPER
	RET
