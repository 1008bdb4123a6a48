package autograd

import "github.com/kadapt/kadapt/core"

// matmulShape checks op(a)·op(b) and returns the output shape and its batch rank.
func matmulShape(op string, as, bs core.Shape, transA, transB bool) core.Shape {
	if len(as) < 2 || len(bs) < 2 {
		shapePanic(op, "operands %v and %v need rank >= 2", as, bs)
	}
	ab, bb := as[:len(as)-2], bs[:len(bs)-2]
	m, k := as[len(as)-2], as[len(as)-1]
	if transA {
		m, k = k, m
	}
	kb, n := bs[len(bs)-2], bs[len(bs)-1]
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		shapePanic(op, "inner sizes differ: %v (transA %v) × %v (transB %v)", as, transA, bs, transB)
	}
	if len(ab) > 0 && len(bb) > 0 && !ab.Equal(bb) {
		shapePanic(op, "batch axes of %v and %v differ (they must be equal or absent on one side)", as, bs)
	}
	batch := ab
	if len(bb) > 0 {
		batch = bb
	}
	out := append(batch.Clone(), m, n)
	return out
}

// MatMul returns op(a)·op(b) over the last two axes, op transposing when its flag is
// set. Batch axes must be equal or absent on one side, whose operand is then shared by
// every batch entry (its gradient sums over the batch).
func (tp *Tape) MatMul(a, b *Var, transA, transB bool) *Var {
	out := matmulShape("matmul", a.Shape(), b.Shape(), transA, transB)
	y := tp.output(out)
	tp.b.MatMul(y, a.Value, b.Value, transA, transB, 1, 0)
	var v *Var
	v = tp.nodeSaving("matmul", y, crossSaves(a, b), func() {
		dy := v.Grad
		// dA and dB as products (x, y, transX, transY) of the stored tensors, by case.
		if needs(a) {
			switch {
			case !transA && !transB:
				tp.matmulGrad(a, dy, b.Value, false, true)
			case transA && !transB:
				tp.matmulGrad(a, b.Value, dy, false, true)
			case !transA && transB:
				tp.matmulGrad(a, dy, b.Value, false, false)
			default:
				tp.matmulGrad(a, b.Value, dy, true, true)
			}
		}
		if needs(b) {
			switch {
			case !transA && !transB:
				tp.matmulGrad(b, a.Value, dy, true, false)
			case transA && !transB:
				tp.matmulGrad(b, a.Value, dy, false, false)
			case !transA && transB:
				tp.matmulGrad(b, dy, a.Value, true, false)
			default:
				tp.matmulGrad(b, dy, a.Value, true, true)
			}
		}
	}, a, b)
	return v
}

// matmulGrad adds op(x)·op(y) into t's gradient. When t is shared across a batch that
// x or y carries, the per-batch products are summed: as one flat product when the
// contraction runs over the stored rows of both, else through a temporary and Reduce.
func (tp *Tape) matmulGrad(t *Var, x, y *core.Tensor, tx, ty bool) {
	g, fresh := tp.gradOf(t)
	if g.Rank() >= x.Rank() && g.Rank() >= y.Rank() {
		tp.b.MatMul(g, x, y, tx, ty, 1, beta(fresh))
		return
	}
	if tx && !ty && x.Rank() > 2 && y.Rank() > 2 {
		xr, yr := x.Shape()[x.Rank()-1], y.Shape()[y.Rank()-1]
		tp.b.MatMul(g, x.Reshape(-1, xr), y.Reshape(-1, yr), true, false, 1, beta(fresh))
		return
	}
	ts := g.Shape()
	batch := x.Shape()[:x.Rank()-2]
	if y.Rank() > x.Rank() {
		batch = y.Shape()[:y.Rank()-2]
	}
	full := append(batch.Clone(), ts[len(ts)-2], ts[len(ts)-1])
	tmp := tp.scratch(full)
	tp.b.MatMul(tmp, x, y, tx, ty, 1, 0)
	tp.reduceInto(g, fresh, tmp, 1)
	tp.b.Release(tmp)
}

// Linear returns x·wᵀ + bias for x [..., in], w [out, in] and bias [out] (or nil). A
// frozen w costs only the input gradient.
func (tp *Tape) Linear(x, w, bias *Var) *Var { return tp.linear(x, w, bias, false) }

// LinearAct returns op(x·wᵀ + bias). Where the backend has core.FusedEpilogues the
// bias and the activation are one pass over the output; the tape records the same
// linear and activation nodes either way.
func (tp *Tape) LinearAct(x, w, bias *Var, op core.UnaryOp) *Var {
	fused, ok := tp.b.(core.FusedEpilogues)
	if !ok || bias == nil {
		return tp.Unary(op, tp.Linear(x, w, bias))
	}
	pre := tp.linear(x, w, bias, true)
	y := tp.output(pre.Shape())
	fused.BiasActivation(op, y, pre.Value, bias.Value)
	return tp.unaryNode(op, pre, y)
}

