package backendtest

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// cases lists every conformance case in a fixed order.
func cases() []testCase {
	var cs []testCase
	for _, family := range []func() []testCase{
		memoryCases, fillCopyCases, axpbyCases, matmulCases, matmulBiasCases, binaryCases, unaryCases,
		reduceCases, permuteCases, copyAlongCases, gatherCases, softmaxCases, lossCases,
		layerNormCases, dropoutCases, sumSquaresCases, optimizerCases,
	} {
		cs = append(cs, family()...)
	}
	return cs
}

// shapes used by the elementwise families: odd sizes, size-1 axes, a scalar.
var elementShapes = []core.Shape{{}, {1}, {7}, {3, 17}, {2, 1, 33}}

// large is an odd size above 2^16, so that backends which split work across threads
// or blocks once an op is big enough take that path too (the CPU backend does above
// 2^15 elements).
const large = 1<<16 + 1

func memoryCases() []testCase {
	var cs []testCase
	for _, s := range elementShapes {
		cs = append(cs, testCase{fmt.Sprintf("Alloc/zero/%v", s), func(e *env) {
			e.check("Alloc", e.alloc(s), e.tol.Exact)
		}})
		cs = append(cs, testCase{fmt.Sprintf("UploadDownload/%v", s), func(e *env) {
			v := e.values(s.Size(), -3, 3)
			p := e.upload(s, v)
			got, _ := e.download(p)
			e.compare("round trip", s, got, v, e.tol.Exact)
		}})
	}
	for _, s := range []core.Shape{{3, 17}, {1}, {2, 3, 5}} {
		cs = append(cs, testCase{fmt.Sprintf("Alloc/after_release/%v", s), func(e *env) {
			// Dirty several buffers of this size, release them, and check that the
			// pooled storage comes back zeroed, also under another shape of equal size.
			var dirty []*pair
			for range 3 {
				dirty = append(dirty, e.uniform(s, 1, 2))
			}
			for _, p := range dirty {
				e.release(p)
			}
			for i := range 3 {
				shape := s
				if i == 1 {
					shape = core.Shape{s.Size()}
				}
				e.check(fmt.Sprintf("Alloc %d after Release", i), e.alloc(shape), e.tol.Exact)
			}
		}})
	}
	cs = append(cs, testCase{"View/Reshape/[4,6]->[2,12]", func(e *env) {
		a := e.uniform(core.Shape{4, 6}, -1, 1)
		x := e.uniform(core.Shape{2, 12}, -1, 1)
		e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
			be.Axpby(t(a).Reshape(2, 12), 2, t(x), -1)
		})
		e.check("storage seen through a view", a, e.tol.Elementwise)
	}})
	return cs
}
