//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

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
