package autograd

import (
	"math"

	"github.com/kadapt/kadapt/core"
)

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
