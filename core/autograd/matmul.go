package autograd

import (
	"math"

	"github.com/kadapt/kadapt/core"
)

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
	if bias != nil && !biasLater {
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

// PatchEmbed is the non-overlapping convolution of a ViT's patch embedding: x
// [N,C,H,W] with w [D,C,P,P] and bias [D] (or nil) gives [N, (H/P)·(W/P), D], patches in
// row-major order like PyTorch's conv followed by flatten(2).transpose(1, 2). It cuts x
// into patches with a reshape and a permute (im2col) and multiplies once.
func (tp *Tape) PatchEmbed(x, w, bias *Var, patch int) *Var {
	xs, ws := x.Shape(), w.Shape()
	if patch <= 0 || len(xs) != 4 || len(ws) != 4 || ws[1] != xs[1] || ws[2] != patch || ws[3] != patch ||
		xs[2]%patch != 0 || xs[3]%patch != 0 {
		shapePanic("patch_embed", "x %v, weight %v, patch %d (want x [N,C,H,W], weight [D,C,P,P], H and W multiples of P)", xs, ws, patch)
	}
	nb, c, gh, gw, d := xs[0], xs[1], xs[2]/patch, xs[3]/patch, ws[0]
	p := tp.Reshape(x, nb, c, gh, patch, gw, patch)
	p = tp.Permute(p, 0, 2, 4, 1, 3, 5)
	p = tp.Reshape(p, nb*gh*gw, c*patch*patch)
	y := tp.Linear(p, tp.Reshape(w, d, c*patch*patch), bias)
	return tp.Reshape(y, nb, gh*gw, d)
}

// Attention returns softmax(q·kᵀ·scale + mask)·v for q [B,H,Lq,Dh], k [B,H,Lk,Dh] and
// v [B,H,Lk,Dv]; the causal mask puts -inf above the diagonal. Only the attention
// probabilities are kept for the backward pass.
func (tp *Tape) Attention(q, k, v *Var, causal bool, scale float32) *Var {
	qs, ks, vs := q.Shape(), k.Shape(), v.Shape()
	if len(qs) != 4 || len(ks) != 4 || len(vs) != 4 || qs[0] != ks[0] || qs[1] != ks[1] || qs[3] != ks[3] ||
		vs[0] != ks[0] || vs[1] != ks[1] || vs[2] != ks[2] || (causal && qs[2] != ks[2]) {
		shapePanic("attention", "q %v, k %v, v %v (want [B,H,L,Dh] each, equal L when causal)", qs, ks, vs)
	}
	bk := tp.b
	lq, lk := qs[2], ks[2]
	ss := core.Shape{qs[0], qs[1], lq, lk}
	s := tp.scratch(ss)
	bk.MatMul(s, q.Value, k.Value, false, true, scale, 0)
	if causal {
		host := tp.hostBuf(lq * lk)
		ninf := float32(math.Inf(-1))
		for i := range lq {
			for j := range lk {
				host[i*lk+j] = 0
				if j > i {
					host[i*lk+j] = ninf
				}
			}
		}
		mask, masked := tp.scratch(core.Shape{lq, lk}), tp.scratch(ss)
		bk.Upload(mask, host)
		bk.Binary(core.Add, masked, s, mask)
		bk.Release(mask)
		bk.Release(s)
		s = masked
	}
	p, keep := tp.attentionProbs(ss, q, k, v)
	bk.Softmax(p, s)
	bk.Release(s)
	out := tp.output(core.Shape{qs[0], qs[1], lq, vs[3]})
	bk.MatMul(out, p, v.Value, false, false, 1, 0)
	if !keep {
		bk.Release(p)
	}
	var o *Var
	o = tp.nodeSaving("attention", out, []*core.Tensor{q.Value, k.Value, v.Value, p}, func() {
		dout := o.Grad
		if needs(v) {
			g, fresh := tp.gradOf(v)
			bk.MatMul(g, p, dout, true, false, 1, beta(fresh))
		}
		if !needs(q) && !needs(k) {
			return
		}
		dp, ds := tp.scratch(ss), tp.scratch(ss)
		bk.MatMul(dp, dout, v.Value, false, true, 1, 0)
		// Masked positions have p = 0, so they get no gradient here.
		bk.SoftmaxGrad(ds, p, dp, false)
		bk.Release(dp)
		if needs(q) {
			g, fresh := tp.gradOf(q)
			bk.MatMul(g, ds, k.Value, false, false, scale, beta(fresh))
		}
		if needs(k) {
			g, fresh := tp.gradOf(k)
			bk.MatMul(g, ds, q.Value, true, false, scale, beta(fresh))
		}
		bk.Release(ds)
	}, q, k, v)
	return o
}

// attentionProbs allocates the attention probabilities: a tape value when a backward
// pass may need them (keep), else a scratch tensor the caller releases.
func (tp *Tape) attentionProbs(shape core.Shape, q, k, v *Var) (p *core.Tensor, keep bool) {
	if !tp.noGrad && (needs(q) || needs(k) || needs(v)) {
		return tp.output(shape), true
	}
	return tp.scratch(shape), false
}

// MultiHeadAttention is self-attention with heads over q, k and v [N, L, H·Dh], the
// layout of the q, k and v projections, returning [N, L, H·Dh]: per head h,
// softmax(q_h·k_hᵀ·scale + mask)·v_h on columns h·Dh to (h+1)·Dh. A backend with
// core.FusedAttention runs it as one kernel per pass, without head permutes; others
// permute the heads out, use Attention and permute back, which computes the same.
func (tp *Tape) MultiHeadAttention(q, k, v *Var, heads int, causal bool, scale float32) *Var {
	s := q.Shape()
	if len(s) != 3 || heads <= 0 || s[2]%heads != 0 || !k.Shape().Equal(s) || !v.Shape().Equal(s) {
		shapePanic("multi_head_attention", "q %v, k %v, v %v with %d heads (want equal [N, L, H·Dh])", s, k.Shape(), v.Shape(), heads)
	}
	n, l, w := s[0], s[1], s[2]
	dh := w / heads
	fused, ok := tp.b.(core.FusedAttention)
	if !ok || !fused.FusesAttention() {
		split := func(t *Var) *Var { return tp.Permute(tp.Reshape(t, n, l, heads, dh), 0, 2, 1, 3) }
		a := tp.Attention(split(q), split(k), split(v), causal, scale)
		return tp.Reshape(tp.Permute(a, 0, 2, 1, 3), n, l, w)
	}
	p, keep := tp.attentionProbs(core.Shape{n, heads, l, l}, q, k, v)
	out := tp.output(s)
	fused.AttentionForward(out, p, q.Value, k.Value, v.Value, heads, causal, scale)
	if !keep {
		tp.b.Release(p)
	}
	var o *Var
	o = tp.nodeSaving("multi_head_attention", out, []*core.Tensor{q.Value, k.Value, v.Value, p}, func() {
		var dq, dk, dv *core.Tensor
		var freshQ, freshK, freshV bool
		if needs(q) {
			dq, freshQ = tp.gradOf(q)
		}
		if needs(k) {
			dk, freshK = tp.gradOf(k)
		}
		if needs(v) {
			dv, freshV = tp.gradOf(v)
		}
		fused.AttentionBackward(dq, dk, dv, o.Grad, q.Value, k.Value, v.Value, p, heads, scale, !freshQ, !freshK, !freshV)
	}, q, k, v)
	return o
}
