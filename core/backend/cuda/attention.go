//go:build cuda

package cuda

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// attentionThreads is the block size of the fused attention kernels: four warps,
// enough to cover a 50-token head's rows without leaving most threads idle.
const attentionThreads = 128

// attentionShapes is core.AttentionShapes plus the grid's bound on N·H.
func attentionShapes(op string, probs *core.Tensor, heads int, qkv ...*core.Tensor) (n, l, d int) {
	n, l, d = core.AttentionShapes("cuda", op, probs, heads, qkv...)
	if n*heads > maxGridX {
		panic(fmt.Sprintf("cuda: %s: %d sequences × %d heads exceed the grid", op, n, heads))
	}
	return n, l, d
}

// FusesAttention is false when the device was opened with attention=composed.
func (b *Backend) FusesAttention() bool { return !b.composed }

// AttentionForward implements core.FusedAttention with k_mha_fwd.
func (b *Backend) AttentionForward(out, probs, q, k, v *core.Tensor, heads int, causal bool, scale float32) {
	n, l, d := attentionShapes("AttentionForward", probs, heads, q, k, v, out)
	if n*l == 0 || d == 0 {
		b.Fill(out, 0)
		return
	}
	a := newArgs().ptr("out", b.p(out, "AttentionForward")).ptr("probs", b.p(probs, "AttentionForward")).
		ptr("q", b.p(q, "AttentionForward")).ptr("k", b.p(k, "AttentionForward")).ptr("v", b.p(v, "AttentionForward")).
		i32("L", l).i32("H", heads).i32("D", d).flag("causal", causal).f32("scale", scale).flag("bf16", b.Precision() == BF16)
	b.fail(b.d.launch("k_mha_fwd", n*heads, 1, 1, attentionThreads, 1, a))
}

// AttentionBackward implements core.FusedAttention with k_mha_bwd.
func (b *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, probs *core.Tensor, heads int, scale float32, accQ, accK, accV bool) {
	n, l, d := attentionShapes("AttentionBackward", probs, heads, q, k, v, dout, dq, dk, dv)
	if n*l == 0 || d == 0 || (dq == nil && dk == nil && dv == nil) {
		return
	}
	var ds *core.Tensor
	if dq != nil || dk != nil {
		ds = b.AllocUninit(probs.Shape())
	}
	a := newArgs().ptr("dq", b.p(dq, "AttentionBackward")).ptr("dk", b.p(dk, "AttentionBackward")).
		ptr("dv", b.p(dv, "AttentionBackward")).ptr("ds", b.p(ds, "AttentionBackward")).
		ptr("dout", b.p(dout, "AttentionBackward")).ptr("q", b.p(q, "AttentionBackward")).
		ptr("k", b.p(k, "AttentionBackward")).ptr("v", b.p(v, "AttentionBackward")).
		ptr("probs", b.p(probs, "AttentionBackward")).i32("L", l).i32("H", heads).i32("D", d).f32("scale", scale).
		flag("accQ", accQ).flag("accK", accK).flag("accV", accV).flag("bf16", b.Precision() == BF16)
	b.fail(b.d.launch("k_mha_bwd", n*heads, 1, 1, attentionThreads, 1, a))
	if ds != nil {
		b.Release(ds)
	}
}
