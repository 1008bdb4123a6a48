//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

// Every op checks its shapes before launching: a kernel that strays outside a buffer
// does not fail alone but poisons the whole CUDA context, so a shape bug must stop at
// the host with a message naming the op.

func (b *Backend) Axpby(dst *core.Tensor, alpha float32, x *core.Tensor, beta float32) {
	sameSize("Axpby", dst, x)
	n := dst.Size()
	b.launch("k_axpby", n, newArgs().ptr("d", b.p(dst, "Axpby")).f32("alpha", alpha).ptr("x", b.p(x, "Axpby")).
		f32("beta", beta).i64("n", n))
}

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

func (b *Backend) Binary(op core.BinaryOp, dst, a, bt *core.Tensor) {
	if op > core.Equal {
		panic(fmt.Sprintf("cuda: Binary: unknown op %d", op))
	}
	out, err := core.BroadcastShape(a.Shape(), bt.Shape())
	if err != nil || !out.Equal(dst.Shape()) {
		panic(fmt.Sprintf("cuda: Binary %v: dst %v is not the broadcast of a %v and b %v", op, dst.Shape(), a.Shape(), bt.Shape()))
	}
	n := out.Size()
	pd, pa, pb := b.p(dst, "Binary"), b.p(a, "Binary"), b.p(bt, "Binary")
	na, okA := suffixLen(a.Shape(), out)
	nb, okB := suffixLen(bt.Shape(), out)
	if okA && okB {
		b.launch("k_binary_suffix", n, newArgs().i32("op", int(op)).ptr("d", pd).ptr("a", pa).ptr("b", pb).i64("n", n).
			i64("na", max(na, 1)).i64("nb", max(nb, 1)))
		return
	}
	if len(out) > maxRank {
		panic(fmt.Sprintf("cuda: Binary %v: rank %d exceeds the supported %d", op, len(out), maxRank))
	}
	b.launch("k_binary", n, newArgs().i32("op", int(op)).ptr("d", pd).ptr("a", pa).ptr("b", pb).
		idx("ix", out, core.BroadcastStrides(a.Shape(), out), core.BroadcastStrides(bt.Shape(), out)).i64("n", n))
}

func (b *Backend) Unary(op core.UnaryOp, dst, x *core.Tensor) {
	checkUnaryOp("Unary", op)
	sameSize("Unary", dst, x)
	n := dst.Size()
	b.launch("k_unary", n, newArgs().i32("op", int(op)).ptr("d", b.p(dst, "Unary")).ptr("x", b.p(x, "Unary")).i64("n", n))
}

// checkUnaryOp refuses op codes the kernels' unop does not know.
func checkUnaryOp(method string, op core.UnaryOp) {
	if op > core.Tanh {
		panic(fmt.Sprintf("cuda: %s: unknown op %d", method, op))
	}
}

// BiasActivation implements core.FusedEpilogues with k_bias_unary.
func (b *Backend) BiasActivation(op core.UnaryOp, dst, pre, bias *core.Tensor) {
	checkUnaryOp("BiasActivation", op)
	sameShape("BiasActivation", dst, pre)
	f := bias.Size()
	if pre.Rank() == 0 || bias.Rank() != 1 || pre.Shape()[pre.Rank()-1] != f {
		panic(fmt.Sprintf("cuda: BiasActivation: bias %v for output %v (want [last axis])", bias.Shape(), pre.Shape()))
	}
	n := dst.Size()
	b.launch("k_bias_unary", n, newArgs().i32("op", int(op)).ptr("d", b.p(dst, "BiasActivation")).
		ptr("pre", b.p(pre, "BiasActivation")).ptr("bias", b.p(bias, "BiasActivation")).i64("n", n).i64("f", f))
}

func (b *Backend) UnaryGrad(op core.UnaryOp, dx, x, dy *core.Tensor, accumulate bool) {
	checkUnaryOp("UnaryGrad", op)
	sameSize("UnaryGrad", dx, x)
	sameSize("UnaryGrad", dx, dy)
	n := dx.Size()
	b.launch("k_unary_grad", n, newArgs().i32("op", int(op)).ptr("dx", b.p(dx, "UnaryGrad")).ptr("x", b.p(x, "UnaryGrad")).
		ptr("dy", b.p(dy, "UnaryGrad")).i64("n", n).flag("acc", accumulate))
}

// Split sums aim for this many blocks per SM (see splitPlan).
const blocksPerSM = 4

