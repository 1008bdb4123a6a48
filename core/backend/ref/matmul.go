package ref

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

func (*backend) MatMul(dst, a, b *core.Tensor, transA, transB bool, alpha, beta float32) {
	const op = "MatMul"
	d, av, bv := vals(dst, op, "dst"), vals(a, op, "a"), vals(b, op, "b")
	if dst.Rank() < 2 || a.Rank() < 2 || b.Rank() < 2 {
		panic(fmt.Sprintf("ref: MatMul: operands need rank >= 2: dst %v, a %v, b %v", dst, a, b))
	}
	ds, as, bs := dst.Shape(), a.Shape(), b.Shape()
	m, n := ds[len(ds)-2], ds[len(ds)-1]
	am, ak := as[len(as)-2], as[len(as)-1]
	if transA {
		am, ak = ak, am
	}
	bk, bn := bs[len(bs)-2], bs[len(bs)-1]
	if transB {
		bk, bn = bn, bk
	}
	batch := ds[:len(ds)-2]
	aShared, bShared := a.Rank() == 2, b.Rank() == 2
	if am != m || bn != n || ak != bk ||
		(!aShared && !as[:len(as)-2].Equal(batch)) || (!bShared && !bs[:len(bs)-2].Equal(batch)) {
		panic(fmt.Sprintf("ref: MatMul: shapes do not fit: dst %v, a %v (trans %v), b %v (trans %v)",
			ds, as, transA, bs, transB))
	}
	k := ak
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	for bi := range batch.Size() {
		c := d[bi*m*n : (bi+1)*m*n]
		if beta == 0 {
			// Ignore dst's old contents even when they are NaN (0·NaN is NaN).
			clear(c)
		}
		if m == 0 || n == 0 {
			continue
		}
		if k == 0 {
			for i := range c {
				c[i] *= float64(beta)
			}
			continue
		}
		aOff, bOff := bi*m*k, bi*k*n
		if aShared {
			aOff = 0
		}
		if bShared {
			bOff = 0
		}
		ga := blas64.General{Rows: m, Cols: k, Stride: k, Data: av[aOff : aOff+m*k]}
		if transA {
			ga = blas64.General{Rows: k, Cols: m, Stride: m, Data: av[aOff : aOff+m*k]}
		}
		gb := blas64.General{Rows: k, Cols: n, Stride: n, Data: bv[bOff : bOff+k*n]}
		if transB {
			gb = blas64.General{Rows: n, Cols: k, Stride: k, Data: bv[bOff : bOff+k*n]}
		}
		gc := blas64.General{Rows: m, Cols: n, Stride: n, Data: c}
		blas64.Gemm(tA, tB, float64(alpha), ga, gb, float64(beta), gc)
	}
}
