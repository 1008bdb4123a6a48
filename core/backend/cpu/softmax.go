package cpu

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

// lastAxis returns the row count and row length of t over its last axis.
func lastAxis(t *core.Tensor) (rows, cols int) {
	s := t.Shape()
	if len(s) == 0 {
		return 1, 1
	}
	cols = s[len(s)-1]
	if cols == 0 {
		return 0, 0
	}
	return t.Size() / cols, cols
}

func rowMax(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m || v != v {
			m = v
		}
	}
	return m
}

// logSumExp returns log Σ exp(x), shifted by the row maximum for range.
func logSumExp(x []float32) float64 {
	m := float64(rowMax(x))
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

// expChunk is how many exponentials softmax computes ahead of summing them, on the
// stack: attention's rows (50, 197) fit in one chunk.
const expChunk = 256

// expShifted sets e[i] = math.Exp(float64(x[i]) - shift), bit for bit, four at a time
// in AVX2 where the kernel's range allows and math.Exp itself elsewhere.
func expShifted(e []float64, x []float32, shift float64) {
	n := 0
	if hasAVX2 {
		n = len(x) &^ 3
	}
	if n > 0 {
		expShiftedAVX2(&e[0], &x[0], n, shift)
		for i, v := range x[:n] {
			// The kernel leaves math.Exp's special cases (non-finite input, overflow,
			// subnormal and zero results) to it.
			if d := float64(v) - shift; !(d >= -708 && d <= 709) {
				e[i] = math.Exp(d)
			}
		}
	}
	for i := n; i < len(x); i++ {
		e[i] = math.Exp(float64(x[i]) - shift)
	}
}

type softmaxKernel struct {
	d, x []float32
	cols int
	log  bool
}

func (k softmaxKernel) run(lo, hi int) {
	var buf [expChunk]float64 // once per call: zeroing it per row would cost more than a row
	for r := lo; r < hi; r++ {
		x := k.x[r*k.cols : (r+1)*k.cols]
		d := k.d[r*k.cols : (r+1)*k.cols]
		if k.log {
			lse := logSumExp(x)
			for i, v := range x {
				d[i] = float32(float64(v) - lse)
			}
			continue
		}
		m := float64(rowMax(x))
		var s float64
		for c0 := 0; c0 < len(x); c0 += expChunk {
			e := buf[:min(expChunk, len(x)-c0)]
			expShifted(e, x[c0:c0+len(e)], m)
			for i, v := range e {
				s += v
				d[c0+i] = float32(v)
			}
		}
		inv := 1 / s
		for i, v := range d {
			d[i] = float32(float64(v) * inv)
		}
	}
}

// Softmax normalises x over its last axis.
func (b *Backend) Softmax(dst, x *core.Tensor) { b.softmax("Softmax", dst, x, false) }

// LogSoftmax writes x - logΣexp(x) over the last axis.
func (b *Backend) LogSoftmax(dst, x *core.Tensor) { b.softmax("LogSoftmax", dst, x, true) }

func (b *Backend) softmax(op string, dst, x *core.Tensor, log bool) {
	checkSameSize(op, dst, x)
	rows, cols := lastAxis(x)
	if rows == 0 {
		return
	}
	forEach(softmaxKernel{b.f32(dst, op), b.f32(x, op), cols, log}, rows, cols)
}

type softmaxGradKernel struct {
	dx, y, dy []float32
	cols      int
	log, acc  bool
}

func (k softmaxGradKernel) run(lo, hi int) {
	for r := lo; r < hi; r++ {
		y := k.y[r*k.cols : (r+1)*k.cols]
		dy := k.dy[r*k.cols : (r+1)*k.cols]
		dx := k.dx[r*k.cols : (r+1)*k.cols]
		var s float64
		if k.log {
			for _, g := range dy {
				s += float64(g)
			}
		} else {
			for i, g := range dy {
				s += float64(g) * float64(y[i])
			}
		}
		for i, g := range dy {
			var v float32
			if k.log {
				v = float32(float64(g) - math.Exp(float64(y[i]))*s)
			} else {
				v = float32(float64(y[i]) * (float64(g) - s))
			}
			if k.acc {
				dx[i] += v
			} else {
				dx[i] = v
			}
		}
	}
}

// SoftmaxGrad computes dx (+)= y·(dy - Σ dy·y) over the last axis.
func (b *Backend) SoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	b.softmaxGrad("SoftmaxGrad", dx, y, dy, false, accumulate)
}

// LogSoftmaxGrad computes dx (+)= dy - exp(y)·Σ dy over the last axis.
func (b *Backend) LogSoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	b.softmaxGrad("LogSoftmaxGrad", dx, y, dy, true, accumulate)
}

