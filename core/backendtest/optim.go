package backendtest

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

func optimizerCases() []testCase {
	const steps = 4
	var cs []testCase
	for _, c := range []struct {
		s                core.Shape
		lr, momentum, wd float32
		nesterov         bool
	}{
		{core.Shape{17}, 0.1, 0, 0, false},
		{core.Shape{3, 7}, 0.05, 0, 0.01, false},
		{core.Shape{33}, 0.1, 0.9, 0, false},
		{core.Shape{2, 17}, 0.01, 0.9, 1e-4, true},
		{core.Shape{1}, 0.2, 0.5, 0.1, false},
		{core.Shape{large}, 0.01, 0.9, 1e-4, true},
	} {
		name := fmt.Sprintf("SGDStep/%v/lr=%g,momentum=%g,wd=%g,nesterov=%v", c.s, c.lr, c.momentum, c.wd, c.nesterov)
		cs = append(cs, testCase{name, func(e *env) {
			param := e.uniform(c.s, -1, 1)
			var mom *pair
			if c.momentum != 0 {
				mom = e.nan(c.s) // the first step sets it without reading
			}
			for step := range steps {
				grad := e.uniform(c.s, -1, 1)
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
					be.SGDStep(t(param), t(grad), t(mom), c.lr, c.momentum, c.wd, c.nesterov, step == 0)
				})
				e.check(fmt.Sprintf("param after step %d", step+1), param, e.tol.Optimizer)
				if mom != nil {
					e.check(fmt.Sprintf("mom after step %d", step+1), mom, e.tol.Optimizer)
				}
			}
		}})
	}
	for _, c := range []struct {
		s                         core.Shape
		lr, beta1, beta2, eps, wd float32
	}{
		{core.Shape{17}, 1e-3, 0.9, 0.999, 1e-8, 0.01},
		{core.Shape{3, 7}, 0.05, 0.8, 0.95, 1e-6, 0},
		{core.Shape{33}, 0.01, 0.9, 0.999, 1e-8, 0.1},
		{core.Shape{1}, 0.1, 0.5, 0.75, 1e-3, 0.05},
		{core.Shape{large}, 1e-3, 0.9, 0.999, 1e-8, 0.01},
	} {
		name := fmt.Sprintf("AdamWStep/%v/lr=%g,betas=%g,%g,eps=%g,wd=%g", c.s, c.lr, c.beta1, c.beta2, c.eps, c.wd)
		cs = append(cs, testCase{name, func(e *env) {
			param := e.uniform(c.s, -1, 1)
			m, v := e.alloc(c.s), e.alloc(c.s)
			for step := 1; step <= steps+1; step++ {
				grad := e.uniform(c.s, -1, 1)
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
					be.AdamWStep(t(param), t(grad), t(m), t(v), c.lr, c.beta1, c.beta2, c.eps, c.wd, step)
				})
				e.check(fmt.Sprintf("param after step %d", step), param, e.tol.Optimizer)
				e.check(fmt.Sprintf("m after step %d", step), m, e.tol.Optimizer)
				e.check(fmt.Sprintf("v after step %d", step), v, e.tol.Optimizer)
			}
		}})
	}
	return cs
}
