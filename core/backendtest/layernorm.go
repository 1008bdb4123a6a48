package backendtest

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

func layerNormCases() []testCase {
	var cs []testCase
	const eps = 1e-5
	for _, c := range []struct {
		s      core.Shape
		offset float64
	}{{core.Shape{3, 17}, 0}, {core.Shape{2, 3, 33}, 4}, {core.Shape{5, 1}, 0}, {core.Shape{1, 7}, 1}, {core.Shape{4, 65}, 0},
		{core.Shape{257, 129}, 1}} {
		D := c.s[len(c.s)-1]
		rows := core.Shape{c.s.Size() / D}
		for _, affine := range []bool{true, false} {
			cs = append(cs, testCase{fmt.Sprintf("LayerNorm/%v/offset=%g/affine=%v", c.s, c.offset, affine), func(e *env) {
				x := e.uniform(c.s, c.offset-1, c.offset+1)
				var gamma, beta *pair
				if affine {
					gamma, beta = e.uniform(core.Shape{D}, 0.5, 1.5), e.uniform(core.Shape{D}, -1, 1)
				}
				d, mean, rstd := e.nan(c.s), e.nan(rows), e.nan(rows)
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
					be.LayerNorm(t(d), t(mean), t(rstd), t(x), t(gamma), t(beta), eps)
				})
				e.check("dst", d, e.tol.LayerNorm)
				e.check("mean", mean, e.tol.LayerNorm)
				e.check("rstd", rstd, e.tol.LayerNorm)
			}})
		}
		for _, g := range []struct {
			name         string
			gamma, dAff  bool
			accumulateDx bool
		}{
			{"affine", true, true, false},
			{"affine_accumulate", true, true, true},
			{"frozen_affine", true, false, true},
			{"no_affine", false, false, false},
		} {
			cs = append(cs, testCase{fmt.Sprintf("LayerNormGrad/%v/offset=%g/%s", c.s, c.offset, g.name), func(e *env) {
				x := e.uniform(c.s, c.offset-1, c.offset+1)
				var gamma, dgamma, dbeta *pair
				if g.gamma {
					gamma = e.uniform(core.Shape{D}, 0.5, 1.5)
				}
				if g.dAff {
					// Parameter gradients add into what is there.
					dgamma, dbeta = e.uniform(core.Shape{D}, -1, 1), e.uniform(core.Shape{D}, -1, 1)
				}
				stats := func(which int) func(core.Backend, *core.Tensor) {
					return func(r core.Backend, dst *core.Tensor) {
						y, other := r.Alloc(c.s), r.Alloc(rows)
						defer r.Release(y)
						defer r.Release(other)
						if which == 0 {
							r.LayerNorm(y, dst, other, x.r, nil, nil, eps)
						} else {
							r.LayerNorm(y, other, dst, x.r, nil, nil, eps)
						}
					}
				}
				mean, rstd := e.fromRef(rows, stats(0)), e.fromRef(rows, stats(1))
				dy := e.uniform(c.s, -1, 1)
				dx := e.nan(c.s)
				if g.accumulateDx {
					dx = e.uniform(c.s, -1, 1)
				}
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
					be.LayerNormGrad(t(dx), t(dgamma), t(dbeta), t(dy), t(x), t(mean), t(rstd), t(gamma), g.accumulateDx)
				})
				e.check("dx", dx, e.tol.LayerNorm)
				if g.dAff {
					e.check("dgamma", dgamma, e.tol.LayerNorm)
					e.check("dbeta", dbeta, e.tol.LayerNorm)
				}
			}})
		}
	}
	return cs
}
