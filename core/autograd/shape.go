package autograd

import (
	"github.com/kadapt/kadapt/core"
)

// Reshape returns a view of x with a new shape (one -1 is inferred). The view shares
// x's storage and its gradient is x's gradient reshaped, so it costs no copy either way.
func (tp *Tape) Reshape(x *Var, shape ...int) *Var {
	s, err := core.InferShape(x.Value.Size(), shape)
	if err != nil {
		shapePanic("reshape", "%v to %v: %v", x.Shape(), shape, err)
	}
	v := &Var{Value: x.Value.Reshape(s...), Name: "reshape"}
	if !tp.noGrad && x.RequiresGrad() {
		v.requiresGrad = true
		v.view = x
		// Recorded only so that Backward and Reset clear its gradient handle.
		tp.nodes = append(tp.nodes, v)
	}
	return v
}

// Permute reorders x's axes: output axis i is x's axis perm[i].
func (tp *Tape) Permute(x *Var, perm ...int) *Var {
	xs := x.Shape()
	if len(perm) != len(xs) {
		shapePanic("permute", "perm %v for shape %v", perm, xs)
	}
	seen := make([]bool, len(perm))
	out := make(core.Shape, len(perm))
	inv := make([]int, len(perm))
	for i, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] {
			shapePanic("permute", "perm %v is not a permutation of the axes of %v", perm, xs)
		}
		seen[p] = true
		out[i] = xs[p]
		inv[p] = i
	}
	y := tp.output(out)
	tp.b.Permute(y, x.Value, perm)
	var v *Var
	v = tp.nodeSaving("permute", y, nil, func() {
		tp.accumulate(x, xs, 1, func(dst *core.Tensor) { tp.b.Permute(dst, v.Grad, inv) })
	}, x)
	return v
}

// Transpose swaps axes i and j (negative axes count from the end).
func (tp *Tape) Transpose(x *Var, i, j int) *Var {
	r := x.Value.Rank()
	ii, jj := i, j
	if ii < 0 {
		ii += r
	}
	if jj < 0 {
		jj += r
	}
	if ii < 0 || ii >= r || jj < 0 || jj >= r {
		shapePanic("transpose", "axes %d, %d out of range for shape %v", i, j, x.Shape())
	}
	perm := make([]int, r)
	for k := range perm {
		perm[k] = k
	}
	perm[ii], perm[jj] = jj, ii
	return tp.Permute(x, perm...)
}

func normAxis(op string, axis, rank int, s core.Shape) int {
	a := axis
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		shapePanic(op, "axis %d out of range for shape %v", axis, s)
	}
	return a
}

// Concat joins xs along axis; all other axes must agree.
func (tp *Tape) Concat(axis int, xs ...*Var) *Var {
	if len(xs) == 0 {
		shapePanic("concat", "no inputs")
	}
	s0 := xs[0].Shape()
	ax := normAxis("concat", axis, len(s0), s0)
	out := s0.Clone()
	out[ax] = 0
	for _, x := range xs {
		s := x.Shape()
		ok := len(s) == len(s0)
		for i := 0; ok && i < len(s); i++ {
			ok = i == ax || s[i] == s0[i]
		}
		if !ok {
			shapes := make([]core.Shape, len(xs))
			for i, x := range xs {
				shapes[i] = x.Shape()
			}
			shapePanic("concat", "shapes %v do not agree off axis %d", shapes, axis)
		}
		out[ax] += s[ax]
	}
	y := tp.output(out) // the parts cover it
	off := 0
	for _, x := range xs {
		n := x.Shape()[ax]
		tp.b.CopyAlong(y, x.Value, ax, off, 0, n, false)
		off += n
	}
	var v *Var
	v = tp.nodeSaving("concat", y, nil, func() {
		off := 0
		for _, x := range xs {
			n := x.Shape()[ax]
			if needs(x) {
				g, fresh := tp.gradOf(x)
				tp.b.CopyAlong(g, v.Grad, ax, 0, off, n, !fresh)
			}
			off += n
		}
	}, xs...)
	return v
}

// Slice returns x[..., start:end, ...] along axis.
func (tp *Tape) Slice(x *Var, axis, start, end int) *Var {
	xs := x.Shape()
	ax := normAxis("slice", axis, len(xs), xs)
	if start < 0 || end > xs[ax] || start >= end {
		shapePanic("slice", "[%d:%d] along axis %d of shape %v", start, end, axis, xs)
	}
	out := xs.Clone()
	out[ax] = end - start
	y := tp.output(out)
	tp.b.CopyAlong(y, x.Value, ax, 0, start, end-start, false)
	var v *Var
	v = tp.nodeSaving("slice", y, nil, func() {
		// Only the slice's part of x's gradient is written: the rest must be zero.
		tp.b.CopyAlong(tp.gradZeroed(x), v.Grad, ax, start, 0, end-start, true)
	}, x)
	return v
}

// IndexSelect gathers x[..., idx[i], ...] along axis. idx is a caller-owned rank-1
// tensor of integral values that must stay valid until Backward; out-of-range indices
// panic naming the position at fault (on a core.DeferredIndexChecks backend, the next
// Sync or Download reports them instead).
func (tp *Tape) IndexSelect(x *Var, axis int, idx *core.Tensor) *Var {
	xs := x.Shape()
	ax := normAxis("index_select", axis, len(xs), xs)
	if idx.Rank() != 1 {
		shapePanic("index_select", "index shape %v is not rank 1 (x %v)", idx.Shape(), xs)
	}
	tp.checkIndices("index_select", "index", idx, xs[ax])
	out := xs.Clone()
	out[ax] = idx.Size()
	y := tp.output(out)
	tp.b.Gather(y, x.Value, idx, ax)
	var v *Var
	v = tp.nodeSaving("index_select", y, nil, func() {
		tp.b.ScatterAdd(tp.gradZeroed(x), v.Grad, idx, ax)
	}, x)
	return v
}