// linear is Linear; with biasLater the bias is left for the caller to add to the
// output (a fused epilogue), though its gradient is still this node's.
func (tp *Tape) linear(x, w, bias *Var, biasLater bool) *Var {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) < 1 || len(ws) != 2 || xs[len(xs)-1] != ws[1] {
		shapePanic("linear", "x %v and weight %v (want x [..., in], weight [out, in])", xs, ws)
	}
	in, outF := ws[1], ws[0]
	if bias != nil && (bias.Value.Rank() != 1 || bias.Shape()[0] != outF) {
		shapePanic("linear", "bias %v for weight %v (want [%d])", bias.Shape(), ws, outF)
	}
	rows := x.Value.Size() / in
	out := append(xs[:len(xs)-1].Clone(), outF)
	y := tp.output(out)
	x2, y2 := x.Value.Reshape(rows, in), y.Reshape(rows, outF)
	biased, fusedBias := tp.b.(core.BiasedMatMul)
	if bias != nil && !biasLater && fusedBias {
		biased.MatMulBias(y2, x2, w.Value, bias.Value, false, true, 1, 0)
	} else if bias != nil && !biasLater {
		// Broadcasting the bias as a rank-1 product lets the main product accumulate
		// onto it (beta = 1) without a temporary of the output's size.
		ones := tp.ones(rows, 1)
		tp.b.MatMul(y2, ones, bias.Value.Reshape(1, outF), false, false, 1, 0)
		tp.b.Release(ones)
		tp.b.MatMul(y2, x2, w.Value, false, true, 1, 1)
	} else {
		tp.b.MatMul(y2, x2, w.Value, false, true, 1, 0)
	}
	var v *Var
	v = tp.nodeSaving("linear", y, crossSaves(x, w), func() {
		dy2 := v.Grad.Reshape(rows, outF)
		if needs(x) {
			g, fresh := tp.gradOf(x)
			tp.b.MatMul(g.Reshape(rows, in), dy2, w.Value, false, false, 1, beta(fresh))
		}
		if needs(w) {
			g, fresh := tp.gradOf(w)
			tp.b.MatMul(g, dy2, x2, true, false, 1, beta(fresh))
		}
		if needs(bias) {
			g, fresh := tp.gradOf(bias)
			tp.reduceInto(g, fresh, dy2, 1)
		}
	}, x, w, bias)
	return v
}

// Outer returns the outer product a·bᵀ of a [m] and b [n], [m, n].
func (tp *Tape) Outer(a, b *Var) *Var {
	if a.Value.Rank() != 1 || b.Value.Rank() != 1 {
		shapePanic("outer", "operands %v and %v must be vectors", a.Shape(), b.Shape())
	}
	return tp.MatMul(tp.Reshape(a, -1, 1), tp.Reshape(b, 1, -1), false, false)
}

// Kron returns the Kronecker product of a [p,q] and b [r,s], [p·r, q·s].
func (tp *Tape) Kron(a, b *Var) *Var {
	as, bs := a.Shape(), b.Shape()
	if len(as) != 2 || len(bs) != 2 {
		shapePanic("kron", "operands %v and %v must be matrices", as, bs)
	}
	return tp.KronSum(tp.Reshape(a, 1, as[0], as[1]), tp.Reshape(b, 1, bs[0], bs[1]))
}

// KronSum returns Σ_i a_i ⊗ b_i for a [n,p,q] and b [n,r,s], [p·r, q·s]. Permuted to
// [p,q,r,s] the sum is the single product A_flatᵀ·B_flat of A_flat [n, p·q] and B_flat
// [n, r·s], so it runs at matrix-product speed on every backend; its gradients are
// dA_flat = B_flat·Gᵀ and dB_flat = A_flat·G.
func (tp *Tape) KronSum(a, b *Var) *Var {
	as, bs := a.Shape(), b.Shape()
	if len(as) != 3 || len(bs) != 3 || as[0] != bs[0] {
		shapePanic("kron_sum", "operands %v and %v must be [n,p,q] and [n,r,s]", as, bs)
	}
	n, p, q, r, s := as[0], as[1], as[2], bs[1], bs[2]
	y := tp.MatMul(tp.Reshape(a, n, p*q), tp.Reshape(b, n, r*s), true, false)
	y = tp.Permute(tp.Reshape(y, p, q, r, s), 0, 2, 1, 3)
	return tp.Reshape(y, p*r, q*s)
}
