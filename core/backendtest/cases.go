package backendtest

import (
	"fmt"
	"math/rand/v2"

	"github.com/kadapt/kadapt/core"
)

// cases lists every conformance case in a fixed order.
func cases() []testCase {
	var cs []testCase
	for _, family := range []func() []testCase{
		memoryCases, fillCopyCases, axpbyCases, matmulCases, binaryCases, unaryCases,
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

func reduceCases() []testCase {
	var cs []testCase
	for _, xs := range []core.Shape{{17}, {3, 7}, {1, 5, 3}, {3, 1, 17}, {2, 3, 1, 7}, {2, 5, 3, 4}, {33, 257, 9}} {
		seen := map[string]bool{}
		for mask := range 1 << len(xs) {
			ds := xs.Clone()
			for ax := range ds {
				if mask&(1<<ax) != 0 {
					ds[ax] = 1
				}
			}
			if seen[ds.String()] {
				continue // reducing a size-1 axis is a no-op: same case
			}
			seen[ds.String()] = true
			for _, v := range []struct {
				name string
				op   core.ReduceOp
				acc  bool
			}{{"sum", core.ReduceSum, false}, {"sum_accumulate", core.ReduceSum, true}, {"max", core.ReduceMax, false}} {
				cs = append(cs, testCase{fmt.Sprintf("Reduce/%s/%v->%v", v.name, xs, ds), func(e *env) {
					x := e.uniform(xs, -1, 1)
					d := e.nan(ds)
					if v.acc {
						d = e.uniform(ds, -1, 1)
					}
					e.do(func(be core.Backend, t func(*pair) *core.Tensor) { be.Reduce(v.op, t(d), t(x), v.acc) })
					tol := e.tol.Reduce
					if v.op == core.ReduceSum {
						tol = tol.forSum(xs.Size() / ds.Size())
					}
					e.check("dst", d, tol)
				}})
			}
		}
	}
	return cs
}

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
