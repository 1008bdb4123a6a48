//go:build cuda

package cuda

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// checkLen panics unless t is nil or has want elements.
func checkLen(op, role string, t *core.Tensor, want int, x *core.Tensor) {
	if t != nil && t.Size() != want {
		panic(fmt.Sprintf("cuda: %s: %s has shape %v, want %d elements for x %v", op, role, t.Shape(), want, x.Shape()))
	}
}

func (b *Backend) LayerNorm(dst, mean, rstd, x, gamma, beta *core.Tensor, eps float32) {
	b.layerNorm("LayerNorm", nil, dst, mean, rstd, x, nil, gamma, beta, eps)
}

// AddLayerNorm implements core.FusedEpilogues with k_layer_norm reading x + r.
func (b *Backend) AddLayerNorm(sum, dst, mean, rstd, x, r, gamma, beta *core.Tensor, eps float32) {
	sameShape("AddLayerNorm", sum, x)
	sameShape("AddLayerNorm", r, x)
	b.layerNorm("AddLayerNorm", sum, dst, mean, rstd, x, r, gamma, beta, eps)
}

// layerNorm normalises x, or x + r written to sum when r is given.
func (b *Backend) layerNorm(op string, sum, dst, mean, rstd, x, r, gamma, beta *core.Tensor, eps float32) {
	sameShape(op, dst, x)
	rows, cols := lastAxis(op, x)
	checkLen(op, "mean", mean, rows, x)
	checkLen(op, "rstd", rstd, rows, x)
	checkLen(op, "gamma", gamma, cols, x)
	checkLen(op, "beta", beta, cols, x)
	b.rowLaunch("k_layer_norm", rows, cols, newArgs().ptr("d", b.p(dst, op)).ptr("mean", b.p(mean, op)).
		ptr("rstd", b.p(rstd, op)).ptr("x", b.p(x, op)).ptr("r", b.p(r, op)).ptr("sum", b.p(sum, op)).
		ptr("g", b.p(gamma, op)).ptr("b", b.p(beta, op)).i64("rows", rows).i64("cols", cols).f32("eps", eps))
}

// LayerNormGrad runs two kernels: dx row by row, then dgamma and dbeta as a column
// reduction over the rows (split across blocks that add atomically when the rows are
// many), so no two threads of a row-wise pass contend for the same parameter.
func (b *Backend) LayerNormGrad(dx, dgamma, dbeta, dy, x, mean, rstd, gamma *core.Tensor, accumulate bool) {
	const op = "LayerNormGrad"
	sameShape(op, dy, x)
	if dx != nil {
		sameShape(op, dx, x)
	}
	if mean == nil || rstd == nil {
		panic("cuda: LayerNormGrad: mean and rstd from the forward pass are required")
	}
	rows, cols := lastAxis(op, x)
	checkLen(op, "mean", mean, rows, x)
	checkLen(op, "rstd", rstd, rows, x)
	checkLen(op, "gamma", gamma, cols, x)
	checkLen(op, "dgamma", dgamma, cols, x)
	checkLen(op, "dbeta", dbeta, cols, x)
	if rows == 0 || cols == 0 {
		return
	}
	pdy, px, pm, pr := b.p(dy, op), b.p(x, op), b.p(mean, op), b.p(rstd, op)
	if dx != nil {
		b.rowLaunch("k_layer_norm_dx", rows, cols, newArgs().ptr("dx", b.p(dx, op)).ptr("dy", pdy).ptr("x", px).
			ptr("mean", pm).ptr("rstd", pr).ptr("g", b.p(gamma, op)).i64("rows", rows).i64("cols", cols).flag("acc", accumulate))
	}
	if dgamma == nil && dbeta == nil {
		return
	}
	tiles := (cols + 31) / 32
	s, chunk := splitPlan(rows, tiles, blocksPerSM*b.d.smCount(), 64)
	b.fail(b.d.launch("k_layer_norm_dparams", tiles, s, 1, 32, 8, newArgs().ptr("dg", b.p(dgamma, op)).
		ptr("db", b.p(dbeta, op)).ptr("dy", pdy).ptr("x", px).ptr("mean", pm).ptr("rstd", pr).i64("rows", rows).
		i64("cols", cols).i64("chunk", chunk)))
}
