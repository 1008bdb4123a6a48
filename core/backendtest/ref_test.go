package backendtest

import (
	"math"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/ref"
	"github.com/kadapt/kadapt/core/testutil"
)

// TestRefAgainstRef runs the suite on ref itself with zero tolerance: the reference
// must agree with itself bit for bit, which also shows the suite's inputs are
// deterministic and every case runs without panicking.
func TestRefAgainstRef(t *testing.T) {
	Run(t, ref.New, Tolerances{})
}

func TestCaseNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range cases() {
		if seen[c.name] {
			t.Errorf("duplicate case name %q", c.name)
		}
		seen[c.name] = true
	}
	if len(seen) < 500 {
		t.Errorf("only %d cases", len(seen))
	}
}

func hasAnyPrefix(name string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// TestSuiteCatchesFaults wraps ref in backends with one deliberate defect each and
// checks that exactly the cases exercising that defect fail (mustFail ⊆ failures ⊆
// mayFail), and that honest float32, TF32 and BF16 arithmetic passes under the
// matching tolerances.
func TestSuiteCatchesFaults(t *testing.T) {
	none := func(string) bool { return false }
	tests := []struct {
		name     string
		wrap     func(core.Backend) core.Backend
		tol      Tolerances
		mustFail func(string) bool
		mayFail  func(string) bool
		msg      string // every failure mentions this
		clean    bool   // an honest backend: no case may fail
	}{
		{
			name:     "softmax_plus_1e-2",
			wrap:     func(b core.Backend) core.Backend { return softmaxOff{b} },
			tol:      DefaultTolerances(),
			mustFail: func(n string) bool { return strings.HasPrefix(n, "Softmax/") },
		},
		{
			name: "matmul_ignores_beta",
			wrap: func(b core.Backend) core.Backend { return matmulNoBeta{b} },
			tol:  DefaultTolerances(),
			mustFail: func(n string) bool {
				return strings.HasPrefix(n, "MatMul/") && !strings.HasSuffix(n, "beta=0")
			},
		},
		{
			name:     "reduce_ignores_accumulate",
			wrap:     func(b core.Backend) core.Backend { return reduceNoAccumulate{b} },
			tol:      DefaultTolerances(),
			mustFail: func(n string) bool { return strings.HasPrefix(n, "Reduce/sum_accumulate/") },
		},
		{
			// The kind of slip a chunked parallel loop makes; the long sums of the
			// large case must still catch a single missing term.
			name: "reduce_sum_drops_last_element",
			wrap: func(b core.Backend) core.Backend { return reduceDropsLast{b} },
			tol:  DefaultTolerances(),
			mustFail: func(n string) bool {
				return strings.HasPrefix(n, "Reduce/sum") && strings.Contains(n, "/[33,257,9]->")
			},
			mayFail: func(n string) bool { return strings.HasPrefix(n, "Reduce/sum") },
		},
		{
			name: "alloc_not_zeroed",
			wrap: func(b core.Backend) core.Backend { return allocDirty{b} },
			tol:  DefaultTolerances(),
			// AdamW's m and v start from Alloc's zeros.
			mustFail: func(n string) bool { return hasAnyPrefix(n, "Alloc/", "AdamWStep/") },
		},
		{
			name: "pool_reuse_not_zeroed",
			wrap: func(b core.Backend) core.Backend { return &dirtyPool{Backend: b, free: map[int][]*core.Tensor{}} },
			tol:  DefaultTolerances(),
			mustFail: func(n string) bool {
				return strings.HasPrefix(n, "Alloc/after_release/")
			},
			mayFail: func(n string) bool { return hasAnyPrefix(n, "Alloc/", "AdamWStep/") },
		},
		{
			name: "dropout_wrong_seed",
			wrap: func(b core.Backend) core.Backend { return dropoutSeed{b} },
			tol:  DefaultTolerances(),
			// p = 0 keeps and p = 1 drops everything whatever the seed; a one-element
			// mask may agree by chance.
			mustFail: func(n string) bool {
				return strings.HasPrefix(n, "Dropout/") && !strings.Contains(n, "/p=0/") &&
					!strings.Contains(n, "/p=1/") && !strings.HasPrefix(n, "Dropout/[1]/")
			},
			mayFail: func(n string) bool { return strings.HasPrefix(n, "Dropout/") },
			msg:     "masks must match exactly",
		},
		{
			name:     "adamw_off_by_one_step",
			wrap:     func(b core.Backend) core.Backend { return adamStepOff{b} },
			tol:      DefaultTolerances(),
			mustFail: func(n string) bool { return strings.HasPrefix(n, "AdamWStep/") },
		},
		{
			name:     "sgd_ignores_nesterov",
			wrap:     func(b core.Backend) core.Backend { return sgdNoNesterov{b} },
			tol:      DefaultTolerances(),
			mustFail: func(n string) bool { return strings.HasPrefix(n, "SGDStep/") && strings.HasSuffix(n, "nesterov=true") },
		},
		{
			name: "layernormgrad_drops_dbeta",
			wrap: func(b core.Backend) core.Backend { return lnNoDbeta{b} },
			tol:  DefaultTolerances(),
			mustFail: func(n string) bool {
				return strings.HasPrefix(n, "LayerNormGrad/") && (strings.HasSuffix(n, "/affine") || strings.HasSuffix(n, "/affine_accumulate"))
			},
		},
		{
			name: "gelu_tanh_approximation",
			wrap: func(b core.Backend) core.Backend { return geluTanh{b} },
			tol:  DefaultTolerances(),
			mustFail: func(n string) bool {
				return strings.HasPrefix(n, "Unary/gelu/") && !strings.HasPrefix(n, "Unary/gelu/[1]")
			},
			mayFail: func(n string) bool { return strings.HasPrefix(n, "Unary/gelu/") },
		},
		{
			name:     "gather_panics",
			wrap:     func(b core.Backend) core.Backend { return gatherPanics{b} },
			tol:      DefaultTolerances(),
			mustFail: func(n string) bool { return strings.HasPrefix(n, "Gather/") },
			msg:      "panic: gather exploded",
		},
		{
			name:     "tf32_matmul_under_default_tolerances",
			wrap:     func(b core.Backend) core.Backend { return roundedMatMul{b, 10} },
			tol:      DefaultTolerances(),
			mustFail: func(n string) bool { return strings.HasPrefix(n, "MatMul/") && strings.Contains(n, "/a[2,3,7,65]_") },
			mayFail:  func(n string) bool { return strings.HasPrefix(n, "MatMul/") },
		},
		{
			name:     "tf32_matmul_under_tf32_tolerances",
			wrap:     func(b core.Backend) core.Backend { return roundedMatMul{b, 10} },
			tol:      TF32Tolerances(),
			mustFail: none,
			clean:    true,
		},
		{
			name:     "bf16_matmul_under_tf32_tolerances",
			wrap:     func(b core.Backend) core.Backend { return roundedMatMul{b, 7} },
			tol:      TF32Tolerances(),
			mustFail: func(n string) bool { return strings.HasPrefix(n, "MatMul/") && strings.Contains(n, "/a[2,3,7,65]_") },
			mayFail:  func(n string) bool { return strings.HasPrefix(n, "MatMul/") },
		},
		{
			name:     "bf16_matmul_under_bf16_tolerances",
			wrap:     func(b core.Backend) core.Backend { return roundedMatMul{b, 7} },
			tol:      BF16Tolerances(),
			mustFail: none,
			clean:    true,
		},
		{
			name:     "float32_arithmetic_under_default_tolerances",
			wrap:     func(b core.Backend) core.Backend { return f32{b} },
			tol:      DefaultTolerances(),
			mustFail: none,
			clean:    true,
		},
	}
	all := cases()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mayFail := tt.mayFail
			if mayFail == nil {
				mayFail = tt.mustFail
			}
			failed := map[string]bool{}
			for _, f := range Check(func() core.Backend { return tt.wrap(ref.New()) }, tt.tol) {
				failed[f.Case] = true
				if !mayFail(f.Case) {
					t.Errorf("unexpected failure %v", f)
				}
				if tt.msg != "" && !strings.Contains(f.String(), tt.msg) {
					t.Errorf("failure %v does not mention %q", f, tt.msg)
				}
			}
			want := 0
			for _, c := range all {
				if tt.mustFail(c.name) {
					want++
					if !failed[c.name] {
						t.Errorf("case %s passed despite the defect", c.name)
					}
				}
			}
			if want == 0 && !tt.clean {
				t.Error("mustFail matches no case, so the defect is never shown to be caught")
			}
		})
	}
}

