package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
)

// refBroadcast evaluates f over the broadcast of a and b by explicit index arithmetic
// on the unmerged shapes, independent of the backend's axis coalescing.
func refBroadcast(f func(a, b float64) float64, av []float32, as core.Shape, bv []float32, bs core.Shape) (core.Shape, []float64) {
	out, err := core.BroadcastShape(as, bs)
	if err != nil {
		panic(err)
	}
	sa, sb := core.BroadcastStrides(as, out), core.BroadcastStrides(bs, out)
	res := make([]float64, out.Size())
	idx := make([]int, len(out))
	for i := range res {
		ia, ib := 0, 0
		for ax := range out {
			ia += idx[ax] * sa[ax]
			ib += idx[ax] * sb[ax]
		}
		res[i] = f(float64(av[ia]), float64(bv[ib]))
		for ax := len(out) - 1; ax >= 0; ax-- {
			if idx[ax]++; idx[ax] < out[ax] {
				break
			}
			idx[ax] = 0
		}
	}
	return out, res
}

var binaryRef = map[core.BinaryOp]func(a, b float64) float64{
	core.Add:     func(a, b float64) float64 { return a + b },
	core.Sub:     func(a, b float64) float64 { return a - b },
	core.Mul:     func(a, b float64) float64 { return a * b },
	core.Div:     func(a, b float64) float64 { return a / b },
	core.Maximum: math.Max,
	core.Equal: func(a, b float64) float64 {
		if a == b {
			return 1
		}
		return 0
	},
}

func TestBinaryBroadcast(t *testing.T) {
	shapes := []struct{ a, b core.Shape }{
		{core.Shape{4, 5}, core.Shape{4, 5}},          // same shape
		{core.Shape{6, 7}, core.Shape{7}},             // bias add
		{core.Shape{2, 3, 7}, core.Shape{1, 1, 7}},    // bias add, explicit size-1 axes
		{core.Shape{6, 7}, core.Shape{6, 1}},          // per-row scale
		{core.Shape{2, 3, 4}, core.Shape{2, 3, 1}},    // per-row scale, rank 3
		{core.Shape{7}, core.Shape{6, 7}},             // a is the broadcast one
		{core.Shape{6, 1}, core.Shape{6, 7}},          // a per row
		{core.Shape{3, 1}, core.Shape{1, 4}},          // outer product
		{core.Shape{2, 5, 3}, core.Shape{2, 1, 3}},    // middle axis stretched
		{core.Shape{2, 1, 3, 1}, core.Shape{4, 1, 5}}, // both stretched
		{core.Shape{5}, core.Shape{}},                 // scalar b
		{core.Shape{}, core.Shape{1, 5}},              // scalar a
		{core.Shape{}, core.Shape{}},                  // scalar result
		{core.Shape{1, 1}, core.Shape{1}},             // all size 1
		{core.Shape{3, 0}, core.Shape{1}},             // empty
	}
	rng := rand.New(rand.NewPCG(2, 2))
	b := New()
	for _, op := range []core.BinaryOp{core.Add, core.Sub, core.Mul, core.Div, core.Maximum, core.Equal} {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%v_%v_%v", op, s.a, s.b), func(t *testing.T) {
				av, bv := randn(rng, s.a.Size()), randn(rng, s.b.Size())
				if op == core.Equal { // make some elements equal
					for i := range av {
						av[i] = float32(i % 3)
					}
					for i := range bv {
						bv[i] = float32(i % 2)
					}
				}
				out, want := refBroadcast(binaryRef[op], av, s.a, bv, s.b)
				dst := b.Alloc(out)
				b.Binary(op, dst, upload(b, s.a, av), upload(b, s.b, bv))
				closeTo(t, op.String(), download(b, dst), want, 0, 1e-7)
			})
		}
	}
}

