package ref

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

func (*backend) Fill(dst *core.Tensor, v float32) {
	d := vals(dst, "Fill", "dst")
	for i := range d {
		d[i] = float64(v)
	}
}

func (*backend) Copy(dst, src *core.Tensor) {
	d, s := vals(dst, "Copy", "dst"), vals(src, "Copy", "src")
	sameSize("Copy", dst, src)
	copy(d, s)
}

func (*backend) Axpby(dst *core.Tensor, alpha float32, x *core.Tensor, beta float32) {
	d, xs := vals(dst, "Axpby", "dst"), vals(x, "Axpby", "x")
	sameSize("Axpby", dst, x)
	a, b := float64(alpha), float64(beta)
	for i := range d {
		if beta == 0 {
			d[i] = a * xs[i]
		} else {
			d[i] = a*xs[i] + b*d[i]
		}
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func unary(op core.UnaryOp, x float64) float64 {
	switch op {
	case core.Neg:
		return -x
	case core.Exp:
		return math.Exp(x)
	case core.Log:
		return math.Log(x)
	case core.Sqrt:
		return math.Sqrt(x)
	case core.Rsqrt:
		return 1 / math.Sqrt(x)
	case core.Square:
		return x * x
	case core.Abs:
		return math.Abs(x)
	case core.ReLU:
		return math.Max(x, 0)
	case core.GELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	case core.QuickGELU:
		return x * sigmoid(core.QuickGELUCoef*x)
	case core.SiLU:
		return x * sigmoid(x)
	case core.Sigmoid:
		return sigmoid(x)
	case core.Tanh:
		return math.Tanh(x)
	}
	panic(fmt.Sprintf("ref: Unary: unknown op %d", op))
}

// derivative returns op'(x).
func derivative(op core.UnaryOp, x float64) float64 {
	switch op {
	case core.Neg:
		return -1
	case core.Exp:
		return math.Exp(x)
	case core.Log:
		return 1 / x
	case core.Sqrt:
		return 0.5 / math.Sqrt(x)
	case core.Rsqrt:
		return -0.5 / (x * math.Sqrt(x))
	case core.Square:
		return 2 * x
	case core.Abs:
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return 0
	case core.ReLU:
		if x > 0 {
			return 1
		}
		return 0
	case core.GELU:
		cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
		pdf := math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
		return cdf + x*pdf
	case core.QuickGELU:
		s := sigmoid(core.QuickGELUCoef * x)
		return s + core.QuickGELUCoef*x*s*(1-s)
	case core.SiLU:
		s := sigmoid(x)
		return s + x*s*(1-s)
	case core.Sigmoid:
		s := sigmoid(x)
		return s * (1 - s)
	case core.Tanh:
		t := math.Tanh(x)
		return 1 - t*t
	}
	panic(fmt.Sprintf("ref: UnaryGrad: unknown op %d", op))
}

func (*backend) Unary(op core.UnaryOp, dst, x *core.Tensor) {
	d, xs := vals(dst, "Unary", "dst"), vals(x, "Unary", "x")
	sameSize("Unary", dst, x)
	for i := range d {
		d[i] = unary(op, xs[i])
	}
}

func (*backend) UnaryGrad(op core.UnaryOp, dx, x, dy *core.Tensor, accumulate bool) {
	d, xs, g := vals(dx, "UnaryGrad", "dx"), vals(x, "UnaryGrad", "x"), vals(dy, "UnaryGrad", "dy")
	sameSize("UnaryGrad", dx, x)
	sameSize("UnaryGrad", dx, dy)
	for i := range d {
		v := derivative(op, xs[i]) * g[i]
		if accumulate {
			d[i] += v
		} else {
			d[i] = v
		}
	}
}

func (*backend) Dropout(dst, mask, x *core.Tensor, p float32, seed uint64) {
	const op = "Dropout"
	d, m, xs := vals(dst, op, "dst"), vals(mask, op, "mask"), vals(x, op, "x")
	sameSize(op, dst, x)
	sameSize(op, mask, x)
	if !(p >= 0 && p <= 1) {
		panic(fmt.Sprintf("ref: Dropout: probability %v is not in [0, 1]", p))
	}
	scale := 1 / (1 - float64(p))
	for i := range d {
		m[i] = 0
		if core.DropoutUniform(seed, i) >= p {
			m[i] = scale
		}
		d[i] = xs[i] * m[i]
	}
}

func (*backend) SumSquares(dst, x *core.Tensor, accumulate bool) {
	d, xs := vals(dst, "SumSquares", "dst"), vals(x, "SumSquares", "x")
	if len(d) != 1 {
		panic(fmt.Sprintf("ref: SumSquares: dst %v must have one element", dst))
	}
	s := 0.0
	for _, v := range xs {
		s += v * v
	}
	if accumulate {
		d[0] += s
	} else {
		d[0] = s
	}
}

func (*backend) ScaleBy(dst, s *core.Tensor, alpha float32) {
	d, sv := vals(dst, "ScaleBy", "dst"), vals(s, "ScaleBy", "s")
	if len(sv) != 1 {
		panic(fmt.Sprintf("ref: ScaleBy: scale %v must have one element", s))
	}
	f := sv[0] * float64(alpha)
	for i := range d {
		d[i] *= f
	}
}
