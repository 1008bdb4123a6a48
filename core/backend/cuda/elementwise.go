//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

func (b *Backend) Axpby(dst *core.Tensor, alpha float32, x *core.Tensor, beta float32) {
	sameSize("Axpby", dst, x)
	n := dst.Size()
	b.launch("k_axpby", n, newArgs().ptr("d", b.p(dst, "Axpby")).f32("alpha", alpha).ptr("x", b.p(x, "Axpby")).
		f32("beta", beta).i64("n", n))
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

func (b *Backend) Fill(dst *core.Tensor, v float32) {
	b.fail(b.d.memset32(b.p(dst, "Fill"), math.Float32bits(v), dst.Size()))
}

func (b *Backend) Copy(dst, src *core.Tensor) {
	sameSize("Copy", dst, src)
	b.fail(b.d.copy(b.p(dst, "Copy"), b.p(src, "Copy"), src.Size()))
}
