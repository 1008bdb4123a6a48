#include "textflag.h"

// Constants as eight-lane vectors: AVX2 has no embedded broadcast, and loading them
// as memory operands leaves the sixteen YMM registers to the computation.
DATA one<>+0(SB)/4, $0x3f800000
DATA one<>+4(SB)/4, $0x3f800000
DATA one<>+8(SB)/4, $0x3f800000
DATA one<>+12(SB)/4, $0x3f800000
DATA one<>+16(SB)/4, $0x3f800000
DATA one<>+20(SB)/4, $0x3f800000
DATA one<>+24(SB)/4, $0x3f800000
DATA one<>+28(SB)/4, $0x3f800000
GLOBL one<>(SB), RODATA|NOPTR, $32
DATA half<>+0(SB)/4, $0x3f000000
DATA half<>+4(SB)/4, $0x3f000000
DATA half<>+8(SB)/4, $0x3f000000
DATA half<>+12(SB)/4, $0x3f000000
DATA half<>+16(SB)/4, $0x3f000000
DATA half<>+20(SB)/4, $0x3f000000
DATA half<>+24(SB)/4, $0x3f000000
DATA half<>+28(SB)/4, $0x3f000000
GLOBL half<>(SB), RODATA|NOPTR, $32
DATA expHi<>+0(SB)/4, $0x42b0c0a5
DATA expHi<>+4(SB)/4, $0x42b0c0a5
DATA expHi<>+8(SB)/4, $0x42b0c0a5
DATA expHi<>+12(SB)/4, $0x42b0c0a5
DATA expHi<>+16(SB)/4, $0x42b0c0a5
DATA expHi<>+20(SB)/4, $0x42b0c0a5
DATA expHi<>+24(SB)/4, $0x42b0c0a5
DATA expHi<>+28(SB)/4, $0x42b0c0a5
GLOBL expHi<>(SB), RODATA|NOPTR, $32
DATA expLo<>+0(SB)/4, $0xc2b0c0a5
DATA expLo<>+4(SB)/4, $0xc2b0c0a5
DATA expLo<>+8(SB)/4, $0xc2b0c0a5
DATA expLo<>+12(SB)/4, $0xc2b0c0a5
DATA expLo<>+16(SB)/4, $0xc2b0c0a5
DATA expLo<>+20(SB)/4, $0xc2b0c0a5
DATA expLo<>+24(SB)/4, $0xc2b0c0a5
DATA expLo<>+28(SB)/4, $0xc2b0c0a5
GLOBL expLo<>(SB), RODATA|NOPTR, $32
DATA log2e<>+0(SB)/4, $0x3fb8aa3b
DATA log2e<>+4(SB)/4, $0x3fb8aa3b
DATA log2e<>+8(SB)/4, $0x3fb8aa3b
DATA log2e<>+12(SB)/4, $0x3fb8aa3b
DATA log2e<>+16(SB)/4, $0x3fb8aa3b
DATA log2e<>+20(SB)/4, $0x3fb8aa3b
DATA log2e<>+24(SB)/4, $0x3fb8aa3b
DATA log2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL log2e<>(SB), RODATA|NOPTR, $32
DATA ln2Hi<>+0(SB)/4, $0x3f318000
DATA ln2Hi<>+4(SB)/4, $0x3f318000
DATA ln2Hi<>+8(SB)/4, $0x3f318000
DATA ln2Hi<>+12(SB)/4, $0x3f318000
DATA ln2Hi<>+16(SB)/4, $0x3f318000
DATA ln2Hi<>+20(SB)/4, $0x3f318000
DATA ln2Hi<>+24(SB)/4, $0x3f318000
DATA ln2Hi<>+28(SB)/4, $0x3f318000
GLOBL ln2Hi<>(SB), RODATA|NOPTR, $32
DATA ln2Lo<>+0(SB)/4, $0xb95e8083
DATA ln2Lo<>+4(SB)/4, $0xb95e8083
DATA ln2Lo<>+8(SB)/4, $0xb95e8083
DATA ln2Lo<>+12(SB)/4, $0xb95e8083
DATA ln2Lo<>+16(SB)/4, $0xb95e8083
DATA ln2Lo<>+20(SB)/4, $0xb95e8083
DATA ln2Lo<>+24(SB)/4, $0xb95e8083
DATA ln2Lo<>+28(SB)/4, $0xb95e8083
GLOBL ln2Lo<>(SB), RODATA|NOPTR, $32
DATA p0<>+0(SB)/4, $0x39506967
DATA p0<>+4(SB)/4, $0x39506967
DATA p0<>+8(SB)/4, $0x39506967
DATA p0<>+12(SB)/4, $0x39506967
DATA p0<>+16(SB)/4, $0x39506967
DATA p0<>+20(SB)/4, $0x39506967
DATA p0<>+24(SB)/4, $0x39506967
DATA p0<>+28(SB)/4, $0x39506967
GLOBL p0<>(SB), RODATA|NOPTR, $32
DATA p1<>+0(SB)/4, $0x3ab743ce
DATA p1<>+4(SB)/4, $0x3ab743ce
DATA p1<>+8(SB)/4, $0x3ab743ce
DATA p1<>+12(SB)/4, $0x3ab743ce
DATA p1<>+16(SB)/4, $0x3ab743ce
DATA p1<>+20(SB)/4, $0x3ab743ce
DATA p1<>+24(SB)/4, $0x3ab743ce
DATA p1<>+28(SB)/4, $0x3ab743ce
GLOBL p1<>(SB), RODATA|NOPTR, $32
DATA p2<>+0(SB)/4, $0x3c088908
DATA p2<>+4(SB)/4, $0x3c088908
DATA p2<>+8(SB)/4, $0x3c088908
DATA p2<>+12(SB)/4, $0x3c088908
DATA p2<>+16(SB)/4, $0x3c088908
DATA p2<>+20(SB)/4, $0x3c088908
DATA p2<>+24(SB)/4, $0x3c088908
DATA p2<>+28(SB)/4, $0x3c088908
GLOBL p2<>(SB), RODATA|NOPTR, $32
DATA p3<>+0(SB)/4, $0x3d2aa9c1
DATA p3<>+4(SB)/4, $0x3d2aa9c1
DATA p3<>+8(SB)/4, $0x3d2aa9c1
DATA p3<>+12(SB)/4, $0x3d2aa9c1
DATA p3<>+16(SB)/4, $0x3d2aa9c1
DATA p3<>+20(SB)/4, $0x3d2aa9c1
DATA p3<>+24(SB)/4, $0x3d2aa9c1
DATA p3<>+28(SB)/4, $0x3d2aa9c1
GLOBL p3<>(SB), RODATA|NOPTR, $32
DATA p4<>+0(SB)/4, $0x3e2aaaaa
DATA p4<>+4(SB)/4, $0x3e2aaaaa
DATA p4<>+8(SB)/4, $0x3e2aaaaa
DATA p4<>+12(SB)/4, $0x3e2aaaaa
DATA p4<>+16(SB)/4, $0x3e2aaaaa
DATA p4<>+20(SB)/4, $0x3e2aaaaa
DATA p4<>+24(SB)/4, $0x3e2aaaaa
DATA p4<>+28(SB)/4, $0x3e2aaaaa
GLOBL p4<>(SB), RODATA|NOPTR, $32
DATA p5<>+0(SB)/4, $0x3f000000
DATA p5<>+4(SB)/4, $0x3f000000
DATA p5<>+8(SB)/4, $0x3f000000
DATA p5<>+12(SB)/4, $0x3f000000
DATA p5<>+16(SB)/4, $0x3f000000
DATA p5<>+20(SB)/4, $0x3f000000
DATA p5<>+24(SB)/4, $0x3f000000
DATA p5<>+28(SB)/4, $0x3f000000
GLOBL p5<>(SB), RODATA|NOPTR, $32
// qgA is float32(core.QuickGELUCoef) = 1.702 in each lane (core's TestQuickGELUCoefLiterals checks it).
DATA qgA<>+0(SB)/4, $0x3fd9db23
DATA qgA<>+4(SB)/4, $0x3fd9db23
DATA qgA<>+8(SB)/4, $0x3fd9db23
DATA qgA<>+12(SB)/4, $0x3fd9db23
DATA qgA<>+16(SB)/4, $0x3fd9db23
DATA qgA<>+20(SB)/4, $0x3fd9db23
DATA qgA<>+24(SB)/4, $0x3fd9db23
DATA qgA<>+28(SB)/4, $0x3fd9db23
GLOBL qgA<>(SB), RODATA|NOPTR, $32
DATA qgNegA<>+0(SB)/4, $0xbfd9db23
DATA qgNegA<>+4(SB)/4, $0xbfd9db23
DATA qgNegA<>+8(SB)/4, $0xbfd9db23
DATA qgNegA<>+12(SB)/4, $0xbfd9db23
DATA qgNegA<>+16(SB)/4, $0xbfd9db23
DATA qgNegA<>+20(SB)/4, $0xbfd9db23
DATA qgNegA<>+24(SB)/4, $0xbfd9db23
DATA qgNegA<>+28(SB)/4, $0xbfd9db23
GLOBL qgNegA<>(SB), RODATA|NOPTR, $32
DATA bias127<>+0(SB)/4, $127
DATA bias127<>+4(SB)/4, $127
DATA bias127<>+8(SB)/4, $127
DATA bias127<>+12(SB)/4, $127
DATA bias127<>+16(SB)/4, $127
DATA bias127<>+20(SB)/4, $127
DATA bias127<>+24(SB)/4, $127
DATA bias127<>+28(SB)/4, $127
GLOBL bias127<>(SB), RODATA|NOPTR, $32