func TestBinaryHandValues(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		op   core.BinaryOp
		a, b []float32
		want []float64
	}{
		{core.Add, []float32{1, 2}, []float32{10, 20}, []float64{11, 22}},
		{core.Sub, []float32{1, 2}, []float32{10, 20}, []float64{-9, -18}},
		{core.Mul, []float32{3, -2}, []float32{4, 5}, []float64{12, -10}},
		{core.Div, []float32{1, 1}, []float32{4, 0}, []float64{0.25, math.Inf(1)}},
		{core.Maximum, []float32{-1, 5, nan, 2}, []float32{0, 3, 1, nan}, []float64{0, 5, math.NaN(), math.NaN()}},
		{core.Equal, []float32{1, 2, nan}, []float32{1, 3, nan}, []float64{1, 0, 0}},
	}
	b := New()
	for _, c := range cases {
		s := core.Shape{len(c.a)}
		dst := b.Alloc(s)
		b.Binary(c.op, dst, upload(b, s, c.a), upload(b, s, c.b))
		closeTo(t, c.op.String(), download(b, dst), c.want, 0, 0)
	}
}

// unaryRef are the float64 definitions, written independently of the backend's forms
// (erf rather than erfc for GELU, tanh for the logistic function).
var unaryRef = map[core.UnaryOp]func(x float64) float64{
	core.Neg:       func(x float64) float64 { return -x },
	core.Exp:       math.Exp,
	core.Log:       math.Log,
	core.Sqrt:      math.Sqrt,
	core.Rsqrt:     func(x float64) float64 { return math.Pow(x, -0.5) },
	core.Square:    func(x float64) float64 { return x * x },
	core.Abs:       math.Abs,
	core.ReLU:      func(x float64) float64 { return math.Max(x, 0) },
	core.GELU:      func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) },
	core.QuickGELU: func(x float64) float64 { return x * logistic(1.702*x) },
	core.SiLU:      func(x float64) float64 { return x * logistic(x) },
	core.Sigmoid:   logistic,
	core.Tanh:      math.Tanh,
}

func logistic(x float64) float64 { return 0.5 + 0.5*math.Tanh(x/2) }

func unaryInputs(op core.UnaryOp) []float32 {
	switch op {
	case core.Log, core.Sqrt, core.Rsqrt:
		return []float32{0.01, 0.3, 1, 2.5, 40}
	}
	return []float32{-6, -2.5, -1, -0.3, -0.01, 0.01, 0.3, 1, 2.5, 6}
}

func TestUnary(t *testing.T) {
	b := New()
	for op, f := range unaryRef {
		t.Run(op.String(), func(t *testing.T) {
			xs := unaryInputs(op)
			want := make([]float64, len(xs))
			for i, x := range xs {
				want[i] = f(float64(x))
			}
			s := core.Shape{len(xs)}
			x, dst := upload(b, s, xs), b.Alloc(s)
			b.Unary(op, dst, x)
			closeTo(t, op.String(), download(b, dst), want, 1e-7, 2e-7)
			b.Unary(op, x, x) // in place
			closeTo(t, op.String()+" in place", download(b, x), want, 1e-7, 2e-7)
		})
	}
	// Known values: Φ(1) = 0.841344746..., and GELU's negative tail stays accurate
	// where 1+erf cancels: GELU(-5) = -5·Φ(-5) = -1.43325786e-06.
	x := upload(b, core.Shape{3}, []float32{1, -5, -10})
	b.Unary(core.GELU, x, x)
	closeTo(t, "GELU known", download(b, x), []float64{0.8413447460685429, -1.4332578593959696e-06, -7.619853024160527e-23}, 0, 1e-6)
}

