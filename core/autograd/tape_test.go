package autograd_test

import (
	"math"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/backend/ref"
	"github.com/kadapt/kadapt/core/testutil"
	"gonum.org/v1/gonum/mat"
)

// spy wraps a backend and counts what the tape asks of it.
type spy struct {
	core.Backend
	live       map[core.Storage]core.Shape // allocated and not yet released
	allocs     int
	peak       int // most tensors live at once
	allocElems int
	released   int
	matmuls    []core.Shape // destination shapes of MatMul calls
}

func newSpy(b core.Backend) *spy { return &spy{Backend: b, live: map[core.Storage]core.Shape{}} }

func (s *spy) Alloc(shape core.Shape) *core.Tensor {
	t := s.Backend.Alloc(shape)
	s.live[t.Storage()] = shape.Clone()
	s.allocs++
	s.peak = max(s.peak, len(s.live))
	s.allocElems += shape.Size()
	return t
}

func (s *spy) Release(t *core.Tensor) {
	delete(s.live, t.Storage())
	s.released++
	s.Backend.Release(t)
}

func (s *spy) MatMul(dst, a, b *core.Tensor, transA, transB bool, alpha, beta float32) {
	s.matmuls = append(s.matmuls, dst.Shape().Clone())
	s.Backend.MatMul(dst, a, b, transA, transB, alpha, beta)
}

func upload(b core.Backend, v *autograd.Var, data ...float32) *autograd.Var {
	b.Upload(v.Value, data)
	return v
}

func param(b core.Backend, name string, data []float32, shape ...int) *autograd.Var {
	return upload(b, autograd.NewParam(b, name, core.Shape(shape)), data...)
}

func seq(n int, scale float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = scale * float32((i*7)%11-5)
	}
	return out
}

func TestFrozenParameterCostsNoWeightGradient(t *testing.T) {
	for _, trainW := range []bool{false, true} {
		s := newSpy(ref.New())
		x := param(s, "x", seq(6, 0.1), 2, 3)
		w := param(s, "w", seq(12, 0.2), 4, 3)
		bias := param(s, "b", seq(4, 0.3), 4)
		w.SetTrainable(trainW)
		bias.SetTrainable(false)
		tp := autograd.NewTape(s)
		y := tp.Linear(x, w, nil)
		before := len(s.matmuls)
		tp.Backward(tp.Sum(y, nil, false))
		weightProducts := 0
		for _, sh := range s.matmuls[before:] {
			if sh.Equal(w.Shape()) {
				weightProducts++
			}
		}
		if want := map[bool]int{false: 0, true: 1}[trainW]; weightProducts != want {
			t.Errorf("trainable w %v: backward ran %d weight-gradient products, want %d", trainW, weightProducts, want)
		}
		if (w.Grad != nil) != trainW || bias.Grad != nil {
			t.Errorf("trainable w %v: w.Grad %v, bias.Grad %v", trainW, w.Grad, bias.Grad)
		}
		if w.Trainable() != trainW || w.RequiresGrad() != trainW || !w.IsParam() {
			t.Errorf("flags: trainable %v requiresGrad %v param %v", w.Trainable(), w.RequiresGrad(), w.IsParam())
		}
		// d Σ(x·wᵀ) / dx[i,k] = Σ_j w[j,k].
		wv := testutil.Download64(w.Value)
		var want []float64
		for range 2 {
			for k := range 3 {
				want = append(want, wv[k]+wv[3+k]+wv[6+k]+wv[9+k])
			}
		}
		testutil.AllClose(t, "dx", testutil.Download64(x.Grad), want, 1e-6, 1e-6)
		tp.Reset()
	}
}

