package cpu

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/cpu/gemm"
)

// FusesAttention reports whether autograd's MultiHeadAttention runs here as
// AttentionForward and AttentionBackward: each head's products read q, k and v in the
// projections' [N, L, H·D] layout through strides, so the four head permutes of each
// pass (copies of the whole activation) and the scores tensor beside the
// probabilities are gone. The products, the softmax and their order are the composed
// path's, so both give the same bits (TestFusedAttentionMatchesComposed). It is false
// with the device option attention=composed, and where products do not go through the
// gemm kernels (the openblas build tag, KADAPT_GEMM=none).
func (b *Backend) FusesAttention() bool {
	return !b.composedAttention && !systemBLAS && gemm.Kernel() != ""
}

// attentionShapes checks q, k, v (and out, dq, dk, dv where not nil) [N, L, H·D] and
// probs [N, H, L, L], and returns N, L, D and the row width H·D.
func attentionShapes(op string, probs *core.Tensor, heads int, qkv ...*core.Tensor) (n, l, d, w int) {
	s := qkv[0].Shape()
	if len(s) != 3 || heads <= 0 || s[2]%heads != 0 {
		panic(fmt.Sprintf("cpu: %s: q %v with %d heads, want [N, L, H·D]", op, s, heads))
	}
	for _, t := range qkv[1:] {
		if t != nil && !t.Shape().Equal(s) {
			panic(fmt.Sprintf("cpu: %s: operand %v differs from q %v", op, t.Shape(), s))
		}
	}
	n, l, w = s[0], s[1], s[2]
	if !probs.Shape().Equal(core.Shape{n, heads, l, l}) {
		panic(fmt.Sprintf("cpu: %s: probs %v, want [%d, %d, %d, %d]", op, probs.Shape(), n, heads, l, l))
	}
	return n, l, w / heads, w
}

// headProducts locates one sequence's heads in the two layouts attention multiplies:
// [N, H, L, L] (probabilities and their gradients: rows l apart, heads l·l apart) and
// [N, L, H·D] (activations: rows w apart, heads d apart). Each product is one gemm
// batch over a sequence's heads.
type headProducts struct {
	n, heads, l, d, w int
}

// square is one sequence's [H, L, L] block of a probabilities-shaped operand.
func (hp headProducts) square(s []float32, i int) []float32 { return s[i*hp.heads*hp.l*hp.l:] }

// rows is one sequence's [L, H·D] block of an activation-shaped operand.
func (hp headProducts) rows(s []float32, i int) []float32 { return s[i*hp.l*hp.w:] }

// AttentionForward implements core.FusedAttention.
func (b *Backend) AttentionForward(out, probs, q, k, v *core.Tensor, heads int, causal bool, scale float32) {
	n, l, d, w := attentionShapes("AttentionForward", probs, heads, q, k, v, out)
	od, pd := b.f32(out, "AttentionForward"), b.f32(probs, "AttentionForward")
	qd, kd, vd := b.in(q, "AttentionForward"), b.in(k, "AttentionForward"), b.in(v, "AttentionForward")
	if n*l == 0 {
		return
	}
	hp := headProducts{n, heads, l, d, w}
	ll := l * l
	for i := 0; i < n; i++ {
		// scores_h = scale·q_h·k_hᵀ
		gemm.SgemmStrided(false, true, l, l, d, scale, hp.rows(qd, i), w, d, hp.rows(kd, i), w, d,
			nil, 0, hp.square(pd, i), l, ll, heads)
	}
	if causal {
		ninf := float32(math.Inf(-1))
		for r := 0; r < n*heads*l; r++ {
			row := pd[r*l : (r+1)*l]
			for j := r%l + 1; j < l; j++ {
				row[j] += ninf // as the composed path adds its mask, NaN and +Inf included
			}
		}
	}
	forEach(softmaxKernel{d: pd, x: pd, cols: l}, n*heads*l, l)
	for i := 0; i < n; i++ {
		// out_h = p_h·v_h
		gemm.SgemmStrided(false, false, l, d, l, 1, hp.square(pd, i), l, ll, hp.rows(vd, i), w, d,
			nil, 0, hp.rows(od, i), w, d, heads)
	}
}

// AttentionBackward implements core.FusedAttention.
func (b *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, probs *core.Tensor, heads int, scale float32, accQ, accK, accV bool) {
	n, l, d, w := attentionShapes("AttentionBackward", probs, heads, q, k, v, dout, dq, dk, dv)
	if n*l == 0 || (dq == nil && dk == nil && dv == nil) {
		return
	}
	op := "AttentionBackward"
	gd, pd := b.in(dout, op), b.in(probs, op)
	qd, kd, vd := b.in(q, op), b.in(k, op), b.in(v, op)
	hp := headProducts{n, heads, l, d, w}
	ll := l * l
	beta := func(acc bool) float32 {
		if acc {
			return 1
		}
		return 0
	}
	if dv != nil {
		dvd := b.f32(dv, op)
		for i := 0; i < n; i++ {
			// dv_h = p_hᵀ·dout_h
			gemm.SgemmStrided(true, false, l, d, l, 1, hp.square(pd, i), l, ll, hp.rows(gd, i), w, d,
				nil, beta(accV), hp.rows(dvd, i), w, d, heads)
		}
	}
	if dq == nil && dk == nil {
		return
	}
	dp, ds := b.AllocUninit(probs.Shape()), b.AllocUninit(probs.Shape())
	defer b.Release(dp)
	defer b.Release(ds)
	dpd, dsd := b.f32(dp, op), b.f32(ds, op)
	for i := 0; i < n; i++ {
		// dp_h = dout_h·v_hᵀ
		gemm.SgemmStrided(false, true, l, l, d, 1, hp.rows(gd, i), w, d, hp.rows(vd, i), w, d,
			nil, 0, hp.square(dpd, i), l, ll, heads)
	}
	// Masked positions have p = 0, so they get no gradient here.
	b.SoftmaxGrad(ds, probs, dp, false)
	if dq != nil {
		dqd := b.f32(dq, op)
		for i := 0; i < n; i++ {
			// dq_h = scale·ds_h·k_h
			gemm.SgemmStrided(false, false, l, d, l, scale, hp.square(dsd, i), l, ll, hp.rows(kd, i), w, d,
				nil, beta(accQ), hp.rows(dqd, i), w, d, heads)
		}
	}
	if dk != nil {
		dkd := b.f32(dk, op)
		for i := 0; i < n; i++ {
			// dk_h = scale·ds_hᵀ·q_h
			gemm.SgemmStrided(true, false, l, d, l, scale, hp.square(dsd, i), l, ll, hp.rows(qd, i), w, d,
				nil, beta(accK), hp.rows(dkd, i), w, d, heads)
		}
	}
}
