package autograd_test

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

// block is a pre-LN transformer block (CLIP's residual attention block) built from the
// tape's ops, for the steady-state test and the benchmark.
type block struct {
	width, heads                   int
	ln1g, ln1b, ln2g, ln2b         *autograd.Var
	wq, bq, wk, bk, wv, bv, wo, bo *autograd.Var
	w1, b1, w2, b2                 *autograd.Var
}

func newBlock(b core.Backend, width int) *block {
	mk := func(name string, scale float32, shape ...int) *autograd.Var {
		v := autograd.NewParam(b, name, core.Shape(shape))
		data := make([]float32, v.Value.Size())
		for i := range data {
			data[i] = scale * float32(math.Sin(float64(i)*0.7+float64(len(name))))
		}
		b.Upload(v.Value, data)
		return v
	}
	w := 1 / float32(math.Sqrt(float64(width)))
	return &block{
		width: width, heads: width / 64,
		ln1g: mk("ln1.weight", 1, width), ln1b: mk("ln1.bias", 0.1, width),
		ln2g: mk("ln2.weight", 1, width), ln2b: mk("ln2.bias", 0.1, width),
		wq: mk("q.weight", w, width, width), bq: mk("q.bias", 0.1, width),
		wk: mk("k.weight", w, width, width), bk: mk("k.bias", 0.1, width),
		wv: mk("v.weight", w, width, width), bv: mk("v.bias", 0.1, width),
		wo: mk("out.weight", w, width, width), bo: mk("out.bias", 0.1, width),
		w1: mk("fc1.weight", w, 4*width, width), b1: mk("fc1.bias", 0.1, 4*width),
		w2: mk("fc2.weight", w/2, width, 4*width), b2: mk("fc2.bias", 0.1, width),
	}
}

func (bl *block) params() []*autograd.Var {
	return []*autograd.Var{bl.ln1g, bl.ln1b, bl.ln2g, bl.ln2b, bl.wq, bl.bq, bl.wk, bl.bk,
		bl.wv, bl.bv, bl.wo, bl.bo, bl.w1, bl.b1, bl.w2, bl.b2}
}

// forward maps x [B, L, D] to the block's output.
func (bl *block) forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	s := x.Shape()
	nb, l, d, h := s[0], s[1], s[2], bl.heads
	heads := func(t *autograd.Var) *autograd.Var {
		return tp.Permute(tp.Reshape(t, nb, l, h, d/h), 0, 2, 1, 3)
	}
	y := tp.LayerNorm(x, bl.ln1g, bl.ln1b, 1e-5)
	q, k, v := heads(tp.Linear(y, bl.wq, bl.bq)), heads(tp.Linear(y, bl.wk, bl.bk)), heads(tp.Linear(y, bl.wv, bl.bv))
	a := tp.Attention(q, k, v, false, float32(1/math.Sqrt(float64(d/h))))
	a = tp.Reshape(tp.Permute(a, 0, 2, 1, 3), nb, l, d)
	x = tp.Add(x, tp.Linear(a, bl.wo, bl.bo))
	y = tp.LayerNorm(x, bl.ln2g, bl.ln2b, 1e-5)
	y = tp.Linear(tp.QuickGELU(tp.Linear(y, bl.w1, bl.b1)), bl.w2, bl.b2)
	return tp.Add(x, y)
}

// blockFLOPs counts the floating-point operations of the block's matrix products,
// forward and backward (twice the forward: one product each for the input and the
// weight gradient, and four products for attention's backward).
func blockFLOPs(batch, tokens, width int) float64 {
	t, d := float64(batch*tokens), float64(width)
	fwd := 2*t*4*d*d + 2*t*8*d*d + 4*float64(batch)*float64(tokens*tokens)*d
	return 3 * fwd
}

// step runs forward, Backward and an SGD update, then resets the tape.
func step(tp *autograd.Tape, bl *block, x *core.Tensor, moms []*core.Tensor, first bool) {
	out := bl.forward(tp, tp.Variable(x))
	tp.Backward(tp.Mean(tp.Square(out), nil, false))
	b := tp.Backend()
	for i, p := range bl.params() {
		b.SGDStep(p.Value, p.Grad, moms[i], 1e-3, 0.9, 1e-4, false, first)
		p.ZeroGrad()
	}
	tp.Reset()
}

// TestSteadyStateAllocations checks that once the pool is warm a training step
// allocates only bookkeeping on the Go heap, not tensor storage: far less than the
// step's activations and gradients.
func TestSteadyStateAllocations(t *testing.T) {
	const batch, tokens, width = 4, 33, 128
	b := cpu.New()
	bl := newBlock(b, width)
	x := b.Alloc(core.Shape{batch, tokens, width})
	xd := make([]float32, x.Size())
	for i := range xd {
		xd[i] = float32(math.Cos(float64(i)))
	}
	b.Upload(x, xd)
	moms := make([]*core.Tensor, len(bl.params()))
	for i, p := range bl.params() {
		moms[i] = b.Alloc(p.Shape())
	}

	// Measure what a step asks of the pool.
	sp := newSpy(b)
	tp := autograd.NewTape(sp)
	step(tp, bl, x, moms, true)
	storage := 4 * sp.allocElems

	tp = autograd.NewTape(b)
	step(tp, bl, x, moms, false) // warm the pool for this backend directly
	const steps = 5
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range steps {
		step(tp, bl, x, moms, false)
	}
	runtime.ReadMemStats(&after)
	perStep := float64(after.TotalAlloc-before.TotalAlloc) / steps
	allocs := float64(after.Mallocs-before.Mallocs) / steps
	t.Logf("per step: %.0f heap bytes in %.0f allocations; tensor storage requested %d bytes", perStep, allocs, storage)
	// Without pooling a step would allocate at least its storage; what remains is
	// handles, closures and the BLAS's per-call bookkeeping (about 1.5% here).
	if perStep > float64(storage)/20 {
		t.Errorf("a warm step allocates %.0f heap bytes, more than 5%% of the %d bytes of tensor storage it uses: the pool is not reused", perStep, storage)
	}
}

// BenchmarkTransformerBlock times forward + backward + Reset of a pre-LN block on the
// CPU backend at ViT-S/B-like widths, 50 tokens, batch scaled so the work is similar.
func BenchmarkTransformerBlock(b *testing.B) {
	for _, width := range []int{192, 384, 768} {
		batch := 8 * 768 / width
		b.Run(fmt.Sprintf("width=%d", width), func(b *testing.B) {
			be := cpu.New()
			bl := newBlock(be, width)
			x := be.Alloc(core.Shape{batch, 50, width})
			tp := autograd.NewTape(be)
			run := func() {
				out := bl.forward(tp, tp.Variable(x))
				tp.Backward(tp.Mean(tp.Square(out), nil, false))
				tp.Reset()
			}
			run()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				run()
			}
			b.ReportMetric(blockFLOPs(batch, 50, width)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