func TestGradientAccumulation(t *testing.T) {
	b := ref.New()
	x := param(b, "x", seq(6, 0.1), 2, 3)
	w := param(b, "w", seq(12, 0.2), 4, 3)
	step := func(tp *autograd.Tape) *autograd.Var {
		return tp.Sum(tp.Square(tp.Linear(x, w, nil)), nil, false)
	}
	tp := autograd.NewTape(b)
	tp.Backward(step(tp))
	once := testutil.Download64(w.Grad)
	tp.Reset()
	tp.Backward(step(tp))
	testutil.AllClose(t, "second step, no ZeroGrad", testutil.Download64(w.Grad), scaled(once, 2), 1e-6, 1e-6)
	// Backward twice on one graph adds the parameter gradients again but must not
	// reuse the intermediate gradients of the first pass.
	loss := step(tp)
	tp.Backward(loss)
	tp.Backward(loss)
	testutil.AllClose(t, "two Backward on one tape", testutil.Download64(w.Grad), scaled(once, 4), 1e-6, 1e-6)
	tp.Reset()
	w.ZeroGrad()
	x.ZeroGrad()
	tp.Backward(step(tp))
	testutil.AllClose(t, "after ZeroGrad", testutil.Download64(w.Grad), once, 1e-6, 1e-6)
	tp.Reset()
}

func scaled(x []float64, k float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = k * v
	}
	return out
}

func TestNoGradRecordsNothing(t *testing.T) {
	s := newSpy(ref.New())
	w := param(s, "w", seq(12, 0.2), 4, 3)
	tp := autograd.NewTape(s)
	if prev := tp.SetGradEnabled(false); !prev {
		t.Fatal("gradients should start enabled")
	}
	x := tp.Input(seq(6, 0.1), 2, 3)
	h := tp.Attention(tp.Reshape(tp.Linear(x, w, nil), 1, 1, 2, 4), tp.Reshape(tp.Linear(x, w, nil), 1, 1, 2, 4),
		tp.Reshape(tp.Linear(x, w, nil), 1, 1, 2, 4), true, 1)
	loss := tp.CrossEntropy(tp.Reshape(h, 2, 4), tp.Input([]float32{1, 3}, 2).Value, 0)
	if loss.RequiresGrad() || h.RequiresGrad() {
		t.Fatal("no-grad outputs require grad")
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "does not require grad") {
				t.Errorf("Backward in no-grad mode: recover() = %v", r)
			}
		}()
		tp.Backward(loss)
	}()
	if w.Grad != nil {
		t.Error("no-grad mode allocated a parameter gradient")
	}
	if prev := tp.SetGradEnabled(true); prev {
		t.Error("SetGradEnabled(true) reported gradients were enabled")
	}
	tp.Reset()
	if len(s.live) != 1 { // w's value
		t.Errorf("%d tensors live after Reset, want 1", len(s.live))
	}
}

// TestResetReleasesEverything checks that a training step leaves exactly the
// parameters, their gradients and the caller's tensors allocated, and that a second
// step reuses the pool (the ref backend panics on a double release).
func TestResetReleasesEverything(t *testing.T) {
	s := newSpy(ref.New())
	w := param(s, "w", seq(12, 0.2), 4, 3)
	bias := param(s, "b", seq(4, 0.1), 4)
	labels := s.Alloc(core.Shape{2})
	s.Upload(labels, []float32{0, 3})
	for step := range 3 {
		tp := autograd.NewTape(s)
		tp.Training = true
		x := tp.Input(seq(6, 0.3), 2, 3)
		h := tp.Dropout(tp.GELU(tp.Linear(x, w, bias)), 0.2)
		h = tp.LayerNorm(tp.Add(h, tp.Reshape(tp.Mean(h, []int{1}, false), 2, 1)), nil, nil, 1e-5)
		tp.Backward(tp.CrossEntropy(h, labels, 0.1))
		tp.Reset()
		if want := 5; len(s.live) != want {
			t.Fatalf("step %d: %d tensors live after Reset, want %d (w, b, their grads, labels): %v", step, len(s.live), want, s.live)
		}
	}
}

