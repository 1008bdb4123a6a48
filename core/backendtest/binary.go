package backendtest

import (
	"fmt"
	"math/rand/v2"

	"github.com/kadapt/kadapt/core"
)

// broadcastPairs lists operand shapes for Binary: equal, stretched both ways, missing
// leading axes, scalars, and a few drawn at random from odd sizes.
func broadcastPairs() [][2]core.Shape {
	pairs := [][2]core.Shape{
		{{7}, {7}},
		{{3, 1}, {1, 5}},
		{{2, 3, 17}, {17}},
		{{1}, {3, 17}},
		{{2, 1, 3}, {2, 5, 1}},
		{{}, {3}},
		{{33}, {}},
		{{2, 1, 1, 3}, {1, 7, 1, 1}},
		{{129, 257}, {257}},
		{{129, 1}, {1, 257}},
	}
	rng := rand.New(rand.NewPCG(17, 33))
	sizes := []int{1, 3, 7, 17}
	for range 4 {
		rank := 1 + rng.IntN(4)
		a := make(core.Shape, rank)
		for i := range a {
			a[i] = sizes[rng.IntN(len(sizes))]
		}
		if a.Size() > 600 {
			a[0] = 1
		}
		b := a.Clone()[rng.IntN(rank):]
		for i := range b {
			if rng.IntN(2) == 0 {
				b[i] = 1
			}
		}
		if rng.IntN(2) == 0 {
			a, b = b, a
		}
		pairs = append(pairs, [2]core.Shape{a, b})
	}
	return pairs
}

func binaryCases() []testCase {
	var cs []testCase
	ops := []core.BinaryOp{core.Add, core.Sub, core.Mul, core.Div, core.Maximum, core.Equal}
	for _, op := range ops {
		for _, sh := range broadcastPairs() {
			out, err := core.BroadcastShape(sh[0], sh[1])
			if err != nil {
				panic(fmt.Sprintf("backendtest: bad broadcast pair %v: %v", sh, err))
			}
			cs = append(cs, testCase{fmt.Sprintf("Binary/%v/%v_%v", op, sh[0], sh[1]), func(e *env) {
				gen := func(s core.Shape, divisor bool) []float32 {
					v := e.values(s.Size(), -2, 2)
					for i := range v {
						switch {
						case op == core.Equal || op == core.Maximum:
							// Small integers make ties and equalities common.
							v[i] = float32(e.rng.IntN(3) - 1)
						case op == core.Div && divisor:
							// Keep divisors away from zero, with either sign.
							v[i] = float32(0.5 + 1.5*e.rng.Float64())
							if e.rng.IntN(2) == 0 {
								v[i] = -v[i]
							}
						}
					}
					return v
				}
				a, b := e.upload(sh[0], gen(sh[0], false)), e.upload(sh[1], gen(sh[1], true))
				d := e.nan(out)
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Binary(op, t(d), t(a), t(b)) })
				e.check("dst", d, e.tol.Elementwise)
			}})
		}
	}
	return cs
}
