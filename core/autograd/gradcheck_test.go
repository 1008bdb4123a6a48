package autograd_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/ref"
	"github.com/kadapt/kadapt/core/testutil"
)

// genData draws the inputs of a case.
func genData(rng *rand.Rand, c opCase) [][]float64 {
	data := make([][]float64, len(c.inputs))
	for i, in := range c.inputs {
		d := make([]float64, core.Shape(in.shape).Size())
		for j := range d {
			if in.kind == positive {
				d[j] = 0.5 + 1.5*rng.Float64()
			} else {
				d[j] = 2*rng.Float64() - 1
			}
		}
		data[i] = d
	}
	return data
}

func toFloat32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func roundTo32(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(float32(v))
	}
	return out
}

// setup makes the inputs of a case on b: parameters (frozen ones too) and Consts.
// exact uploads float64 values unrounded, which only the ref backend supports.
func setup(b core.Backend, c opCase, data [][]float64, exact bool) []*autograd.Var {
	vars := make([]*autograd.Var, len(c.inputs))
	for i, in := range c.inputs {
		var v *autograd.Var
		if in.kind == constant {
			v = autograd.NewTape(b).Const(b.Alloc(core.Shape(in.shape)))
		} else {
			v = autograd.NewParam(b, fmt.Sprintf("x%d", i), core.Shape(in.shape))
			v.SetTrainable(in.kind != frozen)
		}
		if exact {
			ref.UploadFloat64(v.Value, data[i])
		} else {
			b.Upload(v.Value, toFloat32(data[i]))
		}
		vars[i] = v
	}
	return vars
}

func newTape(b core.Backend, c opCase) *autograd.Tape {
	tp := autograd.NewTape(b)
	tp.Training = c.train
	tp.SetSeed(42)
	return tp
}

// weightedLoss builds Σ out·R on the tape.
func weightedLoss(tp *autograd.Tape, out *autograd.Var, r []float64, exact bool) *autograd.Var {
	rt := tp.Backend().Alloc(out.Shape())
	if exact {
		ref.UploadFloat64(rt, r)
	} else {
		tp.Backend().Upload(rt, toFloat32(r))
	}
	return tp.Sum(tp.Mul(out, tp.Const(rt)), nil, false)
}

func outShape(c opCase, data [][]float64) core.Shape {
	b := ref.New()
	vars := setup(b, c, data, true)
	tp := newTape(b, c)
	return c.f(tp, vars).Shape().Clone()
}

func randR(rng *rand.Rand, n int) []float64 {
	r := make([]float64, n)
	for i := range r {
		r[i] = 2*rng.Float64() - 1
	}
	return r
}

// TestGradients checks every op's backward pass against central finite differences of
// loss = Σ out·R, all in float64 on the ref backend, and its forward value against an
// independent host computation where the op is composed in this package.
func TestGradients(t *testing.T) {
	for ci, c := range opCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ci)+1, 7))
			data := genData(rng, c)
			r := randR(rng, outShape(c, data).Size())
			b := ref.New()
			vars := setup(b, c, data, true)

			tp := newTape(b, c)
			out := c.f(tp, vars)
			if c.want != nil {
				want := c.want(data)
				testutil.AllClose(t, "forward", ref.Float64s(out.Value), want, 1e-12, 1e-10)
			}
			loss := weightedLoss(tp, out, r, true)
			tp.Backward(loss)

			evalLoss := func() float64 {
				tp := newTape(b, c)
				y := ref.Float64s(c.f(tp, vars).Value)
				tp.Reset()
				s := 0.0
				for i, v := range y {
					s += v * r[i]
				}
				return s
			}
			const h = 1e-6
			for i, v := range vars {
				kind := c.inputs[i].kind
				if kind == frozen || kind == constant {
					if v.Grad != nil {
						t.Errorf("input %d (%s) got a gradient", i, []string{"", "", "frozen", "constant"}[kind])
					}
					continue
				}
				if v.Grad == nil {
					t.Fatalf("input %d: no gradient", i)
				}
				got := ref.Float64s(v.Grad)
				fd := testutil.CentralDiffRef(v.Value, evalLoss, h, nil)
				testutil.AllClose(t, fmt.Sprintf("d loss/d input %d", i), got, fd, 1e-6, 1e-6)
			}
			tp.Reset()
		})
	}
}