// TestBackwardReleasesSpentGradients checks that a long chain's backward pass holds
// only the gradients in flight, not one per node, and that leaves keep theirs.
func TestBackwardReleasesSpentGradients(t *testing.T) {
	s := newSpy(ref.New())
	tp := autograd.NewTape(s)
	x0 := s.Alloc(core.Shape{5})
	s.Upload(x0, []float32{0.1, -0.2, 0.3, 0.4, -0.5})
	x := tp.Variable(x0)
	h := tp.Reshape(x, 5, 1)
	var mid []*autograd.Var
	const depth = 20
	for range depth {
		h = tp.Tanh(h)
		mid = append(mid, h)
	}
	loss := tp.Sum(h, nil, false)
	afterForward := len(s.live)
	s.peak = 0
	tp.Backward(loss)
	if extra := s.peak - afterForward; extra > 3 {
		t.Errorf("backward of a %d-deep chain held %d gradients at once", depth, extra)
	}
	for i, m := range mid {
		if m.Grad != nil {
			t.Fatalf("node %d kept its gradient after Backward", i)
		}
	}
	if x.Grad == nil {
		t.Fatal("the Variable lost its gradient")
	}
	// d/dx of tanh^20 by the chain rule, in float64.
	var want []float64
	for _, v := range []float64{0.1, -0.2, 0.3, 0.4, -0.5} {
		d := 1.0
		for range depth {
			v = math.Tanh(v)
			d *= 1 - v*v
		}
		want = append(want, d)
	}
	testutil.AllClose(t, "dx", testutil.Download64(x.Grad), want, 1e-6, 1e-6)
	tp.Reset()
	if len(s.live) != 1 {
		t.Errorf("%d tensors live after Reset, want only the Variable's value", len(s.live))
	}
}

func TestMaxTiesSplitGradient(t *testing.T) {
	b := ref.New()
	x := param(b, "x", []float32{1, 3, 3, 2, -1, -1, -1, 0}, 2, 4)
	tp := autograd.NewTape(b)
	tp.Backward(tp.Sum(tp.Max(x, []int{1}, false), nil, false))
	testutil.AllClose(t, "row max", testutil.Download64(x.Grad), []float64{0, 0.5, 0.5, 0, 0, 0, 0, 1}, 0, 0)
	tp.Reset()

	a := param(b, "a", []float32{1, 2, 3}, 3)
	c := param(b, "c", []float32{1, 5, 0}, 3)
	tp.Backward(tp.Sum(tp.Maximum(a, c), nil, false))
	testutil.AllClose(t, "maximum a", testutil.Download64(a.Grad), []float64{0.5, 0, 1}, 0, 0)
	testutil.AllClose(t, "maximum c", testutil.Download64(c.Grad), []float64{0.5, 1, 0}, 0, 0)
	tp.Reset()
}

func TestDropoutMask(t *testing.T) {
	b := cpu.New()
	x := param(b, "x", seq(40, 0.25), 8, 5)
	tp := autograd.NewTape(b)
	if y := tp.Dropout(x, 0.5); y != x {
		t.Error("dropout outside training is not the identity")
	}
	tp.Training = true
	tp.SetSeed(1234)
	xs := testutil.Download64(x.Value)
	for call := range 2 {
		y := testutil.Download64(tp.Dropout(x, 0.25).Value)
		for i := range y {
			want := 0.0
			if core.DropoutUniform(1234+uint64(call), i) >= 0.25 {
				want = xs[i] / 0.75
			}
			if math.Abs(y[i]-want) > 1e-6 {
				t.Fatalf("call %d: y[%d] = %v, want %v", call, i, y[i], want)
			}
		}
	}
	tp.Reset()
}

func TestBatchNormRunningStatistics(t *testing.T) {
	for _, affine := range []bool{false, true} {
		b := ref.New()
		bn := autograd.NewBatchNorm(b, "head.bn", 3, affine)
		if (bn.Gamma != nil) != affine || (bn.Beta != nil) != affine {
			t.Fatalf("affine %v: gamma %v beta %v", affine, bn.Gamma, bn.Beta)
		}
		if affine {
			testutil.AllClose(t, "gamma init", testutil.Download64(bn.Gamma.Value), []float64{1, 1, 1}, 0, 0)
			testutil.AllClose(t, "beta init", testutil.Download64(bn.Beta.Value), []float64{0, 0, 0}, 0, 0)
		}
		testutil.AllClose(t, "running var init", testutil.Download64(bn.RunningVar), []float64{1, 1, 1}, 0, 0)
		if bn.Momentum != 0.1 || bn.Eps != 1e-5 {
			t.Errorf("momentum %v eps %v", bn.Momentum, bn.Eps)
		}
		data := []float32{1, 2, -1, 3, 0, 0.5, -2, 4, 1.5, 0.5, 1, 2}
		tp := autograd.NewTape(b)
		tp.Training = true
		for range 2 {
			bn.Forward(tp, tp.Input(data, 4, 3))
		}
		tp.Reset()
		// PyTorch: running = 0.9·running + 0.1·stat, unbiased variance, twice.
		var wantMean, wantVar []float64
		for j := range 3 {
			mu, ss := 0.0, 0.0
			for i := range 4 {
				mu += float64(data[i*3+j]) / 4
			}
			for i := range 4 {
				d := float64(data[i*3+j]) - mu
				ss += d * d
			}
			m, v := 0.0, 1.0
			for range 2 {
				m = 0.9*m + 0.1*mu
				v = 0.9*v + 0.1*ss/3
			}
			wantMean, wantVar = append(wantMean, m), append(wantVar, v)
		}
		testutil.AllClose(t, "running mean", testutil.Download64(bn.RunningMean), wantMean, 1e-6, 1e-6)
		testutil.AllClose(t, "running var", testutil.Download64(bn.RunningVar), wantVar, 1e-6, 1e-6)
	}
}

