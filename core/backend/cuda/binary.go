//go:build cuda

package cuda

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

func (b *Backend) Binary(op core.BinaryOp, dst, a, bt *core.Tensor) {
	if op > core.Equal {
		panic(fmt.Sprintf("cuda: Binary: unknown op %d", op))
	}
	out, err := core.BroadcastShape(a.Shape(), bt.Shape())
	if err != nil || !out.Equal(dst.Shape()) {
		panic(fmt.Sprintf("cuda: Binary %v: dst %v is not the broadcast of a %v and b %v", op, dst.Shape(), a.Shape(), bt.Shape()))
	}
	n := out.Size()
	pd, pa, pb := b.p(dst, "Binary"), b.p(a, "Binary"), b.p(bt, "Binary")
	na, okA := suffixLen(a.Shape(), out)
	nb, okB := suffixLen(bt.Shape(), out)
	if okA && okB {
		b.launch("k_binary_suffix", n, newArgs().i32("op", int(op)).ptr("d", pd).ptr("a", pa).ptr("b", pb).i64("n", n).
			i64("na", max(na, 1)).i64("nb", max(nb, 1)))
		return
	}
	if len(out) > maxRank {
		panic(fmt.Sprintf("cuda: Binary %v: rank %d exceeds the supported %d", op, len(out), maxRank))
	}
	b.launch("k_binary", n, newArgs().i32("op", int(op)).ptr("d", pd).ptr("a", pa).ptr("b", pb).
		idx("ix", out, core.BroadcastStrides(a.Shape(), out), core.BroadcastStrides(bt.Shape(), out)).i64("n", n))
}
