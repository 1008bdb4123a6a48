package autograd

import (
	"github.com/kadapt/kadapt/core"
)

// LayerNorm normalises x over its last axis with the biased variance, then applies
// gamma and beta [D] when given (nil = no affine).
func (tp *Tape) LayerNorm(x, gamma, beta *Var, eps float32) *Var {
	tp.checkLayerNorm(x, gamma, beta)
	rows := x.Value.Size() / x.Shape()[x.Value.Rank()-1]
	y, mean, rstd := tp.output(x.Shape()), tp.output(core.Shape{rows}), tp.output(core.Shape{rows})
	tp.b.LayerNorm(y, mean, rstd, x.Value, value(gamma), value(beta), eps)
	return tp.layerNormNode(x, gamma, beta, y, mean, rstd)
}

// AddLayerNorm returns sum = x + r and LayerNorm(sum) (see LayerNorm), the residual
// join of a pre-LN block and the norm that follows it: one pass where the backend has
// core.FusedEpilogues. x and r have the same shape.
func (tp *Tape) AddLayerNorm(x, r, gamma, beta *Var, eps float32) (sum, normed *Var) {
	fused, ok := tp.b.(core.FusedEpilogues)
	if !ok {
		sum = tp.Add(x, r)
		return sum, tp.LayerNorm(sum, gamma, beta, eps)
	}
	if !x.Shape().Equal(r.Shape()) {
		shapePanic("add_layer_norm", "x %v and r %v differ", x.Shape(), r.Shape())
	}
	tp.checkLayerNorm(x, gamma, beta)
	xs := x.Shape()
	rows := x.Value.Size() / xs[len(xs)-1]
	s, y, mean, rstd := tp.output(xs), tp.output(xs), tp.output(core.Shape{rows}), tp.output(core.Shape{rows})
	fused.AddLayerNorm(s, y, mean, rstd, x.Value, r.Value, value(gamma), value(beta), eps)
	sum = tp.binaryNode(core.Add, x, r, s)
	return sum, tp.layerNormNode(sum, gamma, beta, y, mean, rstd)
}

func value(v *Var) *core.Tensor {
	if v == nil {
		return nil
	}
	return v.Value
}

func (tp *Tape) checkLayerNorm(x, gamma, beta *Var) {
	xs := x.Shape()
	if len(xs) < 1 {
		shapePanic("layer_norm", "x %v has no axis to normalise", xs)
	}
	d := xs[len(xs)-1]
	for _, p := range []*Var{gamma, beta} {
		if p != nil && (p.Value.Rank() != 1 || p.Shape()[0] != d) {
			shapePanic("layer_norm", "affine parameter %v for x %v (want [%d])", p.Shape(), xs, d)
		}
	}
}

// layerNormNode records y = LayerNorm(x), already computed with its statistics.
func (tp *Tape) layerNormNode(x, gamma, beta *Var, y, mean, rstd *core.Tensor) *Var {
	xs, gv := x.Shape(), value(gamma)
	var v *Var
	v = tp.nodeSaving("layer_norm", y, []*core.Tensor{x.Value, mean, rstd, gv}, func() {
		var dgamma, dbeta *core.Tensor
		if needs(gamma) {
			dgamma = tp.gradZeroed(gamma)
		}
		if needs(beta) {
			dbeta = tp.gradZeroed(beta)
		}
		if needs(x) {
			dx, fresh := tp.gradOf(x)
			tp.b.LayerNormGrad(dx, dgamma, dbeta, v.Grad, x.Value, mean, rstd, gv, !fresh)
			return
		}
		dx := tp.scratch(xs)
		tp.b.LayerNormGrad(dx, dgamma, dbeta, v.Grad, x.Value, mean, rstd, gv, false)
		tp.b.Release(dx)
	}, x, gamma, beta)
	return v
}

// Softmax normalises over the last axis.
func (tp *Tape) Softmax(x *Var) *Var {
	return tp.rowSoftmax("softmax", x, tp.b.Softmax, tp.b.SoftmaxGrad)
}

// LogSoftmax returns log softmax over the last axis.
func (tp *Tape) LogSoftmax(x *Var) *Var {
	return tp.rowSoftmax("log_softmax", x, tp.b.LogSoftmax, tp.b.LogSoftmaxGrad)
}

