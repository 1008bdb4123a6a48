package cpu

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

func fill(d []float32, v float32) {
	if v == 0 {
		clear(d)
		return
	}
	for i := range d {
		d[i] = v
	}
}

type fillKernel struct {
	d []float32
	v float32
}

func (k fillKernel) run(lo, hi int) { fill(k.d[lo:hi], k.v) }

// Fill sets every element of dst to v.
func (b *Backend) Fill(dst *core.Tensor, v float32) {
	d := b.f32(dst, "Fill")
	forEach(fillKernel{d, v}, len(d), 1)
}

type copyKernel struct{ d, s []float32 }

func (k copyKernel) run(lo, hi int) { copy(k.d[lo:hi], k.s[lo:hi]) }

// Copy copies src into dst, which must have the same size.
func (b *Backend) Copy(dst, src *core.Tensor) {
	checkSameSize("Copy", dst, src)
	d, s := b.f32(dst, "Copy"), b.f32(src, "Copy")
	forEach(copyKernel{d, s}, len(d), 1)
}

type axpbyKernel struct {
	d, x        []float32
	alpha, beta float32
}

func (k axpbyKernel) run(lo, hi int) {
	d, x := k.d[lo:hi], k.x[lo:hi]
	x = x[:len(d)]
	switch {
	case k.beta == 0:
		for i, v := range x {
			d[i] = k.alpha * v
		}
	case k.beta == 1:
		for i, v := range x {
			d[i] += k.alpha * v
		}
	default:
		for i, v := range x {
			d[i] = k.alpha*v + k.beta*d[i]
		}
	}
}

// Axpby computes dst = alpha·x + beta·dst; beta = 0 ignores dst's old contents.
func (b *Backend) Axpby(dst *core.Tensor, alpha float32, x *core.Tensor, beta float32) {
	checkSameSize("Axpby", dst, x)
	d, xs := b.f32(dst, "Axpby"), b.f32(x, "Axpby")
	forEach(axpbyKernel{d, xs, alpha, beta}, len(d), 1)
}

const (
	sqrt2      = math.Sqrt2
	invSqrt2Pi = 0.3989422804014327 // 1/√(2π)
)

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// unary writes op(x) into d (same length; they may alias). Functions with no float32
// form in the standard library are evaluated in float64 and rounded once.
func unary(op core.UnaryOp, d, x []float32) {
	x = x[:len(d)]
	switch op {
	case core.Neg:
		for i, v := range x {
			d[i] = -v
		}
	case core.Exp:
		for i, v := range x {
			d[i] = float32(math.Exp(float64(v)))
		}
	case core.Log:
		for i, v := range x {
			d[i] = float32(math.Log(float64(v)))
		}
	case core.Sqrt:
		for i, v := range x {
			d[i] = float32(math.Sqrt(float64(v)))
		}
	case core.Rsqrt:
		for i, v := range x {
			d[i] = float32(1 / math.Sqrt(float64(v)))
		}
	case core.Square:
		for i, v := range x {
			d[i] = v * v
		}
	case core.Abs:
		for i, v := range x {
			d[i] = float32(math.Abs(float64(v)))
		}
	case core.ReLU:
		for i, v := range x {
			if v > 0 {
				d[i] = v
			} else if v != v {
				d[i] = v // NaN propagates, as in PyTorch
			} else {
				d[i] = 0
			}
		}
	case core.GELU:
		// x·Φ(x) with Φ(x) = erfc(-x/√2)/2: erfc keeps full relative accuracy in the
		// negative tail, where 1+erf(x/√2) would cancel to zero.
		for i, v := range x {
			f := float64(v)
			d[i] = float32(0.5 * f * math.Erfc(-f/sqrt2))
		}
	case core.QuickGELU:
		// CLIP's activation: in float32 with a vectorised exp (about one ulp) where the
		// CPU has AVX2, since in float64 through math.Exp it was a tenth of a ViT-B/32
		// training step.
		if n := len(d) &^ 7; hasAVX2 && n > 0 {
			quickGELUAVX2(&d[0], &x[0], n)
			d, x = d[n:], x[n:]
		}
		for i, v := range x {
			f := float64(v)
			d[i] = float32(f * sigmoid(core.QuickGELUCoef*f))
		}
	case core.SiLU:
		for i, v := range x {
			f := float64(v)
			d[i] = float32(f * sigmoid(f))
		}
	case core.Sigmoid:
		for i, v := range x {
			d[i] = float32(sigmoid(float64(v)))
		}
	case core.Tanh:
		for i, v := range x {
			d[i] = float32(math.Tanh(float64(v)))
		}
	default:
		panic(fmt.Sprintf("cpu: Unary: unknown op %d", op))
	}
}

// unaryDeriv returns op'(x).
func unaryDeriv(op core.UnaryOp, x float64) float64 {
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
		return 0.5*math.Erfc(-x/sqrt2) + x*invSqrt2Pi*math.Exp(-0.5*x*x)
	case core.QuickGELU:
		s := sigmoid(core.QuickGELUCoef * x)
		return s + core.QuickGELUCoef*x*s*(1-s)
	case core.SiLU:
		s := sigmoid(x)
		return s * (1 + x*(1-s))
	case core.Sigmoid:
		s := sigmoid(x)
		return s * (1 - s)
	case core.Tanh:
		t := math.Tanh(x)
		return 1 - t*t
	}
	panic(fmt.Sprintf("cpu: UnaryGrad: unknown op %d", op))
}

type unaryKernel struct {
	op   core.UnaryOp
	d, x []float32
}

func (k unaryKernel) run(lo, hi int) { unary(k.op, k.d[lo:hi], k.x[lo:hi]) }