// EXP_Y1 sets Y1 = exp(Y1) for Y1 in [-88.38, 88.38] (Cephes' expf: 2^n·e^r with
// |r| ≤ ln2/2, a degree-6 polynomial for e^r; about one ulp). It needs Y15 = 1 and
// uses Y2–Y4. The forward and the gradient kernels share it.
#define EXP_Y1 \
	VMINPS expHi<>(SB), Y1, Y1; \
	VMAXPS expLo<>(SB), Y1, Y1; \
	VMOVUPS half<>(SB), Y2; \
	VFMADD231PS log2e<>(SB), Y1, Y2; \
	VROUNDPS $1, Y2, Y2; \
	VFNMADD231PS ln2Hi<>(SB), Y2, Y1; \
	VFNMADD231PS ln2Lo<>(SB), Y2, Y1; \
	VMULPS Y1, Y1, Y3; \
	VMOVUPS p0<>(SB), Y4; \
	VFMADD213PS p1<>(SB), Y1, Y4; \
	VFMADD213PS p2<>(SB), Y1, Y4; \
	VFMADD213PS p3<>(SB), Y1, Y4; \
	VFMADD213PS p4<>(SB), Y1, Y4; \
	VFMADD213PS p5<>(SB), Y1, Y4; \
	VFMADD213PS Y1, Y3, Y4; \
	VADDPS Y15, Y4, Y4; \
	VCVTPS2DQ Y2, Y2; \
	VPADDD bias127<>(SB), Y2, Y2; \
	VPSLLD $23, Y2, Y2; \
	VMULPS Y2, Y4, Y1;

