package autograd

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// BatchNorm normalises the features of x [N, F] with PyTorch's BatchNorm1d semantics:
// in training the biased batch variance normalises and the unbiased one enters the
// running estimate; in evaluation the running estimates normalise.
type BatchNorm struct {
	Gamma, Beta             *Var // nil when affine is false
	RunningMean, RunningVar *core.Tensor
	Momentum, Eps           float32
}

// NewBatchNorm returns a batch norm over features with gamma 1 and beta 0 (when
// affine), running mean 0 and running variance 1, momentum 0.1 and eps 1e-5, as
// PyTorch initialises it.
func NewBatchNorm(b core.Backend, name string, features int, affine bool) *BatchNorm {
	if features <= 0 {
		panic(fmt.Sprintf("autograd: NewBatchNorm %q: %d features", name, features))
	}
	bn := &BatchNorm{
		RunningMean: b.Alloc(core.Shape{features}),
		RunningVar:  b.Alloc(core.Shape{features}),
		Momentum:    0.1,
		Eps:         1e-5,
	}
	b.Fill(bn.RunningVar, 1)
	if affine {
		bn.Gamma = NewParam(b, name+".weight", core.Shape{features})
		b.Fill(bn.Gamma.Value, 1)
		bn.Beta = NewParam(b, name+".bias", core.Shape{features})
	}
	return bn
}

// Forward normalises x [N, F]. With tp.Training it uses the batch statistics (the
// gradient flows through them) and updates the running estimates, outside the graph.
func (bn *BatchNorm) Forward(tp *Tape, x *Var) *Var {
	xs := x.Shape()
	f := bn.RunningMean.Size()
	if len(xs) != 2 || xs[1] != f {
		shapePanic("batch_norm", "x %v for %d features (want [N, %d])", xs, f, f)
	}
	var xhat *Var
	if tp.Training {
		n := xs[0]
		if n < 2 {
			shapePanic("batch_norm", "x %v: training needs more than one value per feature", xs)
		}
		mean := tp.Mean(x, []int{0}, true)
		xc := tp.Sub(x, mean)
		variance := tp.Mean(tp.Square(xc), []int{0}, true)
		rstd := tp.Unary(core.Rsqrt, tp.AddScalar(variance, bn.Eps))
		xhat = tp.Mul(xc, rstd)
		m := bn.Momentum
		tp.b.Axpby(bn.RunningMean, m, mean.Value, 1-m)
		tp.b.Axpby(bn.RunningVar, m*float32(n)/float32(n-1), variance.Value, 1-m)
	} else {
		mean, variance := tp.Const(bn.RunningMean), tp.Const(bn.RunningVar)
		rstd := tp.Unary(core.Rsqrt, tp.AddScalar(variance, bn.Eps))
		xhat = tp.Mul(tp.Sub(x, mean), rstd)
	}
	if bn.Gamma != nil {
		xhat = tp.Mul(xhat, bn.Gamma)
	}
	if bn.Beta != nil {
		xhat = tp.Add(xhat, bn.Beta)
	}
	return xhat
}
