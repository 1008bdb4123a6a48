package ref

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

func (*backend) Reduce(op core.ReduceOp, dst, x *core.Tensor, accumulate bool) {
	d, xs := vals(dst, "Reduce", "dst"), vals(x, "Reduce", "x")
	if out, err := core.BroadcastShape(dst.Shape(), x.Shape()); err != nil || !out.Equal(x.Shape()) {
		panic(fmt.Sprintf("ref: Reduce: dst %v is not x %v with some axes reduced to 1", dst, x))
	}
	if op != core.ReduceSum && op != core.ReduceMax {
		panic(fmt.Sprintf("ref: Reduce: unknown op %d", op))
	}
	if accumulate && op != core.ReduceSum {
		panic("ref: Reduce: accumulate is only valid with ReduceSum")
	}
	acc := make([]float64, len(d))
	if op == core.ReduceMax {
		for i := range acc {
			acc[i] = math.Inf(-1)
		}
	}
	xShape := x.Shape()
	st := core.BroadcastStrides(dst.Shape(), xShape)
	for i, v := range xs {
		j := offset(i, xShape, st)
		if op == core.ReduceSum {
			acc[j] += v
		} else {
			acc[j] = math.Max(acc[j], v)
		}
	}
	for i := range d {
		if accumulate {
			d[i] += acc[i]
		} else {
			d[i] = acc[i]
		}
	}
}
