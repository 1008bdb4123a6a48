package autograd

import (
	"github.com/kadapt/kadapt/core"
)

// reduceShapes normalises axes (nil = all, negative counts from the end) and returns
// the shape with reduced axes kept as 1 and the shape of the result.
func reduceShapes(op string, x core.Shape, axes []int, keepDims bool) (keep, out core.Shape) {
	keep = x.Clone()
	if axes == nil {
		for i := range keep {
			keep[i] = 1
		}
		if keepDims {
			return keep, keep
		}
		return keep, core.Shape{}
	}
	reduced := make([]bool, len(x))
	for _, a := range axes {
		ax := a
		if ax < 0 {
			ax += len(x)
		}
		if ax < 0 || ax >= len(x) {
			shapePanic(op, "axis %d out of range for shape %v", a, x)
		}
		if reduced[ax] {
			shapePanic(op, "axis %d repeated in %v", a, axes)
		}
		reduced[ax] = true
		keep[ax] = 1
	}
	if keepDims {
		return keep, keep
	}
	out = core.Shape{}
	for i, d := range x {
		if !reduced[i] {
			out = append(out, d)
		}
	}
	return keep, out
}

func (tp *Tape) reduce(name string, op core.ReduceOp, x *Var, axes []int, keepDims bool, alpha float32) (*core.Tensor, core.Shape) {
	keep, out := reduceShapes(name, x.Shape(), axes, keepDims)
	y := tp.output(keep)
	if alpha == 1 {
		tp.b.Reduce(op, y, x.Value, false)
	} else {
		tmp := tp.scratch(keep)
		tp.b.Reduce(op, tmp, x.Value, false)
		tp.b.Axpby(y, alpha, tmp, 0)
		tp.b.Release(tmp)
	}
	if !keep.Equal(out) {
		y = y.Reshape(out...)
	}
	return y, keep
}

// Sum sums x over axes (nil = all axes; negative axes count from the end).
func (tp *Tape) Sum(x *Var, axes []int, keepDims bool) *Var {
	y, keep := tp.reduce("sum", core.ReduceSum, x, axes, keepDims, 1)
	var v *Var
	v = tp.nodeSaving("sum", y, nil, func() { tp.expandInto(x, v.Grad.Reshape(keep...), 1) }, x)
	return v
}

// Mean averages x over axes (nil = all axes).
func (tp *Tape) Mean(x *Var, axes []int, keepDims bool) *Var {
	xs := x.Shape()
	keep, _ := reduceShapes("mean", xs, axes, keepDims)
	alpha := float32(float64(keep.Size()) / float64(xs.Size()))
	y, _ := tp.reduce("mean", core.ReduceSum, x, axes, keepDims, alpha)
	var v *Var
	v = tp.nodeSaving("mean", y, nil, func() { tp.expandInto(x, v.Grad.Reshape(keep...), alpha) }, x)
	return v
}

// Max takes the maximum over axes (nil = all axes). As with torch.amax, the gradient
// is split equally among tied maxima.
func (tp *Tape) Max(x *Var, axes []int, keepDims bool) *Var {
	y, keep := tp.reduce("max", core.ReduceMax, x, axes, keepDims, 1)
	var v *Var
	v = tp.node("max", y, func() {
		bk, xs := tp.b, x.Shape()
		yk, dy := v.Value.Reshape(keep...), v.Grad.Reshape(keep...)
		mask, cnt, w := tp.scratch(xs), tp.scratch(keep), tp.scratch(keep)
		bk.Binary(core.Equal, mask, x.Value, yk)
		bk.Reduce(core.ReduceSum, cnt, mask, false)
		bk.Binary(core.Div, w, dy, cnt)
		tp.accumulate(x, xs, 1, func(dst *core.Tensor) { bk.Binary(core.Mul, dst, mask, w) })
		bk.Release(mask)
		bk.Release(cnt)
		bk.Release(w)
	}, x)
	return v
}

// expandInto adds alpha·dy, broadcast from its kept-dims shape to x's shape, into x's
// gradient. When the reduced axes form one contiguous block the broadcast is a matrix
// product with a vector of ones, which needs no temporary of x's size.
func (tp *Tape) expandInto(x *Var, dy *core.Tensor, alpha float32) {
	g, fresh := tp.gradOf(x)
	bk, xs, ks := tp.b, x.Shape(), dy.Shape()
	if g.Size() == dy.Size() {
		bk.Axpby(g, alpha, dy, beta(fresh))
		return
	}
	if dy.Size() == 1 {
		// Every axis was reduced (the usual loss): a fill scaled by the device scalar
		// costs one pass and no product.
		dst := g
		if !fresh {
			dst = tp.scratch(xs)
		}
		bk.Fill(dst, alpha)
		bk.ScaleBy(dst, dy.Reshape(1), 1)
		if !fresh {
			bk.Axpby(g, 1, dst, 1)
			bk.Release(dst)
		}
		return
	}
	first, last := -1, -1
	for i := range xs {
		if ks[i] != xs[i] {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	contiguous := true
	for i := first; i <= last; i++ {
		if ks[i] == xs[i] && xs[i] != 1 {
			contiguous = false
		}
	}
	if !contiguous {
		zero, tmp := tp.scratch(xs), tp.scratch(xs)
		bk.Binary(core.Add, tmp, zero, dy)
		bk.Axpby(g, alpha, tmp, beta(fresh))
		bk.Release(zero)
		bk.Release(tmp)
		return
	}
	pre, r, post := xs[:first].Size(), xs[first:last+1].Size(), xs[last+1:].Size()
	switch {
	case post == 1:
		ones := tp.ones(1, r)
		bk.MatMul(g.Reshape(pre, r), dy.Reshape(pre, 1), ones, false, false, alpha, beta(fresh))
		bk.Release(ones)
	case pre == 1:
		ones := tp.ones(r, 1)
		bk.MatMul(g.Reshape(r, post), ones, dy.Reshape(1, post), false, false, alpha, beta(fresh))
		bk.Release(ones)
	default:
		ones := tp.ones(r, 1)
		bk.MatMul(g.Reshape(pre, r, post), ones, dy.Reshape(pre, 1, post), false, false, alpha, beta(fresh))
		bk.Release(ones)
	}
}