// func quickGELUAVX2(d, x *float32, n int)
//
// d[i] = x[i]·σ(1.702·x[i]) for n a multiple of 8.
TEXT ·quickGELUAVX2(SB), NOSPLIT, $0-24
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JEQ qg_done
	VMOVUPS one<>(SB), Y15
qg_loop:
	VMOVUPS (SI), Y0
	VMULPS qgNegA<>(SB), Y0, Y1
	EXP_Y1
	// Y1 = s = 1/(1+exp(-a·x))
	VADDPS Y15, Y1, Y1
	VDIVPS Y1, Y15, Y1
	VMULPS Y1, Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNE qg_loop
	VZEROUPPER
qg_done:
	RET

// func quickGELUGradAVX2(dx, x, dy *float32, n int, accumulate int)
//
// dx[i] (+)= (s + 1.702·x·s·(1-s))·dy[i] with s = σ(1.702·x[i]), for n a multiple of 8.
TEXT ·quickGELUGradAVX2(SB), NOSPLIT, $0-40
	MOVQ dx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ accumulate+32(FP), R8
	SHRQ $3, CX
	JEQ qgg_done
	VMOVUPS one<>(SB), Y15
qgg_loop:
	VMOVUPS (SI), Y0
	VMULPS qgNegA<>(SB), Y0, Y1
	EXP_Y1
	// Y1 = s = 1/(1+exp(-a·x))
	VADDPS Y15, Y1, Y1
	VDIVPS Y1, Y15, Y1
	VSUBPS Y1, Y15, Y5
	VMULPS qgA<>(SB), Y0, Y6
	VMULPS Y5, Y6, Y6
	VADDPS Y15, Y6, Y6
	VMULPS Y1, Y6, Y6
	VMULPS (DX), Y6, Y6
	TESTQ R8, R8
	JEQ qgg_store
	VADDPS (DI), Y6, Y6
