package gemm

import "golang.org/x/sys/cpu"

//go:generate go run gen_amd64.go

//go:noescape
func kernelAVX512(kc int, a *float32, aStride int, b *float32, bStride int, c *float32, ldc int, alpha, beta float32, accumulate int)

//go:noescape
func kernelAVX2(kc int, a *float32, aStride int, b *float32, bStride int, c *float32, ldc int, alpha, beta float32, accumulate int)

// The RowA kernels read A as a row-major block, row i at a + i·aStride (gen_amd64.go).
//
//go:noescape
func kernelAVX512RowA(kc int, a *float32, aStride int, b *float32, bStride int, c *float32, ldc int, alpha, beta float32, accumulate int)

//go:noescape
func kernelAVX2RowA(kc int, a *float32, aStride int, b *float32, bStride int, c *float32, ldc int, alpha, beta float32, accumulate int)

// transpose8 moves eight rows of 8·blocks floats into eight columns of a panel of the
// given width: dst[(8b+k)·width + r] = src[r·ld + 8b + k].
//
//go:noescape
func transpose8(dst *float32, width int, src *float32, ld int, blocks int)

// hasTranspose8 reports whether transpose8 may run (it needs AVX, which every kernel
// here implies).
func hasTranspose8() bool { return active != nil }

const (
	idAVX512 = iota + 1
	idAVX2
)

// kernels lists this CPU's microkernels, fastest first. x/sys/cpu's flags include the
// operating system's consent to save the wider registers.
func kernels() []*microkernel {
	var ks []*microkernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, &microkernel{id: idAVX512, name: "avx512", mr: 14, nr: 32})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, &microkernel{id: idAVX2, name: "avx2", mr: 6, nr: 16})
	}
	return ks
}

// call runs the microkernel through a direct call, not a function value, so that the
// compiler sees the assembly's noescape and an edge tile's buffer stays on the stack.
// rowA selects the variant that reads A row-major (aStride apart per row).
func (k *microkernel) call(kc int, a *float32, aStride int, rowA bool, b *float32, bStride int, c *float32, ldc int, alpha, beta float32, accumulate int) {
	switch {
	case k.id == idAVX512 && !rowA:
		kernelAVX512(kc, a, aStride, b, bStride, c, ldc, alpha, beta, accumulate)
	case k.id == idAVX512:
		kernelAVX512RowA(kc, a, aStride, b, bStride, c, ldc, alpha, beta, accumulate)
	case k.id == idAVX2 && !rowA:
		kernelAVX2(kc, a, aStride, b, bStride, c, ldc, alpha, beta, accumulate)
	case k.id == idAVX2:
		kernelAVX2RowA(kc, a, aStride, b, bStride, c, ldc, alpha, beta, accumulate)
	default:
		panic("gemm: unknown microkernel " + k.name)
	}
}
