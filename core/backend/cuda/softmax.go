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

func (b *Backend) Softmax(dst, x *core.Tensor) { b.softmax("Softmax", 0, dst, x) }

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