func (b *Backend) softmaxGrad(op string, dx, y, dy *core.Tensor, log, acc bool) {
	checkSameSize(op, dx, y)
	checkSameSize(op, dx, dy)
	rows, cols := lastAxis(y)
	if rows == 0 {
		return
	}
	forEach(softmaxGradKernel{b.f32(dx, op), b.f32(y, op), b.f32(dy, op), cols, log, acc}, rows, cols)
}

type crossEntropyKernel struct {
	dl, x, labels []float32
	rowLoss       []float64
	cols          int
	smoothing     float64
	invN          float64
}

func (k crossEntropyKernel) run(lo, hi int) {
	c := float64(k.cols)
	for r := lo; r < hi; r++ {
		x := k.x[r*k.cols : (r+1)*k.cols]
		y := int(k.labels[r])
		lse := logSumExp(x)
		var sum float64
		for _, v := range x {
			sum += float64(v)
		}
		// -Σ q·(x - lse) with Σ q = 1.
		k.rowLoss[r] = lse - (1-k.smoothing)*float64(x[y]) - k.smoothing/c*sum
		if k.dl == nil {
			continue
		}
		dl := k.dl[r*k.cols : (r+1)*k.cols]
		for i, v := range x {
			q := k.smoothing / c
			if i == y {
				q += 1 - k.smoothing
			}
			dl[i] = float32((math.Exp(float64(v)-lse) - q) * k.invN)
		}
	}
}

// CrossEntropy writes the mean label-smoothed cross-entropy of logits [N, C] against
// integral labels [N] into loss [1], and its gradient into dlogits when not nil.
func (b *Backend) CrossEntropy(loss, dlogits, logits, labels *core.Tensor, smoothing float32) {
	ls := logits.Shape()
	if len(ls) != 2 {
		panic(fmt.Sprintf("cpu: CrossEntropy: logits have shape %v, want [N, C]", ls))
	}
	n, c := ls[0], ls[1]
	if labels.Size() != n {
		panic(fmt.Sprintf("cpu: CrossEntropy: %d labels for logits %v", labels.Size(), ls))
	}
	if loss.Size() != 1 {
		panic(fmt.Sprintf("cpu: CrossEntropy: loss has shape %v, want one element", loss.Shape()))
	}
	if dlogits != nil {
		checkSameSize("CrossEntropy", dlogits, logits)
	}
	if !(smoothing >= 0 && smoothing <= 1) {
		panic(fmt.Sprintf("cpu: CrossEntropy: label smoothing %v is outside [0, 1]", smoothing))
	}
	lab := b.f32(labels, "CrossEntropy")
	checkIndices("CrossEntropy labels", lab, c)
	sp := b.getScratch(n)
	k := crossEntropyKernel{
		dl: b.opt(dlogits, "CrossEntropy"), x: b.f32(logits, "CrossEntropy"), labels: lab,
		rowLoss: *sp, cols: c, smoothing: float64(smoothing), invN: 1 / float64(n),
	}
	forEach(k, n, c)
	b.f32(loss, "CrossEntropy")[0] = float32(sumInOrder(*sp) / float64(n))
	b.putScratch(sp)
}

type bceKernel struct {
	dl, x, t []float32
	partial  []float64
	invNC    float64
}

func (k bceKernel) run(lo, hi int) {
	for blk := lo; blk < hi; blk++ {
		a, e := blk*sumBlock, min((blk+1)*sumBlock, len(k.x))
		var s float64
		for i := a; i < e; i++ {
			x, t := float64(k.x[i]), float64(k.t[i])
			s += math.Max(x, 0) - x*t + math.Log1p(math.Exp(-math.Abs(x)))
			if k.dl != nil {
				k.dl[i] = float32((sigmoid(x) - t) * k.invNC)
			}
		}
		k.partial[blk] = s
	}
}

// BCEWithLogits writes the mean binary cross-entropy of logits against targets into
// loss [1] and its gradient into dlogits when not nil.
func (b *Backend) BCEWithLogits(loss, dlogits, logits, targets *core.Tensor) {
	checkSameSize("BCEWithLogits", logits, targets)
	if dlogits != nil {
		checkSameSize("BCEWithLogits", dlogits, logits)
	}
	if loss.Size() != 1 {
		panic(fmt.Sprintf("cpu: BCEWithLogits: loss has shape %v, want one element", loss.Shape()))
	}
	x := b.f32(logits, "BCEWithLogits")
	nb := (len(x) + sumBlock - 1) / sumBlock
	sp := b.getScratch(nb)
	k := bceKernel{
		dl: b.opt(dlogits, "BCEWithLogits"), x: x, t: b.f32(targets, "BCEWithLogits"),
		partial: *sp, invNC: 1 / float64(len(x)),
	}
	forEach(k, nb, sumBlock)
	b.f32(loss, "BCEWithLogits")[0] = float32(sumInOrder(*sp) * k.invNC)
	b.putScratch(sp)
}
