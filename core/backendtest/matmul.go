package backendtest

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

func flags(tA, tB bool) string {
	s := [2]byte{'N', 'N'}
	if tA {
		s[0] = 'T'
	}
	if tB {
		s[1] = 'T'
	}
	return string(s[:])
}

func matmulCases() []testCase {
	dims := [][3]int{{1, 1, 1}, {3, 7, 5}, {17, 33, 1}, {1, 17, 3}, {7, 65, 3}, {33, 3, 17}, {5, 1, 7}}
	alphaBeta := [][2]float32{{1, 0}, {0.5, 1.5}, {-1, 1}, {2, -0.5}, {1, 0}}
	layouts := []struct {
		name    string
		a, b, d core.Shape // batch axes
	}{
		{"plain", nil, nil, nil},
		{"batch[2]", core.Shape{2}, core.Shape{2}, core.Shape{2}},
		{"batch[2,3]", core.Shape{2, 3}, core.Shape{2, 3}, core.Shape{2, 3}},
		{"shared_a", nil, core.Shape{3}, core.Shape{3}},
		{"shared_b", core.Shape{1, 3}, nil, core.Shape{1, 3}},
	}
	var cs []testCase
	add := func(name string, tA, tB bool, aShape, bShape, dShape core.Shape, alpha, beta float32) {
		name = fmt.Sprintf("MatMul/%s/%s/a%v_b%v/alpha=%g,beta=%g", flags(tA, tB), name, aShape, bShape, alpha, beta)
		cs = append(cs, testCase{name, func(e *env) {
			a, b := e.uniform(aShape, -1, 1), e.uniform(bShape, -1, 1)
			d := e.uniform(dShape, -1, 1)
			if beta == 0 {
				d = e.nan(dShape)
			}
			e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
				be.MatMul(t(d), t(a), t(b), tA, tB, alpha, beta)
			})
			e.check("dst", d, e.tol.MatMul)
		}})
	}
	n := 0
	for _, lay := range layouts {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for range 2 {
					m, k, nn := dims[n%len(dims)][0], dims[n%len(dims)][1], dims[n%len(dims)][2]
					alpha, beta := alphaBeta[n%len(alphaBeta)][0], alphaBeta[n%len(alphaBeta)][1]
					n++
					aShape := append(lay.a.Clone(), m, k)
					if tA {
						aShape = append(lay.a.Clone(), k, m)
					}
					bShape := append(lay.b.Clone(), k, nn)
					if tB {
						bShape = append(lay.b.Clone(), nn, k)
					}
					add(lay.name, tA, tB, aShape, bShape, append(lay.d.Clone(), m, nn), alpha, beta)
				}
			}
		}
	}
	add("large", false, false, core.Shape{2, 65, 129}, core.Shape{2, 129, 67}, core.Shape{2, 65, 67}, 1, 1)
	add("large_shared_a", true, false, core.Shape{129, 65}, core.Shape{3, 129, 67}, core.Shape{3, 65, 67}, 0.5, 0)
	add("large_shared_b", false, true, core.Shape{3, 65, 129}, core.Shape{67, 129}, core.Shape{3, 65, 67}, -1, 0.5)
	return cs
}

// matmulBiasCases check core.BiasedMatMul where the backend has it, against ref's
// MatMul followed by a broadcast Add.
func matmulBiasCases() []testCase {
	var cs []testCase
	add := func(tA, tB bool, batch core.Shape, m, n, k int, alpha, beta float32) {
		aShape, bShape := append(batch.Clone(), m, k), core.Shape{k, n}
		if tA {
			aShape = append(batch.Clone(), k, m)
		}
		if tB {
			bShape = core.Shape{n, k}
		}
		dShape := append(batch.Clone(), m, n)
		name := fmt.Sprintf("MatMulBias/%s/a%v_b%v/alpha=%g,beta=%g", flags(tA, tB), aShape, bShape, alpha, beta)
		cs = append(cs, testCase{name, func(e *env) {
			biased, ok := e.b.(core.BiasedMatMul)
			if !ok {
				return
			}
			a, b, bias := e.uniform(aShape, -1, 1), e.uniform(bShape, -1, 1), e.uniform(core.Shape{n}, -1, 1)
			d := e.uniform(dShape, -1, 1)
			if beta == 0 {
				d = e.nan(dShape)
			}
			e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
				if be == e.r {
					be.MatMul(t(d), t(a), t(b), tA, tB, alpha, beta)
					be.Binary(core.Add, t(d), t(d), t(bias))
					return
				}
				biased.MatMulBias(t(d), t(a), t(b), t(bias), tA, tB, alpha, beta)
			})
			e.check("dst", d, e.tol.MatMul)
		}})
	}
	for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		add(tr[0], tr[1], nil, 3, 7, 5, 1, 0)
		add(tr[0], tr[1], nil, 65, 67, 129, 0.5, 1)
		add(tr[0], tr[1], core.Shape{2}, 17, 33, 9, -1, 0.5)
	}
	return cs
}