func TestTolAccepts(t *testing.T) {
	tests := []struct {
		tol       Tol
		got, want float64
		ok        bool
	}{
		{Tol{}, 1, 1, true},
		{Tol{}, 1, math.Nextafter(1, 2), false},
		{Tol{Rel: 1e-3}, 1000.9, 1000, true},
		{Tol{Rel: 1e-3}, 1001.1, 1000, false},
		{Tol{Abs: 0.5}, 0.4, 0, true},
		{Tol{Abs: 0.5}, -0.6, 0, false},
		{Tol{Rel: 1, Abs: 1}, math.NaN(), math.NaN(), true},
		{Tol{Rel: 1, Abs: 1}, 0, math.NaN(), false},
		{Tol{Rel: 1, Abs: 1}, math.NaN(), 0, false},
		{Tol{Rel: 1, Abs: 1}, math.Inf(1), math.Inf(1), true},
		{Tol{Rel: 1, Abs: 1}, math.MaxFloat32, math.Inf(1), false},
		{Tol{Rel: 1, Abs: 1}, math.Inf(-1), 0, false},
	}
	for _, tt := range tests {
		if got := tt.tol.accepts(tt.got, tt.want); got != tt.ok {
			t.Errorf("%+v.accepts(%v, %v) = %v, want %v", tt.tol, tt.got, tt.want, got, tt.ok)
		}
	}
}