func TestUnaryGrad(t *testing.T) {
	b := New()
	const h = 1e-5
	for op, f := range unaryRef {
		t.Run(op.String(), func(t *testing.T) {
			xs := unaryInputs(op)
			s := core.Shape{len(xs)}
			dys := make([]float32, len(xs))
			prev := make([]float32, len(xs))
			want := make([]float64, len(xs))
			wantAcc := make([]float64, len(xs))
			for i, x := range xs {
				dys[i] = float32(i) - 3.5
				prev[i] = float32(i) * 0.25
				fd := (f(float64(x)+h) - f(float64(x)-h)) / (2 * h)
				want[i] = fd * float64(dys[i])
				wantAcc[i] = want[i] + float64(prev[i])
			}
			x, dy := upload(b, s, xs), upload(b, s, dys)
			dx := b.Alloc(s)
			b.UnaryGrad(op, dx, x, dy, false)
			closeTo(t, "dx", download(b, dx), want, 1e-5, 1e-5)
			b.Upload(dx, prev)
			b.UnaryGrad(op, dx, x, dy, true)
			closeTo(t, "dx accumulated", download(b, dx), wantAcc, 1e-5, 1e-5)
		})
	}
	// ReLU's and Abs's derivatives at 0 are 0, by convention.
	x, dy, dx := upload(b, core.Shape{1}, []float32{0}), upload(b, core.Shape{1}, []float32{3}), b.Alloc(core.Shape{1})
	for _, op := range []core.UnaryOp{core.ReLU, core.Abs} {
		b.UnaryGrad(op, dx, x, dy, false)
		closeTo(t, op.String()+"'(0)", download(b, dx), []float64{0}, 0, 0)
	}
}

func TestFillCopyAxpby(t *testing.T) {
	b := New()
	s := core.Shape{2, 3}
	x := upload(b, s, []float32{1, 2, 3, 4, 5, 6})
	d := upload(b, s, []float32{float32(math.NaN()), 1, 1, 1, 1, 1})
	b.Axpby(d, 2, x, 0) // NaN in d must be ignored
	closeTo(t, "Axpby beta=0", download(b, d), []float64{2, 4, 6, 8, 10, 12}, 0, 0)
	b.Axpby(d, 1, x, 1)
	closeTo(t, "Axpby beta=1", download(b, d), []float64{3, 6, 9, 12, 15, 18}, 0, 0)
	b.Axpby(d, -1, x, 0.5)
	closeTo(t, "Axpby", download(b, d), []float64{0.5, 1, 1.5, 2, 2.5, 3}, 0, 0)
	b.Fill(d, -2.5)
	closeTo(t, "Fill", download(b, d), []float64{-2.5, -2.5, -2.5, -2.5, -2.5, -2.5}, 0, 0)
	flat := b.Alloc(core.Shape{6})
	b.Copy(flat, x)
	closeTo(t, "Copy", download(b, flat), []float64{1, 2, 3, 4, 5, 6}, 0, 0)
	expectPanic(t, "Copy: sizes differ", func() { b.Copy(b.Alloc(core.Shape{5}), x) })
}

func TestDropout(t *testing.T) {
	b := New()
	const n = 4000
	xs := randn(rand.New(rand.NewPCG(4, 4)), n)
	s := core.Shape{40, 100}
	for _, p := range []float32{0, 0.1, 0.5, 1} {
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			const seed = 12345
			x, dst, mask := upload(b, s, xs), b.Alloc(s), b.Alloc(s)
			b.Dropout(dst, mask, x, p, seed)
			d, m := download(b, dst), download(b, mask)
			kept := 0
			for i := range xs {
				want := float32(0)
				if core.DropoutUniform(seed, i) >= p {
					want = 1 / (1 - p)
					kept++
				}
				if m[i] != want || d[i] != xs[i]*want {
					t.Fatalf("element %d: mask %v dst %v, want mask %v dst %v", i, m[i], d[i], want, xs[i]*want)
				}
			}
			// The kept fraction is binomial(n, 1-p): within 5 standard deviations.
			q := 1 - float64(p)
			if sd := math.Sqrt(n * q * (1 - q)); math.Abs(float64(kept)-n*q) > 5*sd+0.5 {
				t.Fatalf("kept %d of %d at p=%v", kept, n, p)
			}
			b.Dropout(x, nil, x, p, seed) // in place, no mask
			closeTo(t, "in place", download(b, x), f64(d), 0, 0)
		})
	}
}

