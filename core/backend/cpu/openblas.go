//go:build openblas

package cpu

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
)

// With the openblas tag every MatMul runs on the system BLAS through gonum's cgo
// binding: OpenBLAS's packed AVX kernels are several times faster than gonum's native
// Sgemm. See the package documentation for the module and library this needs.
func init() {
	blas32.Use(netlib.Implementation{})
	systemBLAS = true
}
