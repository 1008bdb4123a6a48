package optim

import (
	"fmt"
	"math"
	"testing"

	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/testutil"
)

// ClipGradNorm against the global norm and scale computed by hand:
// norm = √(Σ g²) over all gradients, scale = min(1, max/(norm+1e-6)).
func TestClipGradNorm(t *testing.T) {
	g1 := []float32{3, -4, 1}
	g2 := []float32{2, 0, -1, 0.5}
	// Σ g² = 9+16+1 + 4+0+1+0.25 = 31.25
	norm := math.Sqrt(31.25)
	cases := []struct {
		maxNorm float32
		scale   float64
	}{
		{1, 1 / (norm + 1e-6)},
		{5, 5 / (norm + 1e-6)},
		{10, 1}, // under the bound: untouched
		{float32(norm), float64(float32(norm)) / (norm + 1e-6)}, // at the bound: only the 1e-6 and rounding
		{float32(math.Inf(1)), 1},
		{0, 0},
		{-2, 0}, // treated as 0, never a sign flip
	}
	for _, c := range cases {
		for _, b := range testBackends() {
			t.Run(fmt.Sprintf("%s/max=%v", b.Name(), c.maxNorm), func(t *testing.T) {
				p1 := newParam(b, "p1", []float32{0, 0, 0}, 3)
				p2 := newParam(b, "p2", []float32{0, 0, 0, 0}, 2, 2)
				p3 := newParam(b, "p3", []float32{7}, 1) // no gradient: ignored
				setGrad(b, p1, g1)
				setGrad(b, p2, g2)
				n := ClipGradNorm(b, []*autograd.Var{p1, p3, p2}, c.maxNorm)
				testutil.AllClose(t, "norm", testutil.Download(b, n), []float64{norm}, 1e-6, 1e-6)
				if n.Size() != 1 {
					t.Errorf("norm tensor has shape %v, want [1]", n.Shape())
				}
				scaled := func(g []float32) []float64 {
					out := to64(g)
					for i := range out {
						out[i] *= c.scale
					}
					return out
				}
				testutil.AllClose(t, "p1.grad", testutil.Download(b, p1.Grad), scaled(g1), 1e-6, 1e-6)
				testutil.AllClose(t, "p2.grad", testutil.Download(b, p2.Grad), scaled(g2), 1e-6, 1e-6)
				if p3.Grad != nil {
					t.Errorf("p3 gained a gradient")
				}
				b.Release(n)
			})
		}
	}
}

func TestClipGradNormNoGradients(t *testing.T) {
	for _, b := range testBackends() {
		p := newParam(b, "p", []float32{1, 2}, 2)
		n := ClipGradNorm(b, []*autograd.Var{p, nil}, 1)
		testutil.AllClose(t, b.Name()+" norm", testutil.Download(b, n), []float64{0}, 0, 0)
	}
}
