//go:build amd64 && !purego

#include "textflag.h"

// func yuvRowPairAVX2(r0, r1, y0, y1, u, v *byte, n int, k *yuvConst)
//
// Each step reads 8 RGBA pixels of each row and writes 8 luma bytes per row
// and 4 U and 4 V bytes: the integer arithmetic of yuvRowPairGo, with the
// multiply-adds in 16-bit lanes (VPMADDWD) and sums in 32-bit lanes.
TEXT ·yuvRowPairAVX2(SB), NOSPLIT, $0-64
	MOVQ r0+0(FP), SI
	MOVQ r1+8(FP), DX
	MOVQ y0+16(FP), DI
	MOVQ y1+24(FP), BX
	MOVQ u+32(FP), R8
	MOVQ v+40(FP), R9
	MOVQ n+48(FP), CX
	MOVQ k+56(FP), AX
	VMOVDQU 0(AX), Y15   // luma coefficients: yr yg yb 0, per pixel
	VMOVDQU 32(AX), Y14  // chroma: ur ug ub 0 vr vg vb 0, per block
	VMOVDQU 64(AX), Y13  // luma rounding
	VMOVDQU 96(AX), Y12  // chroma rounding
	VMOVDQU 128(AX), Y11 // U/V byte shuffle
	TESTQ CX, CX
	JZ done

loop:
	// Pixels as 16-bit words: Y0 = row 0 pixels 0-3, Y1 = 4-7; Y2, Y3 row 1.
	VPMOVZXBW 0(SI), Y0
	VPMOVZXBW 16(SI), Y1
	VPMOVZXBW 0(DX), Y2
	VPMOVZXBW 16(DX), Y3

	// Luma, row 0: per pixel (R*yr + G*yg) + (B*yb), rounded, shifted.
	VPMADDWD Y15, Y0, Y4
	VPMADDWD Y15, Y1, Y5
	VPHADDD  Y5, Y4, Y4    // lanes: [p0 p1 p4 p5 | p2 p3 p6 p7]
	VPADDD   Y13, Y4, Y4
	VPSRAD   $15, Y4, Y4
	VPERMQ   $0xD8, Y4, Y4 // [p0 .. p7]

	// Luma, row 1.
	VPMADDWD Y15, Y2, Y5
	VPMADDWD Y15, Y3, Y6
	VPHADDD  Y6, Y5, Y5
	VPADDD   Y13, Y5, Y5
	VPSRAD   $15, Y5, Y5
	VPERMQ   $0xD8, Y5, Y5

	VPACKSSDW Y5, Y4, Y4    // words: [p0-3 q0-3 | p4-7 q4-7]
	VPERMQ    $0xD8, Y4, Y4 // [p0-7 | q0-7]
	VPACKUSWB Y4, Y4, Y4    // bytes: [p0-7 p0-7 | q0-7 q0-7]
	VMOVQ     X4, 0(DI)
	VEXTRACTI128 $1, Y4, X5
	VMOVQ     X5, 0(BX)

	// Chroma: sums of each 2×2 block.
	VPADDW   Y2, Y0, Y0    // columns: [s0 s1 | s2 s3]
	VPADDW   Y3, Y1, Y1    // [s4 s5 | s6 s7]
	VPSHUFD  $0x4E, Y0, Y2
	VPADDW   Y2, Y0, Y0    // blocks: [b0 b0 | b1 b1]
	VPSHUFD  $0x4E, Y1, Y3
	VPADDW   Y3, Y1, Y1    // [b2 b2 | b3 b3]
	VPMADDWD Y14, Y0, Y0
	VPMADDWD Y14, Y1, Y1
	VPHADDD  Y1, Y0, Y0    // [U0 V0 U2 V2 | U1 V1 U3 V3]
	VPADDD   Y12, Y0, Y0
	VPSRAD   $17, Y0, Y0
	VPERMQ   $0xD8, Y0, Y0 // [U0 V0 U1 V1 | U2 V2 U3 V3]
	VPACKSSDW Y0, Y0, Y0
	VPERMQ   $0xD8, Y0, Y0 // words, low lane: U0 V0 U1 V1 U2 V2 U3 V3
	VPACKUSWB Y0, Y0, Y0
	VPSHUFB  Y11, Y0, Y0   // bytes: U0 U1 U2 U3 V0 V1 V2 V3
	VMOVD    X0, 0(R8)
	VPEXTRD  $1, X0, 0(R9)

	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $8, DI
	ADDQ $8, BX
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ CX
	JNZ  loop

done:
	VZEROUPPER
	RET
