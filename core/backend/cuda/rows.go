//go:build cuda

package cuda

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// lastAxis views t as rows × cols over its last axis.
func lastAxis(op string, t *core.Tensor) (rows, cols int) {
	s := t.Shape()
	if len(s) == 0 {
		panic(fmt.Sprintf("cuda: %s: %v has no last axis", op, s))
	}
	cols = s[len(s)-1]
	if cols == 0 {
		return 0, 0
	}
	return t.Size() / cols, cols
}

// rowLaunch runs a row kernel; the kernel's last parameter is its mode, appended here.
func (b *Backend) rowLaunch(name string, rows, cols int, a *args) {
	if rows == 0 || cols == 0 {
		return
	}
	warp, grid := rowMode(rows, cols)
	b.fail(b.d.launch(name, grid, 1, 1, threads, 1, a.flag("warpMode", warp)))
}

func (b *Backend) softmax(op string, mode int, dst, x *core.Tensor) {
	sameShape(op, dst, x)
	rows, cols := lastAxis(op, x)
	b.rowLaunch("k_softmax", rows, cols, newArgs().i32("mode", mode).ptr("d", b.p(dst, op)).ptr("x", b.p(x, op)).
		i64("rows", rows).i64("cols", cols))
}

func (b *Backend) softmaxGrad(op string, mode int, dx, y, dy *core.Tensor, accumulate bool) {
	sameShape(op, dx, y)
	sameShape(op, dy, y)
	rows, cols := lastAxis(op, y)
	b.rowLaunch("k_softmax_grad", rows, cols, newArgs().i32("mode", mode).ptr("dx", b.p(dx, op)).ptr("y", b.p(y, op)).
		ptr("dy", b.p(dy, op)).i64("rows", rows).i64("cols", cols).flag("acc", accumulate))
}

func (b *Backend) Softmax(dst, x *core.Tensor)    { b.softmax("Softmax", 0, dst, x) }
func (b *Backend) LogSoftmax(dst, x *core.Tensor) { b.softmax("LogSoftmax", 1, dst, x) }

func (b *Backend) SoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	b.softmaxGrad("SoftmaxGrad", 0, dx, y, dy, accumulate)
}

func (b *Backend) LogSoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	b.softmaxGrad("LogSoftmaxGrad", 1, dx, y, dy, accumulate)
}

// CrossEntropy's labels are checked on the device: a label that is not an integer in
// [0, C) makes the loss NaN and is reported by the next Sync or Download. dlogits may
// be nil when only the loss is wanted.
func (b *Backend) CrossEntropy(loss, dlogits, logits, labels *core.Tensor, smoothing float32) {
	ls := logits.Shape()
	if len(ls) != 2 {
		panic(fmt.Sprintf("cuda: CrossEntropy: logits have shape %v, want [N, C]", ls))
	}
	n, c := ls[0], ls[1]
	if labels.Size() != n {
		panic(fmt.Sprintf("cuda: CrossEntropy: %d labels for logits %v", labels.Size(), ls))
	}
	if loss.Size() != 1 {
		panic(fmt.Sprintf("cuda: CrossEntropy: loss has shape %v, want one element", loss.Shape()))
	}
	if dlogits != nil {
		sameSize("CrossEntropy", dlogits, logits)
	}
	if !(smoothing >= 0 && smoothing <= 1) {
		panic(fmt.Sprintf("cuda: CrossEntropy: label smoothing %v is outside [0, 1]", smoothing))
	}
	b.Fill(loss, 0)
	if n == 0 || c == 0 {
		return
	}
	const op = "CrossEntropy"
	b.rowLaunch("k_cross_entropy", n, c, newArgs().ptr("loss", b.p(loss, op)).ptr("dl", b.p(dlogits, op)).
		ptr("x", b.p(logits, op)).ptr("labels", b.p(labels, op)).i64("rows", n).i64("cols", c).f32("smooth", smoothing).
		f32("invN", 1/float32(n)))
}

func (b *Backend) BCEWithLogits(loss, dlogits, logits, targets *core.Tensor) {
	sameSize("BCEWithLogits", logits, targets)
	if dlogits != nil {
		sameSize("BCEWithLogits", dlogits, logits)
	}
	if loss.Size() != 1 {
		panic(fmt.Sprintf("cuda: BCEWithLogits: loss has shape %v, want one element", loss.Shape()))
	}
	b.Fill(loss, 0)
	n := logits.Size()
	if n == 0 {
		return
	}
	grid := min(elementGrid(n), blocksPerSM*b.d.smCount())
	const op = "BCEWithLogits"
	b.fail(b.d.launch("k_bce", grid, 1, 1, threads, 1, newArgs().ptr("loss", b.p(loss, op)).ptr("dl", b.p(dlogits, op)).
		ptr("x", b.p(logits, op)).ptr("t", b.p(targets, op)).i64("n", n).f32("invN", 1/float32(n))))
}

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
