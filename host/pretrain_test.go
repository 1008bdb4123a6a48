package main

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/ref"
)

// The denoising term is mean((x·Wᵀ + b − t)²) with gradient 2/(N·P)·(x·Wᵀ + b − t)·W
// for x: both checked against those closed forms in float64 (to 1e-7 relative: the
// tape's Mean scales by 1/(N·P) rounded to float32).
func TestDecoderLossClosedForm(t *testing.T) {
	const n, e, p = 3, 4, 5
	rng := rand.New(rand.NewPCG(5, 6))
	draw := func(k int) []float64 {
		v := make([]float64, k)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	xs, ws, bs, ts := draw(n*e), draw(p*e), draw(p), draw(n*p)
	b := ref.New()
	dec := &decoder{W: autograd.NewParam(b, "w", core.Shape{p, e}), B: autograd.NewParam(b, "b", core.Shape{p})}
	ref.UploadFloat64(dec.W.Value, ws)
	ref.UploadFloat64(dec.B.Value, bs)
	x := autograd.NewParam(b, "x", core.Shape{n, e})
	ref.UploadFloat64(x.Value, xs)
	target := autograd.NewParam(b, "t", core.Shape{n, p})
	target.SetTrainable(false)
	ref.UploadFloat64(target.Value, ts)
	tp := autograd.NewTape(b)
	loss := dec.loss(tp, x, target)
	tp.Backward(loss)

	var want float64
	wantGrad := make([]float64, n*e)
	for i := range n {
		for j := range p {
			r := bs[j] - ts[i*p+j]
			for k := range e {
				r += xs[i*e+k] * ws[j*e+k]
			}
			want += r * r / (n * p)
			for k := range e {
				wantGrad[i*e+k] += 2 * r * ws[j*e+k] / (n * p)
			}
		}
	}
	if got := ref.Float64s(loss.Value)[0]; math.Abs(got-want) > 1e-7*math.Abs(want) {
		t.Fatalf("loss %.15g, want %.15g", got, want)
	}
	for i, g := range ref.Float64s(x.Grad) {
		if math.Abs(g-wantGrad[i]) > 1e-7*math.Abs(wantGrad[i])+1e-12 {
			t.Errorf("d loss/d x[%d] = %.15g, want %.15g", i, g, wantGrad[i])
		}
	}
}
