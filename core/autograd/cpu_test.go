package autograd_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/backend/ref"
	"github.com/kadapt/kadapt/core/testutil"
)

// runOn runs a case forward and backward on b from float32-exact data and returns the
// output and the gradient of every input (nil where there is none).
func runOn(b core.Backend, c opCase, data [][]float64, r []float64) (out []float64, grads [][]float64) {
	vars := setup(b, c, data, false)
	tp := newTape(b, c)
	y := c.f(tp, vars)
	out = testutil.Download64(y.Value)
	tp.Backward(weightedLoss(tp, y, r, false))
	grads = make([][]float64, len(vars))
	for i, v := range vars {
		if v.Grad != nil {
			grads[i] = testutil.Download64(v.Grad)
		}
	}
	tp.Reset()
	return out, grads
}

// TestCPUAgainstRef runs every op case on the CPU backend and on the ref backend from
// the same float32 inputs and compares outputs and gradients at float32 tolerances.
func TestCPUAgainstRef(t *testing.T) {
	for ci, c := range opCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ci)+1, 11))
			data := genData(rng, c)
			for i := range data {
				data[i] = roundTo32(data[i])
			}
			r := roundTo32(randR(rng, outShape(c, data).Size()))
			wantOut, wantGrads := runOn(ref.New(), c, data, r)
			gotOut, gotGrads := runOn(cpu.New(), c, data, r)
			assertClose32(t, "forward", gotOut, wantOut)
			for i := range wantGrads {
				if (gotGrads[i] == nil) != (wantGrads[i] == nil) {
					t.Fatalf("input %d: cpu has gradient %v, ref %v", i, gotGrads[i] != nil, wantGrads[i] != nil)
				}
				if wantGrads[i] != nil {
					assertClose32(t, fmt.Sprintf("d loss/d input %d", i), gotGrads[i], wantGrads[i])
				}
			}
		})
	}
}

// assertClose32 allows float32 rounding relative to the tensor's largest magnitude.
func assertClose32(t *testing.T, what string, got, want []float64) {
	t.Helper()
	scale := 1.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	testutil.AllClose(t, what, got, want, 2e-5*scale, 1e-4)
}