// The defective backends below each wrap ref and break one thing.

type softmaxOff struct{ core.Backend }

func (s softmaxOff) Softmax(dst, x *core.Tensor) {
	s.Backend.Softmax(dst, x)
	v := testutil.Download(s.Backend, dst)
	for i := range v {
		v[i] += 1e-2
	}
	s.Upload(dst, v)
}

type matmulNoBeta struct{ core.Backend }

func (m matmulNoBeta) MatMul(dst, a, b *core.Tensor, transA, transB bool, alpha, _ float32) {
	m.Backend.MatMul(dst, a, b, transA, transB, alpha, 0)
}

type reduceNoAccumulate struct{ core.Backend }

func (r reduceNoAccumulate) Reduce(op core.ReduceOp, dst, x *core.Tensor, _ bool) {
	r.Backend.Reduce(op, dst, x, false)
}

// reduceDropsLast leaves the last element of x out of every sum.
type reduceDropsLast struct{ core.Backend }

func (r reduceDropsLast) Reduce(op core.ReduceOp, dst, x *core.Tensor, accumulate bool) {
	if op != core.ReduceSum {
		r.Backend.Reduce(op, dst, x, accumulate)
		return
	}
	v := testutil.Download(r.Backend, x)
	v[len(v)-1] = 0
	tmp := r.Backend.Alloc(x.Shape())
	defer r.Release(tmp)
	r.Upload(tmp, v)
	r.Backend.Reduce(op, dst, tmp, accumulate)
}

type allocDirty struct{ core.Backend }

func (a allocDirty) Alloc(shape core.Shape) *core.Tensor {
	t := a.Backend.Alloc(shape)
	a.Fill(t, 1)
	return t
}

// dirtyPool recycles released tensors itself, without zeroing them.
type dirtyPool struct {
	core.Backend
	free map[int][]*core.Tensor
}

func (d *dirtyPool) Alloc(shape core.Shape) *core.Tensor {
	n := shape.Size()
	if f := d.free[n]; len(f) > 0 {
		t := f[len(f)-1]
		d.free[n] = f[:len(f)-1]
		return t.Reshape(shape...)
	}
	return d.Backend.Alloc(shape)
}

func (d *dirtyPool) Release(t *core.Tensor) { d.free[t.Size()] = append(d.free[t.Size()], t) }

type dropoutSeed struct{ core.Backend }

func (d dropoutSeed) Dropout(dst, mask, x *core.Tensor, p float32, seed uint64) {
	d.Backend.Dropout(dst, mask, x, p, seed+1)
}

type adamStepOff struct{ core.Backend }

func (a adamStepOff) AdamWStep(param, grad, m, v *core.Tensor, lr, b1, b2, eps, wd float32, step int) {
	a.Backend.AdamWStep(param, grad, m, v, lr, b1, b2, eps, wd, step+1)
}

type sgdNoNesterov struct{ core.Backend }

func (s sgdNoNesterov) SGDStep(param, grad, mom *core.Tensor, lr, momentum, wd float32, _, first bool) {
	s.Backend.SGDStep(param, grad, mom, lr, momentum, wd, false, first)
}