func TestSumSquaresScaleBy(t *testing.T) {
	b := New()
	n := 3*sumBlock + 17 // several blocks and a ragged tail
	xs := make([]float32, n)
	var want float64
	for i := range xs {
		xs[i] = float32(i%7) - 3
		want += float64(xs[i]) * float64(xs[i])
	}
	x, s := upload(b, core.Shape{n}, xs), b.Alloc(core.Shape{1})
	b.SumSquares(s, x, false)
	closeTo(t, "SumSquares", download(b, s), []float64{want}, 0, 1e-7)
	b.SumSquares(s, x, true)
	closeTo(t, "SumSquares accumulated", download(b, s), []float64{2 * want}, 0, 1e-7)
	v := upload(b, core.Shape{3}, []float32{1, -2, 4})
	b.Upload(s, []float32{0.5})
	b.ScaleBy(v, s, 3)
	closeTo(t, "ScaleBy", download(b, v), []float64{1.5, -3, 6}, 0, 0)
}

func TestSGDStep(t *testing.T) {
	b := New()
	const lr, mu, wd = 0.1, 0.9, 0.0
	// A constant gradient g gives mom_t = g·(1-μ^t)/(1-μ) and
	// param_t = p0 - lr·Σ_{s≤t} step_s.
	for _, nesterov := range []bool{false, true} {
		p, g, m := upload(b, core.Shape{2}, []float32{1, -1}), upload(b, core.Shape{2}, []float32{0.5, -2}), b.Alloc(core.Shape{2})
		want := []float64{1, -1}
		for step := 1; step <= 5; step++ {
			b.SGDStep(p, g, m, lr, mu, wd, nesterov, step == 1)
			for i, gi := range []float64{0.5, -2} {
				mom := gi * (1 - math.Pow(mu, float64(step))) / (1 - mu)
				st := mom
				if nesterov {
					st = gi + mu*mom
				}
				want[i] -= lr * st
			}
		}
		closeTo(t, fmt.Sprint("SGD nesterov=", nesterov), download(b, p), want, 1e-6, 1e-6)
	}
	// Without momentum, with weight decay: p ← p - lr·(g + wd·p).
	p, g := upload(b, core.Shape{1}, []float32{2}), upload(b, core.Shape{1}, []float32{1})
	b.SGDStep(p, g, nil, 0.5, 0, 0.1, false, true)
	closeTo(t, "SGD weight decay", download(b, p), []float64{2 - 0.5*(1+0.1*2)}, 0, 1e-7)
}

func TestAdamWStep(t *testing.T) {
	b := New()
	const lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.05
	// With a constant gradient the bias-corrected moments are exactly g and g², so
	// each step is p ← p·(1-lr·wd) - lr·g/(|g|+eps).
	// Seven elements: four through the AVX2 kernel where there is one, three through
	// the Go loop.
	gs := []float32{0.3, -2, 1e-3, 5, -0.25, 0.3, -2}
	ps := []float32{1, 0, -1, 2, 0.5, -3, 1}
	s := core.Shape{len(gs)}
	p, g := upload(b, s, ps), upload(b, s, gs)
	m, v := b.Alloc(s), b.Alloc(s)
	want := make([]float64, len(ps))
	for i, pi := range ps {
		want[i] = float64(pi)
	}
	wantM := make([]float64, len(gs))
	for i, gi := range gs {
		wantM[i] = float64(gi) * (1 - math.Pow(b1, 10))
	}
	for step := 1; step <= 10; step++ {
		b.AdamWStep(p, g, m, v, lr, b1, b2, eps, wd, step)
		for i, gi := range gs {
			want[i] = want[i]*(1-lr*wd) - lr*float64(gi)/(math.Abs(float64(gi))+eps)
		}
	}
	closeTo(t, "AdamW", download(b, p), want, 1e-6, 1e-5)
	closeTo(t, "AdamW m", download(b, m), wantM, 1e-9, 1e-5)
}

