package optim

import (
	"math/rand/v2"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/backend/ref"
)

// testBackends are the engines every hand-computed test runs on: the float32 CPU
// backend and the float64 reference.
func testBackends() []core.Backend {
	return []core.Backend{cpu.New(), ref.New()}
}

// newParam makes a trainable parameter holding vals.
func newParam(b core.Backend, name string, vals []float32, shape ...int) *autograd.Var {
	p := autograd.NewParam(b, name, core.Shape(shape))
	b.Upload(p.Value, vals)
	p.SetTrainable(true)
	return p
}

// setGrad gives p a gradient holding vals, as Backward would.
func setGrad(b core.Backend, p *autograd.Var, vals []float32) {
	if p.Grad == nil {
		p.Grad = b.Alloc(p.Value.Shape())
	}
	b.Upload(p.Grad, vals)
}

func randVals(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
