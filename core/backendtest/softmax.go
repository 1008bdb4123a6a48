package backendtest

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

func softmaxCases() []testCase {
	var cs []testCase
	type variant struct {
		s     core.Shape
		scale float64
	}
	variants := []variant{
		{core.Shape{1, 1}, 1}, {core.Shape{5}, 2}, {core.Shape{3, 17}, 2}, {core.Shape{2, 3, 33}, 2},
		{core.Shape{7, 1}, 2}, {core.Shape{2, 65}, 1}, {core.Shape{3, 17}, 30}, {core.Shape{257, 129}, 2},
	}
	for _, log := range []bool{false, true} {
		op := "Softmax"
		if log {
			op = "LogSoftmax"
		}
		forward := func(be core.Backend, dst, x *core.Tensor) {
			if log {
				be.LogSoftmax(dst, x)
			} else {
				be.Softmax(dst, x)
			}
		}
		for _, v := range variants {
			cs = append(cs, testCase{fmt.Sprintf("%s/%v/scale=%g", op, v.s, v.scale), func(e *env) {
				x, d := e.uniform(v.s, -v.scale, v.scale), e.nan(v.s)
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) { forward(be, t(d), t(x)) })
				e.check("dst", d, e.tol.Softmax)
			}})
		}
		for i, v := range variants {
			acc := i%2 == 1
			cs = append(cs, testCase{fmt.Sprintf("%sGrad/%v/scale=%g/accumulate=%v", op, v.s, v.scale, acc), func(e *env) {
				x := e.uniform(v.s, -v.scale, v.scale)
				y := e.fromRef(v.s, func(r core.Backend, dst *core.Tensor) { forward(r, dst, x.r) })
				dy := e.uniform(v.s, -1, 1)
				dx := e.nan(v.s)
				if acc {
					dx = e.uniform(v.s, -1, 1)
				}
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
					if log {
						be.LogSoftmaxGrad(t(dx), t(y), t(dy), acc)
					} else {
						be.SoftmaxGrad(t(dx), t(y), t(dy), acc)
					}
				})
				e.check("dx", dx, e.tol.Softmax)
			}})
		}
	}
	return cs
}

func lossCases() []testCase {
	var cs []testCase
	for _, nc := range [][2]int{{1, 1}, {3, 7}, {17, 5}, {4, 33}, {2, 65}, {513, 67}} {
		N, C := nc[0], nc[1]
		for _, s := range []float32{0, 0.1} {
			cs = append(cs, testCase{fmt.Sprintf("CrossEntropy/[%d,%d]/smoothing=%g", N, C, s), func(e *env) {
				logits := e.uniform(core.Shape{N, C}, -3, 3)
				labels := make([]float32, N)
				for i := range labels {
					labels[i] = float32(e.rng.IntN(C))
				}
				lab := e.upload(core.Shape{N}, labels)
				loss, dl := e.nan(core.Shape{1}), e.nan(core.Shape{N, C})
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
					be.CrossEntropy(t(loss), t(dl), t(logits), t(lab), s)
				})
				e.check("loss", loss, e.tol.Loss)
				e.check("dlogits", dl, e.tol.Loss)
			}})
		}
	}
	for _, c := range []struct {
		N, C  int
		scale float64
	}{{1, 1, 3}, {3, 7, 5}, {17, 5, 5}, {4, 33, 5}, {3, 7, 40}, {257, 129, 5}} {
		cs = append(cs, testCase{fmt.Sprintf("BCEWithLogits/[%d,%d]/scale=%g", c.N, c.C, c.scale), func(e *env) {
			s := core.Shape{c.N, c.C}
			logits := e.uniform(s, -c.scale, c.scale)
			tv := e.values(s.Size(), 0, 1)
			for i := range tv {
				switch e.rng.IntN(4) { // hard labels as well as soft targets
				case 0:
					tv[i] = 0
				case 1:
					tv[i] = 1
				}
			}
			targets := e.upload(s, tv)
			loss, dl := e.nan(core.Shape{1}), e.nan(s)
			e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
				be.BCEWithLogits(t(loss), t(dl), t(logits), t(targets))
			})
			e.check("loss", loss, e.tol.Loss)
			e.check("dlogits", dl, e.tol.Loss)
		}})
	}
	return cs
}
