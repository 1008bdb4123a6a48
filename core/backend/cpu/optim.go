package cpu

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

type sgdKernel struct {
	p, g, m                   []float32
	lr, momentum, wd          float32
	nesterov, first, momentOn bool
}

func (k sgdKernel) run(lo, hi int) {
	for i := lo; i < hi; i++ {
		g := k.g[i] + k.wd*k.p[i]
		step := g
		if k.momentOn {
			buf := g
			if !k.first {
				buf = k.momentum*k.m[i] + g
			}
			k.m[i] = buf
			step = buf
			if k.nesterov {
				step = g + k.momentum*buf
			}
		}
		k.p[i] -= k.lr * step
	}
}

// SGDStep applies one step of SGD with optional (Nesterov) momentum, PyTorch's rule.
func (b *Backend) SGDStep(param, grad, mom *core.Tensor, lr, momentum, weightDecay float32, nesterov, first bool) {
	checkSameSize("SGDStep", param, grad)
	if momentum != 0 {
		if mom == nil {
			panic("cpu: SGDStep: momentum is non-zero but the momentum buffer is nil")
		}
		checkSameSize("SGDStep", param, mom)
	}
	p := b.f32(param, "SGDStep")
	k := sgdKernel{
		p: p, g: b.f32(grad, "SGDStep"), lr: lr, momentum: momentum, wd: weightDecay,
		nesterov: nesterov, first: first, momentOn: momentum != 0,
	}
	if k.momentOn {
		k.m = b.f32(mom, "SGDStep")
	}
	forEach(k, len(p), 1)
}

type adamWKernel struct {
	p, g, m, v []float32
	c          adamWConsts
}

// adamWConsts are one step's scalars, laid out for adamWAVX2.
type adamWConsts struct {
	beta1, oneMinusBeta1, beta2, oneMinusBeta2 float64
	decay, stepSize, sqrtBC2i, eps             float64
}

func (k adamWKernel) run(lo, hi int) {
	if hasAVX2 && hi-lo >= 4 {
		n := (hi - lo) &^ 3
		adamWAVX2(&k.p[lo], &k.g[lo], &k.m[lo], &k.v[lo], n, &k.c)
		lo += n
	}
	c := &k.c
	for i := lo; i < hi; i++ {
		g := float64(k.g[i])
		m := c.beta1*float64(k.m[i]) + c.oneMinusBeta1*g
		v := c.beta2*float64(k.v[i]) + c.oneMinusBeta2*g*g
		k.m[i], k.v[i] = float32(m), float32(v)
		p := float64(k.p[i]) * c.decay
		k.p[i] = float32(p - c.stepSize*m/(math.Sqrt(v)*c.sqrtBC2i+c.eps))
	}
}

// AdamWStep applies one AdamW step (PyTorch's decoupled weight decay); step is 1-based.
func (b *Backend) AdamWStep(param, grad, m, v *core.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int) {
	checkSameSize("AdamWStep", param, grad)
	checkSameSize("AdamWStep", param, m)
	checkSameSize("AdamWStep", param, v)
	if step < 1 {
		panic(fmt.Sprintf("cpu: AdamWStep: step %d, want 1 or more", step))
	}
	b1, b2 := float64(beta1), float64(beta2)
	bc1 := 1 - math.Pow(b1, float64(step))
	bc2 := 1 - math.Pow(b2, float64(step))
	p := b.f32(param, "AdamWStep")
	k := adamWKernel{
		p: p, g: b.f32(grad, "AdamWStep"), m: b.f32(m, "AdamWStep"), v: b.f32(v, "AdamWStep"),
		c: adamWConsts{beta1: b1, oneMinusBeta1: 1 - b1, beta2: b2, oneMinusBeta2: 1 - b2,
			decay: 1 - float64(lr)*float64(weightDecay), stepSize: float64(lr) / bc1,
			sqrtBC2i: 1 / math.Sqrt(bc2), eps: float64(eps)},
	}
	forEach(k, len(p), 1)
}