type lnNoDbeta struct{ core.Backend }

func (l lnNoDbeta) LayerNormGrad(dx, dgamma, _, dy, x, mean, rstd, gamma *core.Tensor, accumulate bool) {
	l.Backend.LayerNormGrad(dx, dgamma, nil, dy, x, mean, rstd, gamma, accumulate)
}

// geluTanh uses the tanh approximation of GELU, which the contract does not allow.
type geluTanh struct{ core.Backend }

func (g geluTanh) Unary(op core.UnaryOp, dst, x *core.Tensor) {
	if op != core.GELU {
		g.Backend.Unary(op, dst, x)
		return
	}
	v := testutil.Download(g.Backend, x)
	for i, x := range v {
		x := float64(x)
		v[i] = float32(0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))))
	}
	g.Upload(dst, v)
}

type gatherPanics struct{ core.Backend }

func (gatherPanics) Gather(_, _, _ *core.Tensor, _ int) { panic("gather exploded") }

// roundedMatMul rounds MatMul operands to mant explicit mantissa bits first (10: TF32,
// 7: bfloat16), like tensor cores; the products are then exact and summed by ref.
type roundedMatMul struct {
	core.Backend
	mant int
}

func roundMantissa(x float32, mant int) float32 {
	drop := uint(23 - mant)
	bits := math.Float32bits(x)
	bits += (1<<(drop-1) - 1) + (bits>>drop)&1 // round to nearest, ties to even
	return math.Float32frombits(bits &^ (1<<drop - 1))
}

func (r roundedMatMul) MatMul(dst, a, b *core.Tensor, transA, transB bool, alpha, beta float32) {
	round := func(t *core.Tensor) *core.Tensor {
		v := testutil.Download(r.Backend, t)
		for i := range v {
			v[i] = roundMantissa(v[i], r.mant)
		}
		c := r.Backend.Alloc(t.Shape())
		r.Upload(c, v)
		return c
	}
	ra, rb := round(a), round(b)
	r.Backend.MatMul(dst, ra, rb, transA, transB, alpha, beta)
	r.Release(ra)
	r.Release(rb)
}

// f32 redoes the accumulation-heavy ops and the optimizers in float32 arithmetic with
// plain sequential sums, the least accurate way a CPU backend could reasonably work:
// DefaultTolerances must accept it.
type f32 struct{ core.Backend }

func (f f32) MatMul(dst, a, b *core.Tensor, transA, transB bool, alpha, beta float32) {
	av, bv, dv := testutil.Download(f.Backend, a), testutil.Download(f.Backend, b), testutil.Download(f.Backend, dst)
	ds := dst.Shape()
	m, n := ds[len(ds)-2], ds[len(ds)-1]
	k := a.Dim(a.Rank() - 1)
	if transA {
		k = a.Dim(a.Rank() - 2)
	}
	at := func(bi, i, p int) float32 { // op(a)[bi][i][p]
		if a.Rank() == 2 {
			bi = 0
		}
		if transA {
			return av[bi*m*k+p*m+i]
		}
		return av[bi*m*k+i*k+p]
	}
	bt := func(bi, p, j int) float32 {
		if b.Rank() == 2 {
			bi = 0
		}
		if transB {
			return bv[bi*k*n+j*k+p]
		}
		return bv[bi*k*n+p*n+j]
	}
	for bi := range ds[:len(ds)-2].Size() {
		for i := range m {
			for j := range n {
				var acc float32
				for p := range k {
					acc += at(bi, i, p) * bt(bi, p, j)
				}
				o := bi*m*n + i*n + j
				if beta == 0 {
					dv[o] = alpha * acc
				} else {
					dv[o] = alpha*acc + beta*dv[o]
				}
			}
		}
	}
	f.Upload(dst, dv)
}

func (f f32) Reduce(op core.ReduceOp, dst, x *core.Tensor, accumulate bool) {
	if op != core.ReduceSum {
		f.Backend.Reduce(op, dst, x, accumulate)
		return
	}
	xv, dv := testutil.Download(f.Backend, x), testutil.Download(f.Backend, dst)
	acc := make([]float32, len(dv))
	st := core.BroadcastStrides(dst.Shape(), x.Shape())
	xs := x.Shape()
	for i, v := range xv {
		o, r := 0, i
		for ax := len(xs) - 1; ax >= 0; ax-- {
			o += (r % xs[ax]) * st[ax]
			r /= xs[ax]
		}
		acc[o] += v
	}
	for i := range dv {
		if accumulate {
			dv[i] += acc[i]
		} else {
			dv[i] = acc[i]
		}
	}
	f.Upload(dst, dv)
}

