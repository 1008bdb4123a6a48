package ref

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

// rows calls fn once per row of length D.
func rows(total, D int, fn func(lo, hi int)) {
	if D == 0 {
		return
	}
	for lo := 0; lo < total; lo += D {
		fn(lo, lo+D)
	}
}

// logSumExp returns the row maximum and log Σ exp(r - max), kept apart so that
// x - max - logZ does not lose the low bits of a large max.
func logSumExp(r []float64) (mx, logZ float64) {
	mx = math.Inf(-1)
	for _, v := range r {
		mx = math.Max(mx, v)
	}
	s := 0.0
	for _, v := range r {
		s += math.Exp(v - mx)
	}
	return mx, math.Log(s)
}

func (*backend) Softmax(dst, x *core.Tensor) {
	d, xs := vals(dst, "Softmax", "dst"), vals(x, "Softmax", "x")
	sameShape("Softmax", dst, x)
	rows(len(d), lastAxis("Softmax", x), func(lo, hi int) {
		mx := math.Inf(-1)
		for _, v := range xs[lo:hi] {
			mx = math.Max(mx, v)
		}
		s := 0.0
		for i := lo; i < hi; i++ {
			d[i] = math.Exp(xs[i] - mx)
			s += d[i]
		}
		for i := lo; i < hi; i++ {
			d[i] /= s
		}
	})
}

func (*backend) SoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	d, ys, g := vals(dx, "SoftmaxGrad", "dx"), vals(y, "SoftmaxGrad", "y"), vals(dy, "SoftmaxGrad", "dy")
	sameShape("SoftmaxGrad", dx, y)
	sameShape("SoftmaxGrad", dx, dy)
	rows(len(d), lastAxis("SoftmaxGrad", y), func(lo, hi int) {
		dot := 0.0
		for i := lo; i < hi; i++ {
			dot += g[i] * ys[i]
		}
		for i := lo; i < hi; i++ {
			v := ys[i] * (g[i] - dot)
			if accumulate {
				d[i] += v
			} else {
				d[i] = v
			}
		}
	})
}

func (*backend) LogSoftmax(dst, x *core.Tensor) {
	d, xs := vals(dst, "LogSoftmax", "dst"), vals(x, "LogSoftmax", "x")
	sameShape("LogSoftmax", dst, x)
	rows(len(d), lastAxis("LogSoftmax", x), func(lo, hi int) {
		mx, logZ := logSumExp(xs[lo:hi])
		for i := lo; i < hi; i++ {
			d[i] = xs[i] - mx - logZ
		}
	})
}

func (*backend) LogSoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	d, ys, g := vals(dx, "LogSoftmaxGrad", "dx"), vals(y, "LogSoftmaxGrad", "y"), vals(dy, "LogSoftmaxGrad", "dy")
	sameShape("LogSoftmaxGrad", dx, y)
	sameShape("LogSoftmaxGrad", dx, dy)
	rows(len(d), lastAxis("LogSoftmaxGrad", y), func(lo, hi int) {
		s := 0.0
		for i := lo; i < hi; i++ {
			s += g[i]
		}
		for i := lo; i < hi; i++ {
			v := g[i] - math.Exp(ys[i])*s
			if accumulate {
				d[i] += v
			} else {
				d[i] = v
			}
		}
	})
}

func (*backend) CrossEntropy(loss, dlogits, logits, labels *core.Tensor, smoothing float32) {
	const op = "CrossEntropy"
	l, x, lab := vals(loss, op, "loss"), vals(logits, op, "logits"), vals(labels, op, "labels")
	if logits.Rank() != 2 || len(l) != 1 || len(lab) != logits.Dim(0) {
		panic(fmt.Sprintf("ref: CrossEntropy: want logits [N,C], labels [N], loss [1]; got logits %v, labels %v, loss %v",
			logits, labels, loss))
	}
	var dl []float64
	if dlogits != nil {
		dl = vals(dlogits, op, "dlogits")
		sameShape(op, dlogits, logits)
	}
	N, C := logits.Dim(0), logits.Dim(1)
	s := float64(smoothing)
	total := 0.0
	for r := range N {
		y := index(op, lab, r, C)
		row := x[r*C : (r+1)*C]
		mx, logZ := logSumExp(row)
		for c := range C {
			q := s / float64(C)
			if c == y {
				q += 1 - s
			}
			logp := row[c] - mx - logZ
			total -= q * logp
			if dl != nil {
				dl[r*C+c] = (math.Exp(logp) - q) / float64(N)
			}
		}
	}
	l[0] = total / float64(N)
}

func (*backend) BCEWithLogits(loss, dlogits, logits, targets *core.Tensor) {
	const op = "BCEWithLogits"
	l, x, t := vals(loss, op, "loss"), vals(logits, op, "logits"), vals(targets, op, "targets")
	if len(l) != 1 {
		panic(fmt.Sprintf("ref: BCEWithLogits: loss %v must have one element", loss))
	}
	sameShape(op, logits, targets)
	var dl []float64
	if dlogits != nil {
		dl = vals(dlogits, op, "dlogits")
		sameShape(op, dlogits, logits)
	}
	n := float64(len(x))
	total := 0.0
	for i, v := range x {
		total += math.Max(v, 0) - v*t[i] + math.Log1p(math.Exp(-math.Abs(v)))
		if dl != nil {
			dl[i] = (sigmoid(v) - t[i]) / n
		}
	}
	l[0] = total / n
}