func (b *Backend) Reduce(op core.ReduceOp, dst, x *core.Tensor, accumulate bool) {
	if op != core.ReduceSum && op != core.ReduceMax {
		panic(fmt.Sprintf("cuda: Reduce: unknown op %d", op))
	}
	if accumulate && op != core.ReduceSum {
		panic("cuda: Reduce: accumulate is only valid with ReduceSum")
	}
	xs, ds := x.Shape(), dst.Shape()
	plan, err := planReduce(xs, ds)
	if err != nil {
		panic(err.Error())
	}
	pd, px := b.p(dst, "Reduce"), b.p(x, "Reduce")
	if x.Size() == 0 {
		// Nothing to reduce: the sum is 0, the maximum -Inf.
		if !accumulate {
			b.Fill(dst, [...]float32{0, float32(math.Inf(-1))}[op])
		}
		return
	}
	target := blocksPerSM * b.d.smCount()
	switch plan.kind {
	case reduceNone:
		if accumulate {
			b.Axpby(dst, 1, x, 1)
		} else {
			b.Copy(dst, x)
		}
	case reduceRows:
		warp, grid := rowMode(plan.A, plan.R)
		s, chunk := 1, plan.R
		if !warp && op == core.ReduceSum {
			s, chunk = splitPlan(plan.R, grid, target, 4*threads)
		}
		if s > 1 && !accumulate {
			b.Fill(dst, 0)
		}
		b.fail(b.d.launch("k_reduce_rows", grid, s, 1, threads, 1, newArgs().i32("op", int(op)).ptr("d", pd).ptr("x", px).
			i64("A", plan.A).i64("R", plan.R).flag("acc", accumulate).flag("warpMode", warp).i64("chunk", chunk)))
	case reduceCols:
		tiles := (plan.K + 31) / 32
		gy := min(plan.A, maxGridYZ)
		s, chunk := 1, plan.R
		if op == core.ReduceSum {
			s, chunk = splitPlan(plan.R, tiles*gy, target, 64)
		}
		if s > 1 && !accumulate {
			b.Fill(dst, 0)
		}
		b.fail(b.d.launch("k_reduce_cols", tiles, gy, s, 32, 8, newArgs().i32("op", int(op)).ptr("d", pd).ptr("x", px).
			i64("A", plan.A).i64("R", plan.R).i64("K", plan.K).flag("acc", accumulate).i64("chunk", chunk)))
	default:
		if len(xs) > maxRank {
			panic(fmt.Sprintf("cuda: Reduce: rank %d exceeds the supported %d", len(xs), maxRank))
		}
		red := make([]int, len(xs))
		inner := 1
		for i := range xs {
			red[i] = 1
			if ds[i] == 1 && xs[i] != 1 {
				red[i] = xs[i]
				inner *= xs[i]
			}
		}
		n := ds.Size()
		b.launch("k_reduce", n, newArgs().i32("op", int(op)).ptr("d", pd).ptr("x", px).idx("ix", ds, xs.Strides(), red).
			i64("n", n).i64("inner", inner).flag("acc", accumulate))
	}
}

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

func (b *Backend) Dropout(dst, mask, x *core.Tensor, p float32, seed uint64) {
	sameSize("Dropout", dst, x)
	if mask != nil {
		sameSize("Dropout", mask, x)
	}
	if !(p >= 0 && p <= 1) {
		panic(fmt.Sprintf("cuda: Dropout: probability %v is outside [0, 1]", p))
	}
	// The survivors' scale in float32, exactly as the CPU computes it, so masks match
	// in value as well as in pattern.
	scale := float32(0)
	if p < 1 {
		scale = 1 / (1 - p)
	}
	n := x.Size()
	b.launch("k_dropout", n, newArgs().ptr("d", b.p(dst, "Dropout")).ptr("mask", b.p(mask, "Dropout")).
		ptr("x", b.p(x, "Dropout")).f32("p", p).f32("scale", scale).u64("seed", seed).i64("n", n))
}

func (b *Backend) SumSquares(dst, x *core.Tensor, accumulate bool) {
	if dst.Size() != 1 {
		panic(fmt.Sprintf("cuda: SumSquares: destination has shape %v, want one element", dst.Shape()))
	}
	if !accumulate {
		b.Fill(dst, 0)
	}
	n := x.Size()
	// One atomic per block: a few waves of blocks are plenty for a memory-bound sum.
	grid := min(elementGrid(n), blocksPerSM*b.d.smCount())
	if n > 0 {
		b.fail(b.d.launch("k_sum_squares", grid, 1, 1, threads, 1, newArgs().ptr("d", b.p(dst, "SumSquares")).
			ptr("x", b.p(x, "SumSquares")).i64("n", n)))
	}
}

func (b *Backend) ScaleBy(dst, s *core.Tensor, alpha float32) {
	if s.Size() != 1 {
		panic(fmt.Sprintf("cuda: ScaleBy: scale has shape %v, want one element", s.Shape()))
	}
	n := dst.Size()
	b.launch("k_scale_by", n, newArgs().ptr("d", b.p(dst, "ScaleBy")).ptr("s", b.p(s, "ScaleBy")).f32("alpha", alpha).i64("n", n))
}

func (b *Backend) SGDStep(param, grad, mom *core.Tensor, lr, momentum, weightDecay float32, nesterov, first bool) {
	sameSize("SGDStep", param, grad)
	var pm uintptr
	if momentum != 0 {
		if mom == nil {
			panic("cuda: SGDStep: momentum is non-zero but the momentum buffer is nil")
		}
		sameSize("SGDStep", param, mom)
		pm = b.p(mom, "SGDStep")
	}
	n := param.Size()
	b.launch("k_sgd", n, newArgs().ptr("p", b.p(param, "SGDStep")).ptr("g", b.p(grad, "SGDStep")).ptr("mom", pm).
		f32("lr", lr).f32("mu", momentum).f32("wd", weightDecay).flag("nesterov", nesterov).flag("first", first).i64("n", n))
}

func (b *Backend) AdamWStep(param, grad, m, v *core.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int) {
	sameSize("AdamWStep", param, grad)
	sameSize("AdamWStep", param, m)
	sameSize("AdamWStep", param, v)
	if step < 1 {
		panic(fmt.Sprintf("cuda: AdamWStep: step %d, want 1 or more", step))
	}
	bc1 := 1 - math.Pow(float64(beta1), float64(step))
	bc2 := 1 - math.Pow(float64(beta2), float64(step))
	decay := 1 - float64(lr)*float64(weightDecay)
	n := param.Size()
	b.launch("k_adamw", n, newArgs().ptr("p", b.p(param, "AdamWStep")).ptr("g", b.p(grad, "AdamWStep")).
		ptr("m", b.p(m, "AdamWStep")).ptr("v", b.p(v, "AdamWStep")).f32("b1", beta1).f32("b2", beta2).f32("eps", eps).
		f32("decay", float32(decay)).f32("stepSize", float32(float64(lr)/bc1)).f32("invSqrtBC2", float32(1/math.Sqrt(bc2))).
		i64("n", n))
}