func TestKronAgainstGonum(t *testing.T) {
	for _, b := range []core.Backend{ref.New(), cpu.New()} {
		const n, p, q, r, s = 3, 3, 5, 7, 2
		av, bv := seq(n*p*q, 0.3), seq(n*r*s, -0.7)
		for i := range bv {
			bv[i] += float32(i) * 0.01
		}
		a := param(b, "a", av, n, p, q)
		c := param(b, "b", bv, n, r, s)
		tp := autograd.NewTape(b)
		got := testutil.Download64(tp.KronSum(a, c).Value)
		sum := mat.NewDense(p*r, q*s, nil)
		for i := range n {
			ai, bi := mat.NewDense(p, q, nil), mat.NewDense(r, s, nil)
			for j := range p * q {
				ai.Set(j/q, j%q, float64(av[i*p*q+j]))
			}
			for j := range r * s {
				bi.Set(j/s, j%s, float64(bv[i*r*s+j]))
			}
			var k mat.Dense
			k.Kronecker(ai, bi)
			sum.Add(sum, &k)
			if i == 0 {
				a0 := tp.Reshape(tp.Slice(a, 0, 0, 1), p, q)
				c0 := tp.Reshape(tp.Slice(c, 0, 0, 1), r, s)
				testutil.AllClose(t, b.Name()+" kron", testutil.Download64(tp.Kron(a0, c0).Value), k.RawMatrix().Data, 1e-5, 1e-5)
			}
		}
		testutil.AllClose(t, b.Name()+" kron sum", got, sum.RawMatrix().Data, 1e-5, 1e-5)
		tp.Reset()
	}
}

func TestBadInputPanicsNameOp(t *testing.T) {
	b := ref.New()
	tp := autograd.NewTape(b)
	v := func(shape ...int) *autograd.Var { return tp.Input(make([]float32, core.Shape(shape).Size()), shape...) }
	cases := []struct {
		name, want string
		f          func()
	}{
		{"matmul inner", "matmul", func() { tp.MatMul(v(2, 3), v(4, 5), false, false) }},
		{"matmul batch", "batch axes", func() { tp.MatMul(v(2, 2, 3), v(3, 3, 5), false, false) }},
		{"linear", "linear", func() { tp.Linear(v(2, 3), v(4, 5), nil) }},
		{"linear bias", "bias", func() { tp.Linear(v(2, 5), v(4, 5), v(3)) }},
		{"add", "add", func() { tp.Add(v(2, 3), v(2)) }},
		{"sum axis", "sum", func() { tp.Sum(v(2, 3), []int{2}, false) }},
		{"sum repeat", "repeated", func() { tp.Sum(v(2, 3), []int{1, -1}, false) }},
		{"reshape", "reshape", func() { tp.Reshape(v(2, 3), 4, -1) }},
		{"permute", "permute", func() { tp.Permute(v(2, 3), 0, 0) }},
		{"transpose", "transpose", func() { tp.Transpose(v(2, 3), 0, 2) }},
		{"concat", "concat", func() { tp.Concat(0, v(2, 3), v(2, 4)) }},
		{"slice", "slice", func() { tp.Slice(v(2, 3), 1, 2, 5) }},
		{"index range", "index[1] = 3", func() { tp.IndexSelect(v(3, 2), 0, idx(tp, 0, 3)) }},
		{"index fraction", "index[0] = 0.5", func() { tp.IndexSelect(v(3, 2), 0, idx(tp, 0.5)) }},
		{"labels", "labels[0] = -1", func() { tp.CrossEntropy(v(2, 3), idx(tp, -1, 0), 0) }},
		{"labels shape", "cross_entropy", func() { tp.CrossEntropy(v(2, 3), idx(tp, 0), 0) }},
		{"bce", "bce_with_logits", func() { tp.BCEWithLogits(v(2, 3), v(3, 2).Value) }},
		{"layer norm", "layer_norm", func() { tp.LayerNorm(v(2, 3), v(2), nil, 1e-5) }},
		{"dropout p", "dropout", func() { tp.Dropout(v(2), 1) }},
		{"kron", "kron", func() { tp.Kron(v(2), v(2, 2)) }},
		{"kron sum", "kron_sum", func() { tp.KronSum(v(2, 2, 2), v(3, 2, 2)) }},
		{"outer", "outer", func() { tp.Outer(v(2, 1), v(2)) }},
		{"patch", "patch_embed", func() { tp.PatchEmbed(v(1, 3, 5, 4), v(2, 3, 2, 2), nil, 2) }},
		{"attention", "attention", func() { tp.Attention(v(1, 1, 2, 3), v(1, 1, 3, 3), v(1, 1, 3, 3), true, 1) }},
		{"batch norm", "batch_norm", func() {
			autograd.NewBatchNorm(b, "bn", 3, false).Forward(tp, v(2, 4))
		}},
		{"input size", "Input", func() { tp.Input(make([]float32, 5), 2, 3) }},
		{"backward shape", "one element", func() { tp.Backward(v(2)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.Contains(msg, c.want) {
					t.Errorf("recover() = %v, want a message containing %q", r, c.want)
				}
			}()
			c.f()
		})
	}
	tp.Reset()
}

