package adapt

import (
	"fmt"

	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/plugins/expr"
)

// value is what plan expressions evaluate to on the host: a Var on the tape, or a
// literal scalar kept on the host so `scale * x` costs one Scale op.
type value struct {
	v      *autograd.Var
	scalar float64
	isNum  bool
}

// tapeOps implements expr.Ops over the autograd tape, so a plan's expressions become
// part of the training graph and get gradients like any other op.
type tapeOps struct{ tp *autograd.Tape }

var _ expr.Ops[value] = tapeOps{}

func (o tapeOps) Shape(x value) []int {
	if x.isNum {
		return nil
	}
	return x.v.Shape()
}

func (o tapeOps) Scalar(v float64) (value, error) { return value{scalar: v, isNum: true}, nil }

func (o tapeOps) arith(a, b value, op byte) (value, error) {
	tp := o.tp
	switch {
	case a.isNum && b.isNum:
		r := map[byte]float64{'+': a.scalar + b.scalar, '-': a.scalar - b.scalar, '*': a.scalar * b.scalar, '/': a.scalar / b.scalar}[op]
		return value{scalar: r, isNum: true}, nil
	case b.isNum:
		switch op {
		case '+':
			return value{v: tp.AddScalar(a.v, float32(b.scalar))}, nil
		case '-':
			return value{v: tp.AddScalar(a.v, float32(-b.scalar))}, nil
		case '*':
			return value{v: tp.Scale(a.v, float32(b.scalar))}, nil
		case '/':
			return value{v: tp.Scale(a.v, float32(1/b.scalar))}, nil
		}
	case a.isNum:
		switch op {
		case '+':
			return value{v: tp.AddScalar(b.v, float32(a.scalar))}, nil
		case '-':
			return value{v: tp.AddScalar(tp.Scale(b.v, -1), float32(a.scalar))}, nil
		case '*':
			return value{v: tp.Scale(b.v, float32(a.scalar))}, nil
		case '/':
			return value{}, fmt.Errorf("dividing a number by a tensor is not supported")
		}
	}
	switch op {
	case '+':
		return value{v: tp.Add(a.v, b.v)}, nil
	case '-':
		return value{v: tp.Sub(a.v, b.v)}, nil
	case '*':
		return value{v: tp.Mul(a.v, b.v)}, nil
	}
	return value{v: tp.Div(a.v, b.v)}, nil
}

func (o tapeOps) Add(a, b value) (value, error) { return o.arith(a, b, '+') }
func (o tapeOps) Sub(a, b value) (value, error) { return o.arith(a, b, '-') }
func (o tapeOps) Mul(a, b value) (value, error) { return o.arith(a, b, '*') }
func (o tapeOps) Div(a, b value) (value, error) { return o.arith(a, b, '/') }

func (o tapeOps) Neg(x value) (value, error) {
	if x.isNum {
		return value{scalar: -x.scalar, isNum: true}, nil
	}
	return value{v: o.tp.Scale(x.v, -1)}, nil
}

func (o tapeOps) MatMul(a, b value) (value, error) {
	if a.isNum || b.isNum {
		return value{}, fmt.Errorf("matmul of a number")
	}
	return value{v: o.tp.MatMul(a.v, b.v, false, false)}, nil
}

// Kron builds a ⊗ b by broadcasting a[..,p,1,q,1]·b[..,1,r,1,s] and reshaping, which
// also covers stacks of pairs; kron_sum is the fused form for sums of products.
func (o tapeOps) Kron(a, b value) (value, error) {
	sa, sb := a.v.Shape(), b.v.Shape()
	if len(sa) == 2 {
		return value{v: o.tp.Kron(a.v, b.v)}, nil
	}
	n, p, q, r, s := sa[0], sa[1], sa[2], sb[1], sb[2]
	y := o.tp.Mul(o.tp.Reshape(a.v, n, p, 1, q, 1), o.tp.Reshape(b.v, n, 1, r, 1, s))
	return value{v: o.tp.Reshape(y, n, p*r, q*s)}, nil
}

func (o tapeOps) KronSum(a, b value) (value, error) {
	return value{v: o.tp.KronSum(a.v, b.v)}, nil
}

func (o tapeOps) Outer(a, b value) (value, error) {
	sa, sb := a.v.Shape(), b.v.Shape()
	if len(sa) == 1 {
		return value{v: o.tp.Outer(a.v, b.v)}, nil
	}
	return value{v: o.tp.Mul(o.tp.Reshape(a.v, sa[0], sa[1], 1), o.tp.Reshape(b.v, sb[0], 1, sb[1]))}, nil
}

func (o tapeOps) Sum(x value, axis int) (value, error) {
	return value{v: o.tp.Sum(x.v, []int{axis}, false)}, nil
}

func (o tapeOps) Transpose(x value) (value, error) {
	r := len(x.v.Shape())
	return value{v: o.tp.Transpose(x.v, r-2, r-1)}, nil
}

func (o tapeOps) Reshape(x value, dims []int) (value, error) {
	return value{v: o.tp.Reshape(x.v, dims...)}, nil
}

func (o tapeOps) ReLU(x value) (value, error)      { return value{v: o.tp.ReLU(x.v)}, nil }
func (o tapeOps) GELU(x value) (value, error)      { return value{v: o.tp.GELU(x.v)}, nil }
func (o tapeOps) QuickGELU(x value) (value, error) { return value{v: o.tp.QuickGELU(x.v)}, nil }
func (o tapeOps) SiLU(x value) (value, error)      { return value{v: o.tp.SiLU(x.v)}, nil }
func (o tapeOps) Tanh(x value) (value, error)      { return value{v: o.tp.Tanh(x.v)}, nil }
func (o tapeOps) Sigmoid(x value) (value, error)   { return value{v: o.tp.Sigmoid(x.v)}, nil }

func (o tapeOps) LayerNorm(x, gamma, beta value, eps float64) (value, error) {
	return value{v: o.tp.LayerNorm(x.v, gamma.v, beta.v, float32(eps))}, nil
}

func (o tapeOps) Linear(x, w, b value) (value, error) {
	return value{v: o.tp.Linear(x.v, w.v, b.v)}, nil
}
