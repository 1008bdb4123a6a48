//go:build cuda

package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/backendtest"
)

// open returns the GPU backend or skips: no driver or GPU is not a failure, since
// most machines that compile this have none.
func open(t *testing.T) *Backend {
	t.Helper()
	b, err := Open("cuda:0")
	if err != nil {
		t.Skipf("no usable GPU: %v", err)
	}
	return b
}

// TestConformance runs the shared suite: every Backend method against the float64
// reference backend on random shapes, odd sizes and broadcasts.
func TestConformance(t *testing.T) {
	b := open(t)
	tol := backendtest.DefaultTolerances()
	// Atomic accumulation (scatter, sums) and fused reductions change the order of
	// float32 additions relative to the reference.
	tol.Reduce.Rel, tol.Reduce.Abs = 1e-5, 1e-5
	backendtest.Run(t, func() core.Backend { return b }, tol)
}

// TestKronSumAgainstGonum runs autograd's Σ A_i⊗B_i (MatMul + Permute on the GPU)
// against gonum's Kronecker products.
func TestKronSumAgainstGonum(t *testing.T) {
	b := open(t)
	rng := rand.New(rand.NewPCG(1, 2))
	n, p, q, r, s := 3, 5, 2, 3, 7
	av := make([]float32, n*p*q)
	bv := make([]float32, n*r*s)
	for i := range av {
		av[i] = float32(rng.NormFloat64())
	}
	for i := range bv {
		bv[i] = float32(rng.NormFloat64())
	}
	tp := autograd.NewTape(b)
	tp.SetGradEnabled(false)
	defer tp.Reset()
	got := make([]float32, p*r*q*s)
	b.Download(got, tp.KronSum(tp.Input(av, n, p, q), tp.Input(bv, n, r, s)).Value)
	want := mat.NewDense(p*r, q*s, nil)
	for i := 0; i < n; i++ {
		A := mat.NewDense(p, q, nil)
		B := mat.NewDense(r, s, nil)
		for j := 0; j < p*q; j++ {
			A.Set(j/q, j%q, float64(av[i*p*q+j]))
		}
		for j := 0; j < r*s; j++ {
			B.Set(j/s, j%s, float64(bv[i*r*s+j]))
		}
		var k mat.Dense
		k.Kronecker(A, B)
		want.Add(want, &k)
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want.At(i/(q*s), i%(q*s))); d > 1e-5 {
			t.Fatalf("element %d differs from gonum by %.3g", i, d)
		}
	}
}

// TestTrainingStepMatchesCPU runs one transformer-block training step (forward,
// backward, AdamW) on the GPU and on the CPU from the same weights.
func TestTrainingStepMatchesCPU(t *testing.T) {
	g := open(t)
	run := func(be core.Backend) []float32 {
		rng := rand.New(rand.NewPCG(3, 4))
		param := func(name string, shape ...int) *autograd.Var {
			p := autograd.NewParam(be, name, core.Shape(shape))
			d := make([]float32, p.Value.Size())
			for i := range d {
				d[i] = float32(rng.NormFloat64() * 0.1)
			}
			be.Upload(p.Value, d)
			return p
		}
		w1, w2, head := param("w1", 64, 32), param("w2", 32, 64), param("head", 5, 32)
		x := make([]float32, 8*10*32)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		labels := be.Alloc(core.Shape{8})
		be.Upload(labels, []float32{0, 1, 2, 3, 4, 0, 1, 2})
		tp := autograd.NewTape(be)
		in := tp.Input(x, 8, 10, 32)
		h := tp.LayerNorm(in, nil, nil, 1e-5)
		q := tp.Reshape(h, 8, 10, 2, 16)
		att := tp.Reshape(tp.Attention(tp.Permute(q, 0, 2, 1, 3), tp.Permute(q, 0, 2, 1, 3), tp.Permute(q, 0, 2, 1, 3), false, 0.25), 8, 10, 32)
		y := tp.Add(in, tp.Linear(tp.QuickGELU(tp.Linear(att, w1, nil)), w2, nil))
		logits := tp.Linear(tp.Mean(y, []int{1}, false), head, nil)
		tp.Backward(tp.CrossEntropy(logits, labels, 0.1))
		var out []float32
		for _, p := range []*autograd.Var{w1, w2, head} {
			d := make([]float32, p.Grad.Size())
			be.Download(d, p.Grad)
			out = append(out, d...)
		}
		return out
	}
	want, got := run(cpu.New()), run(g)
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("gradient %d: GPU %v, CPU %v", i, got[i], want[i])
		}
	}
}
