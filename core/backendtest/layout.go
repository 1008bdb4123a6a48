package backendtest

import (
	"fmt"
	"math/rand/v2"

	"github.com/kadapt/kadapt/core"
)

// permutations returns every permutation of 0..n-1 in lexicographic order.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for pos := 0; pos <= len(p); pos++ {
			q := append(append(append([]int{}, p[:pos]...), n-1), p[pos:]...)
			out = append(out, q)
		}
	}
	return out
}

func permuteCases() []testCase {
	var cs []testCase
	rng := rand.New(rand.NewPCG(5, 7))
	for _, xs := range []core.Shape{{3, 17}, {2, 1, 7}, {3, 2, 5, 1}, {2, 3, 1, 4, 3}, {17, 65, 33}} {
		perms := permutations(len(xs))
		if len(perms) > 8 {
			// Keep the reversal and draw the rest at random.
			rng.Shuffle(len(perms), func(i, j int) { perms[i], perms[j] = perms[j], perms[i] })
			rev := make([]int, len(xs))
			for i := range rev {
				rev[i] = len(xs) - 1 - i
			}
			kept := [][]int{rev}
			for _, p := range perms {
				if len(kept) < 8 && core.Shape(p).String() != core.Shape(rev).String() {
					kept = append(kept, p)
				}
			}
			perms = kept
		}
		for _, perm := range perms {
			ds := make(core.Shape, len(xs))
			for i, p := range perm {
				ds[i] = xs[p]
			}
			cs = append(cs, testCase{fmt.Sprintf("Permute/%v/perm%v", xs, core.Shape(perm)), func(e *env) {
				x, d := e.uniform(xs, -1, 1), e.nan(ds)
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Permute(t(d), t(x), perm) })
				e.check("dst", d, e.tol.Exact)
			}})
		}
	}
	return cs
}

func copyAlongCases() []testCase {
	var cs []testCase
	for _, c := range []struct {
		src, dst                core.Shape
		axis, dstOff, srcOff, n int
	}{
		{core.Shape{3, 7, 5}, core.Shape{3, 17, 5}, 1, 9, 2, 5},
		{core.Shape{7, 3}, core.Shape{4, 3}, 0, 1, 3, 3},
		{core.Shape{2, 3, 33}, core.Shape{2, 3, 7}, 2, 0, 26, 7},
		{core.Shape{1, 5}, core.Shape{1, 5}, 1, 0, 0, 5},
		{core.Shape{2, 1, 3}, core.Shape{2, 4, 3}, 1, 3, 0, 1},
		{core.Shape{17}, core.Shape{33}, 0, 16, 0, 17},
		{core.Shape{9, 257, 33}, core.Shape{9, 300, 33}, 1, 40, 0, 257},
	} {
		for _, acc := range []bool{false, true} {
			name := fmt.Sprintf("CopyAlong/%v->%v/axis=%d,dst=%d,src=%d,n=%d/accumulate=%v",
				c.src, c.dst, c.axis, c.dstOff, c.srcOff, c.n, acc)
			cs = append(cs, testCase{name, func(e *env) {
				// dst starts random: elements outside the block must survive.
				src, dst := e.uniform(c.src, -1, 1), e.uniform(c.dst, -1, 1)
				e.do(func(be core.Backend, t func(*pair) *core.Tensor) {
					be.CopyAlong(t(dst), t(src), c.axis, c.dstOff, c.srcOff, c.n, acc)
				})
				tol := e.tol.Exact
				if acc {
					tol = e.tol.Elementwise
				}
				e.check("dst", dst, tol)
			}})
		}
	}
	return cs
}

func gatherCases() []testCase {
	var cs []testCase
	for _, c := range []struct {
		x    core.Shape
		axis int
		n    int // indices
	}{
		{core.Shape{3, 7, 5}, 1, 9},
		{core.Shape{17, 3}, 0, 5},
		{core.Shape{2, 3, 33}, 2, 4},
		{core.Shape{1, 1}, 0, 3},
		{core.Shape{5}, 0, 7},
		{core.Shape{2, 7, 1}, 1, 1},
		{core.Shape{513, 67}, 0, 999},
	} {
		other := c.x.Clone()
		other[c.axis] = c.n
		cs = append(cs, testCase{fmt.Sprintf("Gather/%v/axis=%d/idx[%d]", c.x, c.axis, c.n), func(e *env) {
			x, idx, d := e.uniform(c.x, -1, 1), e.indices(c.n, c.x[c.axis]), e.nan(other)
			e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Gather(t(d), t(x), t(idx), c.axis) })
			e.check("dst", d, e.tol.Exact)
		}})
		cs = append(cs, testCase{fmt.Sprintf("ScatterAdd/%v/axis=%d/idx[%d]", c.x, c.axis, c.n), func(e *env) {
			d, src, idx := e.uniform(c.x, -1, 1), e.uniform(other, -1, 1), e.indices(c.n, c.x[c.axis])
			e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.ScatterAdd(t(d), t(src), t(idx), c.axis) })
			e.check("dst", d, e.tol.Elementwise)
		}})
	}
	return cs
}
