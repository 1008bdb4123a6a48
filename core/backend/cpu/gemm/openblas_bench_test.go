//go:build openblas

package gemm

import "gonum.org/v1/netlib/blas/netlib"

func init() { openBLAS = netlib.Implementation{} }
