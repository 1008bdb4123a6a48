//go:build !amd64

package gemm

// kernels is empty off amd64: Available reports false and callers use gonum.
func kernels() []*microkernel { return nil }

func (k *microkernel) call(kc int, a *float32, aStride int, rowA bool, b *float32, bStride int, c *float32, ldc int, alpha, beta float32, accumulate int) {
	panic("gemm: no microkernel on this architecture")
}

func hasTranspose8() bool { return false }

func transpose8(dst *float32, width int, src *float32, ld int, blocks int) {
	panic("gemm: transpose8 off amd64")
}