qgg_store:
	VMOVUPS Y6, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNE qgg_loop
	VZEROUPPER
qgg_done:
	RET


// func adamWAVX2(p, grad, m, v *float32, n int, c *adamWConsts)
//
// One AdamW step on n elements (a multiple of 4), four lanes of float64 at a time,
// with exactly adamWKernel's operations in its order and no fused multiply-adds, so
// the results are its results bit for bit. c holds beta1, 1-beta1, beta2, 1-beta2,
// decay, stepSize, sqrtBC2i and eps.
TEXT ·adamWAVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), DX
	MOVQ v+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	SHRQ $2, CX
	JEQ adam_done
	VBROADCASTSD 0(AX), Y8
	VBROADCASTSD 8(AX), Y9
	VBROADCASTSD 16(AX), Y10
	VBROADCASTSD 24(AX), Y11
	VBROADCASTSD 32(AX), Y12
	VBROADCASTSD 40(AX), Y13
	VBROADCASTSD 48(AX), Y14
	VBROADCASTSD 56(AX), Y15
adam_loop:
	VCVTPS2PD (SI), Y0
	VCVTPS2PD (DX), Y1
	VCVTPS2PD (R8), Y2
	VCVTPS2PD (DI), Y3
	// m = beta1·m + (1-beta1)·g
	VMULPD Y8, Y1, Y1
	VMULPD Y9, Y0, Y4
	VADDPD Y4, Y1, Y1
	// v = beta2·v + ((1-beta2)·g)·g
	VMULPD Y10, Y2, Y2
	VMULPD Y11, Y0, Y5
	VMULPD Y0, Y5, Y5
	VADDPD Y5, Y2, Y2
	VCVTPD2PSY Y1, X6
	VMOVUPS X6, (DX)
	VCVTPD2PSY Y2, X7
	VMOVUPS X7, (R8)
	// p = p·decay - (stepSize·m)/(sqrt(v)·sqrtBC2i + eps)
	VMULPD Y12, Y3, Y3
	VMULPD Y13, Y1, Y4
	VSQRTPD Y2, Y5
	VMULPD Y14, Y5, Y5
	VADDPD Y15, Y5, Y5
	VDIVPD Y5, Y4, Y4
	VSUBPD Y4, Y3, Y3
	VCVTPD2PSY Y3, X3
	VMOVUPS X3, (DI)
	ADDQ $16, DI
	ADDQ $16, SI
	ADDQ $16, DX
	ADDQ $16, R8
	DECQ CX
	JNE adam_loop
	VZEROUPPER
adam_done:
	RET