// rowSoftmax records a softmax-like op over the last axis whose gradient is computed
// from its output.
func (tp *Tape) rowSoftmax(name string, x *Var, forward func(dst, x *core.Tensor),
	grad func(dx, y, dy *core.Tensor, accumulate bool)) *Var {
	if x.Value.Rank() < 1 {
		shapePanic(name, "x %v has no axis", x.Shape())
	}
	y := tp.output(x.Shape())
	forward(y, x.Value)
	var v *Var
	v = tp.nodeSaving(name, y, []*core.Tensor{y}, func() {
		g, fresh := tp.gradOf(x)
		grad(g, y, v.Grad, !fresh)
	}, x)
	return v
}

// lossNode wraps a fused loss whose backend op already wrote d loss / d logits: the
// backward pass only scales it by the incoming scalar gradient.
func (tp *Tape) lossNode(name string, loss, dlogits *core.Tensor, logits *Var) *Var {
	if tp.noGrad || !logits.RequiresGrad() {
		tp.b.Release(dlogits)
		return &Var{Value: loss.Reshape(), Name: name}
	}
	tp.values = append(tp.values, dlogits)
	var v *Var
	v = tp.nodeSaving(name, loss.Reshape(), []*core.Tensor{dlogits}, func() {
		dy := v.Grad.Reshape(1)
		g, fresh := tp.gradOf(logits)
		if fresh {
			tp.b.Copy(g, dlogits)
			tp.b.ScaleBy(g, dy, 1)
			return
		}
		tmp := tp.scratch(logits.Shape())
		tp.b.Copy(tmp, dlogits)
		tp.b.ScaleBy(tmp, dy, 1)
		tp.b.Axpby(g, 1, tmp, 1)
		tp.b.Release(tmp)
	}, logits)
	return v
}

// CrossEntropy returns the mean over rows of the cross-entropy between softmax(logits)
// [N, C] and the labels [N] (integral values in [0, C)), smoothed as
// (1-smoothing)·onehot + smoothing/C. labels is caller-owned; bad labels panic here,
// or on a core.DeferredIndexChecks backend are reported by the next Sync or Download.
func (tp *Tape) CrossEntropy(logits *Var, labels *core.Tensor, smoothing float32) *Var {
	ls := logits.Shape()
	if len(ls) != 2 || labels.Rank() != 1 || labels.Size() != ls[0] {
		shapePanic("cross_entropy", "logits %v and labels %v (want [N, C] and [N])", ls, labels.Shape())
	}
	if !(smoothing >= 0 && smoothing <= 1) {
		shapePanic("cross_entropy", "label smoothing %v outside [0, 1]", smoothing)
	}
	tp.checkIndices("cross_entropy", "labels", labels, ls[1])
	loss, dlogits := tp.alloc(core.Shape{1}), tp.scratch(ls)
	tp.b.CrossEntropy(loss, dlogits, logits.Value, labels, smoothing)
	return tp.lossNode("cross_entropy", loss, dlogits, logits)
}

// BCEWithLogits returns the mean over all elements of the binary cross-entropy between
// σ(logits) and targets in [0, 1] of the same shape.
func (tp *Tape) BCEWithLogits(logits *Var, targets *core.Tensor) *Var {
	ls := logits.Shape()
	if len(ls) < 1 || !ls.Equal(targets.Shape()) {
		shapePanic("bce_with_logits", "logits %v and targets %v must have one shape", ls, targets.Shape())
	}
	c := ls[len(ls)-1]
	rows := logits.Value.Size() / c
	loss, dlogits := tp.alloc(core.Shape{1}), tp.scratch(ls)
	tp.b.BCEWithLogits(loss, dlogits.Reshape(rows, c), logits.Value.Reshape(rows, c), targets.Reshape(rows, c))
	return tp.lossNode("bce_with_logits", loss, dlogits, logits)
}

// Dropout zeroes each element with probability p and scales the rest by 1/(1-p) when
// the tape is training; otherwise it returns x itself. Each applied call draws its
// mask from core.DropoutUniform with seed SetSeed's seed + the call's number.
func (tp *Tape) Dropout(x *Var, p float32) *Var {
	if !(p >= 0 && p < 1) {
		shapePanic("dropout", "probability %v outside [0, 1) for x %v", p, x.Shape())
	}
	if !tp.Training || p == 0 {
		return x
	}
	seed := tp.seed + tp.dropoutCall
	tp.dropoutCall++
	xs := x.Shape()
	y, mask := tp.alloc(xs), tp.alloc(xs)
	tp.b.Dropout(y, mask, x.Value, p, seed)
	var v *Var
	v = tp.nodeSaving("dropout", y, []*core.Tensor{mask}, func() {
		tp.accumulate(x, xs, 1, func(dst *core.Tensor) { tp.b.Binary(core.Mul, dst, v.Grad, mask) })
	}, x)
	return v
}