// TestAdamWPaths checks that the AVX2 AdamW kernel gives the Go loop's results bit for
// bit (the loop is checked against a closed form above), over random values, moments
// spanning many magnitudes, zeros, NaN and infinities, and a length with a tail.
func TestAdamWPaths(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	const n = 1003
	ps, gs, ms, vs := randn(rng, n), randn(rng, n), randn(rng, n), make([]float32, n)
	for i := range vs {
		vs[i] = float32(math.Exp(rng.NormFloat64()*8)) * ms[i] * ms[i]
	}
	special := []float32{0, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e-38, -1e-45}
	for i, x := range special {
		gs[10+i], ps[20+i], ms[30+i] = x, x, x
	}
	saved := hasAVX2
	defer func() { hasAVX2 = saved }()
	b := New()
	s := core.Shape{n}
	var results [2][3][]float32
	for path, simd := range []bool{false, true} {
		hasAVX2 = simd
		p, g, m, v := upload(b, s, ps), upload(b, s, gs), upload(b, s, ms), upload(b, s, vs)
		for step := 1; step <= 3; step++ {
			b.AdamWStep(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, step)
		}
		results[path] = [3][]float32{download(b, p), download(b, m), download(b, v)}
	}
	for j, name := range []string{"param", "m", "v"} {
		for i, want := range results[0][j] {
			got := results[1][j][i]
			if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
				t.Fatalf("%s[%d]: AVX2 %v, Go loop %v", name, i, got, want)
			}
		}
	}
}

// TestQuickGELUPaths checks the AVX2 QuickGELU and its gradient, and the Go loops they
// replace, against float64 closed forms over the whole float32 range that matters
// (exp's clamping at ±88 included), on a length that leaves a scalar tail. The
// tolerance grows with |1.702·x| because that product is rounded to float32 before the
// exponential, as in PyTorch's float32 QuickGELU: e^t's relative error is |t|·2^-24.
func TestQuickGELUPaths(t *testing.T) {
	var xs []float32
	for v := -120.0; v <= 120; v += 0.37 {
		xs = append(xs, float32(v))
	}
	xs = append(xs, 0, 1e-30, -1e-30, float32(math.NaN()), 3)
	dys := make([]float32, len(xs))
	prev := make([]float32, len(xs))
	want := make([]float64, len(xs))
	wantGrad := make([]float64, len(xs))
	wantAcc := make([]float64, len(xs))
	for i, x := range xs {
		f := float64(x)
		s := 1 / (1 + math.Exp(-1.702*f))
		dys[i] = float32(math.Cos(float64(i)))
		prev[i] = float32(i%5) - 2
		want[i] = f * s
		wantGrad[i] = (s + 1.702*f*s*(1-s)) * float64(dys[i])
		wantAcc[i] = wantGrad[i] + float64(prev[i])
	}
	paths := []bool{false}
	if hasAVX2 {
		paths = append(paths, true)
	}
	saved := hasAVX2
	defer func() { hasAVX2 = saved }()
	b := New()
	s := core.Shape{len(xs)}
	for _, simd := range paths {
		hasAVX2 = simd
		x, dy, dst := upload(b, s, xs), upload(b, s, dys), b.Alloc(s)
		check := func(what string, want []float64, atol, rtol float64) {
			t.Helper()
			for i, g := range download(b, dst) {
				w := want[i]
				if math.IsNaN(w) && math.IsNaN(float64(g)) {
					continue
				}
				tol := atol + (rtol+0x1p-23*math.Abs(1.702*float64(xs[i])))*math.Abs(w)
				if !(math.Abs(float64(g)-w) <= tol) {
					t.Fatalf("%s (avx2 %v): x = %v: got %v, want %v", what, simd, xs[i], g, w)
				}
			}
		}
		b.Unary(core.QuickGELU, dst, x)
		check("QuickGELU", want, 1e-30, 4e-7)
		b.UnaryGrad(core.QuickGELU, dst, x, dy, false)
		check("QuickGELU'", wantGrad, 2e-7, 2e-6)
		b.Upload(dst, prev)
		b.UnaryGrad(core.QuickGELU, dst, x, dy, true)
		check("QuickGELU' accumulated", wantAcc, 4e-7, 2e-6)
	}
}