// Unary computes dst = op(x) elementwise; dst may alias x.
func (b *Backend) Unary(op core.UnaryOp, dst, x *core.Tensor) {
	checkSameSize("Unary", dst, x)
	d, xs := b.f32(dst, "Unary"), b.f32(x, "Unary")
	if op > core.Tanh {
		panic(fmt.Sprintf("cpu: Unary: unknown op %d", op))
	}
	forEach(unaryKernel{op, d, xs}, len(d), 1)
}

type unaryGradKernel struct {
	op        core.UnaryOp
	dx, x, dy []float32
	acc       bool
}

func (k unaryGradKernel) run(lo, hi int) {
	dx, x, dy := k.dx[lo:hi], k.x[lo:hi], k.dy[lo:hi]
	x, dy = x[:len(dx)], dy[:len(dx)]
	switch k.op {
	case core.Neg:
		for i, g := range dy {
			if k.acc {
				dx[i] -= g
			} else {
				dx[i] = -g
			}
		}
		return
	case core.QuickGELU:
		if n := len(dx) &^ 7; hasAVX2 && n > 0 {
			acc := 0
			if k.acc {
				acc = 1
			}
			quickGELUGradAVX2(&dx[0], &x[0], &dy[0], n, acc)
			dx, x, dy = dx[n:], x[n:], dy[n:]
		}
	case core.ReLU:
		for i, v := range x {
			g := dy[i]
			if !(v > 0) {
				g = 0
			}
			if k.acc {
				dx[i] += g
			} else {
				dx[i] = g
			}
		}
		return
	}
	for i, v := range x {
		g := float32(unaryDeriv(k.op, float64(v)) * float64(dy[i]))
		if k.acc {
			dx[i] += g
		} else {
			dx[i] = g
		}
	}
}

// UnaryGrad computes dx = op'(x)·dy, or adds it into dx when accumulate is set.
func (b *Backend) UnaryGrad(op core.UnaryOp, dx, x, dy *core.Tensor, accumulate bool) {
	checkSameSize("UnaryGrad", dx, x)
	checkSameSize("UnaryGrad", dx, dy)
	if op > core.Tanh {
		panic(fmt.Sprintf("cpu: UnaryGrad: unknown op %d", op))
	}
	d := b.f32(dx, "UnaryGrad")
	forEach(unaryGradKernel{op, d, b.f32(x, "UnaryGrad"), b.f32(dy, "UnaryGrad"), accumulate}, len(d), 1)
}

type dropoutKernel struct {
	d, mask, x []float32
	p, scale   float32
	seed       uint64
}

func (k dropoutKernel) run(lo, hi int) {
	for i := lo; i < hi; i++ {
		var m float32
		if core.DropoutUniform(k.seed, i) >= k.p {
			m = k.scale
		}
		if k.mask != nil {
			k.mask[i] = m
		}
		k.d[i] = k.x[i] * m
	}
}

// Dropout zeroes elements with probability p and scales survivors by 1/(1-p), writing
// the mask when mask is not nil. dst may alias x.
func (b *Backend) Dropout(dst, mask, x *core.Tensor, p float32, seed uint64) {
	checkSameSize("Dropout", dst, x)
	if mask != nil {
		checkSameSize("Dropout", dst, mask)
	}
	if !(p >= 0 && p <= 1) {
		panic(fmt.Sprintf("cpu: Dropout: probability %v is outside [0, 1]", p))
	}
	d := b.f32(dst, "Dropout")
	scale := float32(0)
	if p < 1 {
		scale = 1 / (1 - p)
	}
	forEach(dropoutKernel{d, b.opt(mask, "Dropout"), b.f32(x, "Dropout"), p, scale, seed}, len(d), 1)
}

// sumBlock is the fixed block size of float64 partial sums: results then do not depend
// on how many goroutines computed them.
const sumBlock = 1 << 13

type sumSquaresKernel struct {
	x       []float32
	partial []float64
}

func (k sumSquaresKernel) run(lo, hi int) {
	for blk := lo; blk < hi; blk++ {
		x := k.x[blk*sumBlock : min((blk+1)*sumBlock, len(k.x))]
		var s float64
		for _, v := range x {
			f := float64(v)
			s += f * f
		}
		k.partial[blk] = s
	}
}

// SumSquares writes Σx² into dst [1], or adds it when accumulate is set.
func (b *Backend) SumSquares(dst, x *core.Tensor, accumulate bool) {
	d := b.f32(dst, "SumSquares")
	if len(d) != 1 {
		panic(fmt.Sprintf("cpu: SumSquares: destination has shape %v, want one element", dst.Shape()))
	}
	xs := b.f32(x, "SumSquares")
	nb := (len(xs) + sumBlock - 1) / sumBlock
	sp := b.getScratch(nb)
	forEach(sumSquaresKernel{xs, *sp}, nb, sumBlock)
	s := sumInOrder(*sp)
	b.putScratch(sp)
	if accumulate {
		s += float64(d[0])
	}
	d[0] = float32(s)
}

func sumInOrder(p []float64) float64 {
	var s float64
	for _, v := range p {
		s += v
	}
	return s
}

type scaleKernel struct {
	d []float32
	s float32
}

func (k scaleKernel) run(lo, hi int) {
	for i := range k.d[lo:hi] {
		k.d[lo+i] *= k.s
	}
}

// ScaleBy multiplies dst by s[0]·alpha.
func (b *Backend) ScaleBy(dst, s *core.Tensor, alpha float32) {
	ss := b.f32(s, "ScaleBy")
	if len(ss) != 1 {
		panic(fmt.Sprintf("cpu: ScaleBy: scale has shape %v, want one element", s.Shape()))
	}
	d := b.f32(dst, "ScaleBy")
	forEach(scaleKernel{d, ss[0] * alpha}, len(d), 1)
}
