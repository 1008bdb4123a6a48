package optim

import (
	"math"
	"math/rand/v2"
	"testing"

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

func download(b core.Backend, t *core.Tensor) []float32 {
	out := make([]float32, t.Size())
	b.Download(out, t)
	return out
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

// assertClose fails unless got and want agree to |got-want| <= tol·max(1, |want|).
func assertClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*math.Max(1, math.Abs(want[i]))) {
			t.Errorf("%s[%d] = %.9g, want %.9g (diff %.3g, tol %.3g)", what, i, got[i], want[i], d, tol)
		}
	}
}