// memBackend counts the bytes of live tensors it hands out.
type memBackend struct {
	core.Backend
	inUse, peak int
}

func (m *memBackend) Alloc(s core.Shape) *core.Tensor {
	m.inUse += 4 * s.Size()
	m.peak = max(m.peak, m.inUse)
	return m.Backend.Alloc(s)
}

func (m *memBackend) Release(t *core.Tensor) {
	m.inUse -= 4 * t.Size()
	m.Backend.Release(t)
}

// TestReleaseUnsavedKeepsGradients runs three transformer blocks whose attention
// query is the only trainable part (as in PEFT, most weights frozen), with and without
// ReleaseUnsaved after each block: the gradients must be identical, and releasing must
// cut the peak activation memory of the forward and backward passes.
func TestReleaseUnsavedKeepsGradients(t *testing.T) {
	run := func(release bool) (grads [][]float32, peak int) {
		mb := &memBackend{Backend: cpu.New()}
		var blocks []*block
		for range 3 {
			bl := newBlock(mb, 64)
			for _, p := range bl.params() {
				p.SetTrainable(p == bl.wq || p == bl.bq || p == bl.ln1g)
			}
			blocks = append(blocks, bl)
		}
		x := make([]float32, 4*9*64)
		for i := range x {
			x[i] = float32(math.Cos(float64(i) * 0.37))
		}
		base := mb.inUse // the parameters
		mb.peak = base
		tp := autograd.NewTape(mb)
		h := tp.Input(x, 4, 9, 64)
		m := tp.Mark()
		for _, bl := range blocks {
			h = bl.forward(tp, h)
			if release {
				tp.ReleaseUnsaved(m, h)
			}
		}
		tp.Backward(tp.Mean(tp.Square(h), nil, false))
		for _, bl := range blocks {
			for _, p := range []*autograd.Var{bl.wq, bl.bq, bl.ln1g} {
				g := make([]float32, p.Value.Size())
				mb.Download(g, p.Grad)
				grads = append(grads, g)
			}
		}
		tp.Reset()
		return grads, mb.peak - base
	}
	want, keepAll := run(false)
	got, released := run(true)
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("gradient %d[%d] = %v after releasing, %v without", i, j, got[i][j], want[i][j])
			}
		}
	}
	if float64(released) > 0.67*float64(keepAll) {
		t.Errorf("peak activation memory %d bytes with ReleaseUnsaved, %d without: expected a cut of at least a third", released, keepAll)
	}
	t.Logf("peak activation memory %d bytes with ReleaseUnsaved, %d without", released, keepAll)
}