// Go's math.Exp on amd64 with FMA (src/math/exp_amd64.s, the avxfma path), four lanes
// at a time: the same constants and the same operations in the same order, so each
// lane is math.Exp's result bit for bit. Its special cases (non-finite input,
// overflow, subnormal and zero results) are left to the caller.
DATA expLog2e64<>+0(SB)/8, $1.4426950408889634073599246810018920
DATA expLn2U64<>+0(SB)/8, $0.69314718055966295651160180568695068359375
DATA expLn2L64<>+0(SB)/8, $0.28235290563031577122588448175013436025525412068e-12
DATA expSixteenth64<>+0(SB)/8, $0.0625
DATA expHalf64<>+0(SB)/8, $0.5
DATA expOne64<>+0(SB)/8, $1.0
DATA expTwo64<>+0(SB)/8, $2.0
DATA expC3<>+0(SB)/8, $1.6666666666666666667e-1
DATA expC4<>+0(SB)/8, $4.1666666666666666667e-2
DATA expC5<>+0(SB)/8, $8.3333333333333333333e-3
DATA expC6<>+0(SB)/8, $1.3888888888888888889e-3
DATA expC7<>+0(SB)/8, $1.9841269841269841270e-4
DATA expC8<>+0(SB)/8, $2.4801587301587301587e-5
DATA expBias64<>+0(SB)/8, $0x3FF
GLOBL expLog2e64<>(SB), RODATA|NOPTR, $8
GLOBL expLn2U64<>(SB), RODATA|NOPTR, $8
GLOBL expLn2L64<>(SB), RODATA|NOPTR, $8
GLOBL expSixteenth64<>(SB), RODATA|NOPTR, $8
GLOBL expHalf64<>(SB), RODATA|NOPTR, $8
GLOBL expOne64<>(SB), RODATA|NOPTR, $8
GLOBL expTwo64<>(SB), RODATA|NOPTR, $8
GLOBL expC3<>(SB), RODATA|NOPTR, $8
GLOBL expC4<>(SB), RODATA|NOPTR, $8
GLOBL expC5<>(SB), RODATA|NOPTR, $8
GLOBL expC6<>(SB), RODATA|NOPTR, $8
GLOBL expC7<>(SB), RODATA|NOPTR, $8
GLOBL expC8<>(SB), RODATA|NOPTR, $8
GLOBL expBias64<>(SB), RODATA|NOPTR, $8

// func expShiftedAVX2(dst *float64, x *float32, n int, shift float64)
//
// dst[i] = math.Exp(float64(x[i]) - shift) for n a multiple of 4, wherever that
// difference lies in [-708, 709].
TEXT ·expShiftedAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $2, CX
	JEQ exps_done
	VBROADCASTSD shift+24(FP), Y15
	VBROADCASTSD expLog2e64<>(SB), Y14
	VBROADCASTSD expLn2U64<>(SB), Y13
	VBROADCASTSD expLn2L64<>(SB), Y12
	VBROADCASTSD expSixteenth64<>(SB), Y11
	VBROADCASTSD expTwo64<>(SB), Y10
	VBROADCASTSD expOne64<>(SB), Y9
	VPBROADCASTQ expBias64<>(SB), Y8
exps_loop:
	VCVTPS2PD (SI), Y0
	VSUBPD Y15, Y0, Y0
	// exponent: round(x·log2e) as an integer and as a float64
	VMULPD Y14, Y0, Y1
	VCVTPD2DQY Y1, X7
	VCVTDQ2PD X7, Y1
	VFNMADD231PD Y13, Y1, Y0
	VFNMADD231PD Y12, Y1, Y0
	VMULPD Y11, Y0, Y0
	// Taylor series
	VBROADCASTSD expC8<>(SB), Y1
	VBROADCASTSD expC7<>(SB), Y2
	VFMADD213PD Y2, Y0, Y1
	VBROADCASTSD expC6<>(SB), Y2
	VFMADD213PD Y2, Y0, Y1
	VBROADCASTSD expC5<>(SB), Y2
	VFMADD213PD Y2, Y0, Y1
	VBROADCASTSD expC4<>(SB), Y2
	VFMADD213PD Y2, Y0, Y1
	VBROADCASTSD expC3<>(SB), Y2
	VFMADD213PD Y2, Y0, Y1
	VBROADCASTSD expHalf64<>(SB), Y2
	VFMADD213PD Y2, Y0, Y1
	VFMADD213PD Y9, Y0, Y1
	VMULPD Y1, Y0, Y0
	VADDPD Y10, Y0, Y1
	VMULPD Y1, Y0, Y0
	VADDPD Y10, Y0, Y1
	VMULPD Y1, Y0, Y0
	VADDPD Y10, Y0, Y1
	VMULPD Y1, Y0, Y0
	VADDPD Y10, Y0, Y1
	VFMADD213PD Y9, Y1, Y0
	// times 2^exponent
	VPMOVSXDQ X7, Y3
	VPADDQ Y8, Y3, Y3
	VPSLLQ $52, Y3, Y3
	VMULPD Y3, Y0, Y0
	VMOVUPD Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNE exps_loop
	VZEROUPPER
exps_done:
	RET
