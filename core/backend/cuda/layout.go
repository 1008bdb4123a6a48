//go:build cuda

package cuda

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

func (b *Backend) Permute(dst, x *core.Tensor, perm []int) {
	xs, ds := x.Shape(), dst.Shape()
	if len(perm) != len(xs) || len(ds) != len(xs) {
		panic(fmt.Sprintf("cuda: Permute: permutation %v does not fit x %v and dst %v", perm, xs, ds))
	}
	if len(xs) > maxRank {
		panic(fmt.Sprintf("cuda: Permute: rank %d exceeds the supported %d", len(xs), maxRank))
	}
	seen := make([]bool, len(perm))
	xst := xs.Strides()
	st := make([]int, len(perm))
	for i, p := range perm {
		if p < 0 || p >= len(xs) || seen[p] {
			panic(fmt.Sprintf("cuda: Permute: %v is not a permutation of %d axes", perm, len(xs)))
		}
		seen[p] = true
		if ds[i] != xs[p] {
			panic(fmt.Sprintf("cuda: Permute: dst %v is not x %v permuted by %v", ds, xs, perm))
		}
		st[i] = xst[p]
	}
	n := dst.Size()
	b.launch("k_permute", n, newArgs().ptr("d", b.p(dst, "Permute")).ptr("x", b.p(x, "Permute")).idx("ix", ds, st, nil).i64("n", n))
}

// alongAxis checks that a and c agree off axis and returns the [outer, ·, inner]
// sizes around it.
func alongAxis(op string, a, c core.Shape, axis int) (outer, inner int) {
	if len(a) != len(c) || axis < 0 || axis >= len(a) {
		panic(fmt.Sprintf("cuda: %s: shapes %v and %v along axis %d", op, a, c, axis))
	}
	outer, inner = 1, 1
	for i := range a {
		if i != axis && a[i] != c[i] {
			panic(fmt.Sprintf("cuda: %s: shapes %v and %v differ off axis %d", op, a, c, axis))
		}
		if i < axis {
			outer *= a[i]
		} else if i > axis {
			inner *= a[i]
		}
	}
	return outer, inner
}

func (b *Backend) CopyAlong(dst, src *core.Tensor, axis, dstOff, srcOff, n int, accumulate bool) {
	ds, ss := dst.Shape(), src.Shape()
	outer, inner := alongAxis("CopyAlong", ds, ss, axis)
	if n < 0 || dstOff < 0 || srcOff < 0 || dstOff+n > ds[axis] || srcOff+n > ss[axis] {
		panic(fmt.Sprintf("cuda: CopyAlong: block of %d at dst offset %d / src offset %d exceeds axis %d of dst %v or src %v",
			n, dstOff, srcOff, axis, ds, ss))
	}
	b.launch("k_copy_along", outer*n*inner, newArgs().ptr("d", b.p(dst, "CopyAlong")).ptr("s", b.p(src, "CopyAlong")).
		i64("outer", outer).i64("dAx", ds[axis]).i64("sAx", ss[axis]).i64("dOff", dstOff).i64("sOff", srcOff).
		i64("cnt", n).i64("inner", inner).flag("acc", accumulate))
}

// Gather and ScatterAdd leave index checking to the kernels (the indices live on
// the device): a bad one is reported by the next Sync or Download.
func (b *Backend) Gather(dst, x, idx *core.Tensor, axis int) {
	outer, inner := alongAxis("Gather", dst.Shape(), x.Shape(), axis)
	cnt := dst.Shape()[axis]
	if idx.Size() != cnt {
		panic(fmt.Sprintf("cuda: Gather: %d indices for %d positions on axis %d of dst %v", idx.Size(), cnt, axis, dst.Shape()))
	}
	b.launch("k_gather", outer*cnt*inner, newArgs().ptr("d", b.p(dst, "Gather")).ptr("x", b.p(x, "Gather")).
		ptr("idx", b.p(idx, "Gather")).i64("outer", outer).i64("xAx", x.Shape()[axis]).i64("cnt", cnt).i64("inner", inner))
}

func (b *Backend) ScatterAdd(dst, src, idx *core.Tensor, axis int) {
	outer, inner := alongAxis("ScatterAdd", dst.Shape(), src.Shape(), axis)
	cnt := src.Shape()[axis]
	if idx.Size() != cnt {
		panic(fmt.Sprintf("cuda: ScatterAdd: %d indices for %d positions on axis %d of src %v", idx.Size(), cnt, axis, src.Shape()))
	}
	b.launch("k_scatter_add", outer*cnt*inner, newArgs().ptr("d", b.p(dst, "ScatterAdd")).ptr("s", b.p(src, "ScatterAdd")).
		ptr("idx", b.p(idx, "ScatterAdd")).i64("outer", outer).i64("dAx", dst.Shape()[axis]).i64("cnt", cnt).i64("inner", inner))
}
