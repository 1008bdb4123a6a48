package backendtest

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

func fillCopyCases() []testCase {
	var cs []testCase
	for i, s := range elementShapes {
		v := []float32{0, -2.5, 3.25e-3, 1e30, 7}[i]
		cs = append(cs, testCase{fmt.Sprintf("Fill/%v/v=%g", s, v), func(e *env) {
			d := e.uniform(s, -1, 1)
			e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Fill(t(d), v) })
			e.check("dst", d, e.tol.Exact)
		}})
	}
	for _, c := range [][2]core.Shape{{{12}, {3, 4}}, {{2, 1, 33}, {66}}, {{1}, {}}, {{3, 17}, {3, 17}}} {
		cs = append(cs, testCase{fmt.Sprintf("Copy/%v<-%v", c[0], c[1]), func(e *env) {
			d, x := e.nan(c[0]), e.uniform(c[1], -1, 1)
			e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Copy(t(d), t(x)) })
			e.check("dst", d, e.tol.Exact)
		}})
	}
	return cs
}

func axpbyCases() []testCase {
	var cs []testCase
	for _, s := range []core.Shape{{1}, {17}, {3, 33}, {large}} {
		for _, ab := range [][2]float32{{1, 0}, {0.5, -2}, {-1.5, 1}, {2, 0.25}} {
			cs = append(cs, testCase{fmt.Sprintf("Axpby/%v/alpha=%g,beta=%g", s, ab[0], ab[1]), func(e *env) {
				x := e.uniform(s, -1, 1)
				d := e.uniform(s, -1, 1)
				if ab[1] == 0 {
					d = e.nan(s) // beta 0 must ignore even NaN
				}
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Axpby(t(d), ab[0], t(x), ab[1]) })
				e.check("dst", d, e.tol.Elementwise)
			}})
		}
	}
	return cs
}

var unaryOps = []core.UnaryOp{core.Neg, core.Exp, core.Log, core.Sqrt, core.Rsqrt, core.Square, core.Abs,
	core.ReLU, core.GELU, core.QuickGELU, core.SiLU, core.Sigmoid, core.Tanh}

// unaryDomain is the input range for op: positive where the function or its derivative
// needs it, wide enough elsewhere to reach the saturated tails.
func unaryDomain(op core.UnaryOp) (lo, hi float64) {
	switch op {
	case core.Log, core.Sqrt, core.Rsqrt:
		return 0.1, 4
	case core.Exp:
		return -4, 4
	}
	return -6, 6
}

func unaryCases() []testCase {
	var cs []testCase
	for _, op := range unaryOps {
		lo, hi := unaryDomain(op)
		for _, s := range []core.Shape{{1}, {3, 17}, {2, 3, 33}, {large}} {
			cs = append(cs, testCase{fmt.Sprintf("Unary/%v/%v", op, s), func(e *env) {
				x, d := e.uniform(s, lo, hi), e.nan(s)
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Unary(op, t(d), t(x)) })
				e.check("dst", d, e.tol.Unary)
			}})
		}
		cs = append(cs, testCase{fmt.Sprintf("Unary/%v/in_place/[7]", op), func(e *env) {
			x := e.uniform(core.Shape{7}, lo, hi)
			e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Unary(op, t(x), t(x)) })
			e.check("dst aliasing x", x, e.tol.Unary)
		}})
		for _, c := range []struct {
			s   core.Shape
			acc bool
		}{{core.Shape{3, 17}, false}, {core.Shape{2, 3, 33}, true}, {core.Shape{1}, false}, {core.Shape{7}, true},
			{core.Shape{large}, true}} {
			cs = append(cs, testCase{fmt.Sprintf("UnaryGrad/%v/%v/accumulate=%v", op, c.s, c.acc), func(e *env) {
				x, dy := e.uniform(c.s, lo, hi), e.uniform(c.s, -1, 1)
				dx := e.nan(c.s)
				if c.acc {
					dx = e.uniform(c.s, -1, 1)
				}
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.UnaryGrad(op, t(dx), t(x), t(dy), c.acc) })
				e.check("dx", dx, e.tol.Unary)
			}})
		}
	}
	return cs
}

func dropoutCases() []testCase {
	var cs []testCase
	for i, c := range []struct {
		s core.Shape
		p float32
	}{
		{core.Shape{1}, 0.5}, {core.Shape{3, 17}, 0}, {core.Shape{3, 17}, 0.1}, {core.Shape{2, 3, 33}, 0.5},
		{core.Shape{1000}, 0.9}, {core.Shape{7, 33}, 1}, {core.Shape{257}, 0.25}, {core.Shape{large}, 0.3},
	} {
		inPlace := i%2 == 1
		cs = append(cs, testCase{fmt.Sprintf("Dropout/%v/p=%g/in_place=%v", c.s, c.p, inPlace), func(e *env) {
			seed := e.rng.Uint64()
			x := e.uniform(c.s, -1, 1)
			mask, d := e.nan(c.s), e.nan(c.s)
			if inPlace {
				d = x
			}
			e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Dropout(t(d), t(mask), t(x), c.p, seed) })
			got, want := e.download(mask)
			for j := range want {
				if (got[j] == 0) != (want[j] == 0) {
					e.failf("mask %v: element %v kept=%v, want kept=%v (seed %#x): masks must match exactly",
						c.s, unravel(j, c.s), got[j] != 0, want[j] != 0, seed)
					break
				}
			}
			e.compare("mask", c.s, got, want, e.tol.Elementwise)
			e.check("dst", d, e.tol.Elementwise)
		}})
	}
	return cs
}

func sumSquaresCases() []testCase {
	var cs []testCase
	for _, s := range []core.Shape{{1}, {17}, {3, 33}, {5, 7, 17}, {large}} {
		for _, acc := range []bool{false, true} {
			cs = append(cs, testCase{fmt.Sprintf("SumSquares/%v/accumulate=%v", s, acc), func(e *env) {
				x := e.uniform(s, -1, 1)
				d := e.nan(core.Shape{1})
				if acc {
					d = e.uniform(core.Shape{1}, 0, 2)
				}
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.SumSquares(t(d), t(x), acc) })
				e.check("dst", d, e.tol.Reduce)
			}})
		}
	}
	for _, s := range []core.Shape{{1}, {3, 17}, {2, 3, 33}, {large}} {
		for _, alpha := range []float32{1, -0.5} {
			cs = append(cs, testCase{fmt.Sprintf("ScaleBy/%v/alpha=%g", s, alpha), func(e *env) {
				d, sc := e.uniform(s, -1, 1), e.uniform(core.Shape{1}, 0.1, 2)
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.ScaleBy(t(d), t(sc), alpha) })
				e.check("dst", d, e.tol.Elementwise)
			}})
		}
	}
	return cs
}
