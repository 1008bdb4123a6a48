package cpu

import (
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

// headProducts multiplies per head of every sequence in one gemm call: operands in
// [N, H, L, L] (probabilities and their gradients: rows l apart, heads l·l apart) or
// [N, L, H·D] (activations: rows w apart, heads d apart, sequences l·w apart).
type headProducts struct {
	n, heads, l, d, w int
}

// operand is where one operand's entries lie: its leading dimension and its head and
// sequence strides.
type operand struct {
	s             []float32
	ld, head, seq int
}

func (hp headProducts) square(s []float32) operand {
	return operand{s, hp.l, hp.l * hp.l, hp.heads * hp.l * hp.l}
}

func (hp headProducts) acts(s []float32) operand { return operand{s, hp.w, hp.d, hp.l * hp.w} }

// mul computes c = alpha·op(a)·op(b) + beta·c for every head of every sequence, each
// product m×n over k.
func (hp headProducts) mul(transA, transB bool, m, n, k int, alpha float32, a, b operand, beta float32, c operand) {
	gemm.SgemmGrouped(transA, transB, m, n, k, alpha, a.s, a.ld, a.head, a.seq, b.s, b.ld, b.head, b.seq,
		beta, c.s, c.ld, c.head, c.seq, hp.heads, hp.n)
}

// AttentionForward implements core.FusedAttention.
func (b *Backend) AttentionForward(out, probs, q, k, v *core.Tensor, heads int, causal bool, scale float32) {
	n, l, d := core.AttentionShapes("cpu", "AttentionForward", probs, heads, q, k, v, out)
	w := heads * d
	od, pd := b.f32(out, "AttentionForward"), b.f32(probs, "AttentionForward")
	qd, kd, vd := b.in(q, "AttentionForward"), b.in(k, "AttentionForward"), b.in(v, "AttentionForward")
	if n*l == 0 {
		return
	}
	hp := headProducts{n, heads, l, d, w}
	hp.mul(false, true, l, l, d, scale, hp.acts(qd), hp.acts(kd), 0, hp.square(pd)) // scores = scale·q·kᵀ
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
	hp.mul(false, false, l, d, l, 1, hp.square(pd), hp.acts(vd), 0, hp.acts(od)) // out = p·v
}

// AttentionBackward implements core.FusedAttention.
func (b *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, probs *core.Tensor, heads int, scale float32, accQ, accK, accV bool) {
	n, l, d := core.AttentionShapes("cpu", "AttentionBackward", probs, heads, q, k, v, dout, dq, dk, dv)
	w := heads * d
	if n*l == 0 || (dq == nil && dk == nil && dv == nil) {
		return
	}
	op := "AttentionBackward"
	gd, pd := b.in(dout, op), b.in(probs, op)
	qd, kd, vd := b.in(q, op), b.in(k, op), b.in(v, op)
	hp := headProducts{n, heads, l, d, w}
	beta := func(acc bool) float32 {
		if acc {
			return 1
		}
		return 0
	}
	if dv != nil {
		hp.mul(true, false, l, d, l, 1, hp.square(pd), hp.acts(gd), beta(accV), hp.acts(b.f32(dv, op))) // dv = pᵀ·dout
	}
	if dq == nil && dk == nil {
		return
	}
	dp, ds := b.AllocUninit(probs.Shape()), b.AllocUninit(probs.Shape())
	defer b.Release(dp)
	defer b.Release(ds)
	hp.mul(false, true, l, l, d, 1, hp.acts(gd), hp.acts(vd), 0, hp.square(b.f32(dp, op))) // dp = dout·vᵀ
	// Masked positions have p = 0, so they get no gradient here.
	b.SoftmaxGrad(ds, probs, dp, false)
	dsd := b.f32(ds, op)
	if dq != nil {
		hp.mul(false, false, l, d, l, scale, hp.square(dsd), hp.acts(kd), beta(accQ), hp.acts(b.f32(dq, op))) // dq = scale·ds·k
	}
	if dk != nil {
		hp.mul(true, false, l, d, l, scale, hp.square(dsd), hp.acts(qd), beta(accK), hp.acts(b.f32(dk, op))) // dk = scale·dsᵀ·q
	}
}