func (f f32) SumSquares(dst, x *core.Tensor, accumulate bool) {
	var s float32
	for _, v := range testutil.Download(f.Backend, x) {
		s += v * v
	}
	if accumulate {
		s += testutil.Download(f.Backend, dst)[0]
	}
	f.Upload(dst, []float32{s})
}

func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }

func (f f32) softmax(dst, x *core.Tensor, log bool) {
	v := testutil.Download(f.Backend, x)
	D := x.Dim(x.Rank() - 1)
	for lo := 0; lo < len(v); lo += D {
		row := v[lo : lo+D]
		mx := float32(math.Inf(-1))
		for _, r := range row {
			mx = max(mx, r)
		}
		var s float32
		for _, r := range row {
			s += exp32(r - mx)
		}
		ls := float32(math.Log(float64(s)))
		for i, r := range row {
			if log {
				row[i] = r - mx - ls
			} else {
				row[i] = exp32(r-mx) / s
			}
		}
	}
	f.Upload(dst, v)
}

func (f f32) Softmax(dst, x *core.Tensor)    { f.softmax(dst, x, false) }
func (f f32) LogSoftmax(dst, x *core.Tensor) { f.softmax(dst, x, true) }

func (f f32) LayerNorm(dst, mean, rstd, x, gamma, beta *core.Tensor, eps float32) {
	v := testutil.Download(f.Backend, x)
	D := x.Dim(x.Rank() - 1)
	var g, b []float32
	if gamma != nil {
		g = testutil.Download(f.Backend, gamma)
	}
	if beta != nil {
		b = testutil.Download(f.Backend, beta)
	}
	rows := len(v) / D
	mu, rs := make([]float32, rows), make([]float32, rows)
	for r := range rows {
		row := v[r*D : (r+1)*D]
		var s, sq float32
		for _, x := range row {
			s += x
		}
		mu[r] = s / float32(D)
		for _, x := range row {
			sq += (x - mu[r]) * (x - mu[r])
		}
		rs[r] = 1 / float32(math.Sqrt(float64(sq/float32(D)+eps)))
		for j := range row {
			row[j] = (row[j] - mu[r]) * rs[r]
			if g != nil {
				row[j] *= g[j]
			}
			if b != nil {
				row[j] += b[j]
			}
		}
	}
	f.Upload(dst, v)
	f.Upload(mean, mu)
	f.Upload(rstd, rs)
}

func (f f32) SGDStep(param, grad, mom *core.Tensor, lr, momentum, wd float32, nesterov, first bool) {
	p, g := testutil.Download(f.Backend, param), testutil.Download(f.Backend, grad)
	var mb []float32
	if momentum != 0 {
		mb = testutil.Download(f.Backend, mom)
	}
	for i := range p {
		gi := g[i] + wd*p[i]
		step := gi
		if mb != nil {
			if first {
				mb[i] = gi
			} else {
				mb[i] = momentum*mb[i] + gi
			}
			step = mb[i]
			if nesterov {
				step = gi + momentum*mb[i]
			}
		}
		p[i] -= lr * step
	}
	f.Upload(param, p)
	if mb != nil {
		f.Upload(mom, mb)
	}
}

func (f f32) AdamWStep(param, grad, m, v *core.Tensor, lr, b1, b2, eps, wd float32, step int) {
	p, g, mv, vv := testutil.Download(f.Backend, param), testutil.Download(f.Backend, grad), testutil.Download(f.Backend, m), testutil.Download(f.Backend, v)
	bc1 := 1 - float32(math.Pow(float64(b1), float64(step)))
	bc2 := 1 - float32(math.Pow(float64(b2), float64(step)))
	for i := range p {
		p[i] -= lr * wd * p[i]
		mv[i] = b1*mv[i] + (1-b1)*g[i]
		vv[i] = b2*vv[i] + (1-b2)*g[i]*g[i]
		p[i] -= lr * (mv[i] / bc1) / (float32(math.Sqrt(float64(vv[i]/bc2))) + eps)
	}
	f.Upload(param, p)
	f.Upload(m, mv)
	f.Upload(v, vv)
}
