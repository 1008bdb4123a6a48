//go:build cuda

package cuda

import "github.com/kadapt/kadapt/core"

func (b *Backend) MatMul(dst, a, bm *core.Tensor, transA, transB bool, alpha, beta float32) {
	g, err := planGemm(dst.Shape(), a.Shape(), bm.Shape(), transA, transB)
	if err != nil {
		panic(err.Error())
	}
	pd, pa, pb := b.p(dst, "MatMul"), b.p(a, "MatMul"), b.p(bm, "MatMul")
	switch {
	case dst.Size() == 0:
		return
	case g.k == 0:
		// An empty sum: dst = beta·dst, without reading dst when beta is 0.
		if beta == 0 {
			b.Fill(dst, 0)
		} else {
			n := dst.Size()
			b.launch("k_axpby", n, newArgs().ptr("d", pd).f32("alpha", beta).ptr("x", pd).f32("beta", 0).i64("n", n))
		}
		return
	}
	prec := b.Precision()
	// A product over one term (the bias broadcast of Linear, outer products) gains
	// nothing from tensor cores and is exact in float32, so autocast leaves it alone.
	if prec != BF16 || g.k == 1 {
		b.fail(b.d.gemm(g, prec == TF32, false, pb, pa, pd, alpha, beta))
		return
	}
	// Autocast: round both operands to bfloat16 in pooled scratch buffers (queued on
	// the same stream, so releasing them right after the product is safe).
	xa, xb := b.toBF16(a), b.toBF16(bm)
	b.fail(b.d.gemm(g, false, true, b.p(xb, "MatMul"), b.p(xa, "MatMul"), pd, alpha, beta))
	b.Release(xa)
	b.Release(xb)
}

// toBF16 returns a scratch tensor holding t's elements as bfloat16, two to a float32
// slot; its shape is only a size.
func (b *Backend) toBF16(t *core.Tensor) *core.Tensor {
	n := t.Size()
	d := b.AllocUninit(core.Shape{(n + 1) / 2})
	b.launch("k_to_bf16", n, newArgs().ptr("d", b.p(d, "MatMul")).ptr("x", b.p(t, "MatMul")).i64("n", n))
	return d
}
