package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
)

// BenchmarkMatMul measures products at 512³ and at the shapes of ViT-B/32's linear
// layers for a batch of 256 images (256·50 = 12,800 tokens, width 768, MLP 3072), in
// nn.Linear's form x·Wᵀ. The large ones take seconds per iteration.
func BenchmarkMatMul(b *testing.B) {
	cases := []struct {
		name         string
		m, n, k      int
		transA, tB   bool
		batch        int
		sharedWeight bool
	}{
		{"512x512x512/NN", 512, 512, 512, false, false, 1, false},
		{"512x512x512/NT", 512, 512, 512, false, true, 1, false},
		{"512x512x512/TN", 512, 512, 512, true, false, 1, false},
		{"attention/3072x(50x64x50)", 50, 50, 64, false, true, 3072, false},
		{"vitb32-qkv/12800x768x768", 12800, 768, 768, false, true, 1, true},
		{"vitb32-fc1/12800x3072x768", 12800, 3072, 768, false, true, 1, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			be := New()
			rng := rand.New(rand.NewPCG(1, 2))
			as := core.Shape{c.m, c.k}
			if c.transA {
				as = core.Shape{c.k, c.m}
			}
			bs := core.Shape{c.k, c.n}
			if c.tB {
				bs = core.Shape{c.n, c.k}
			}
			ds := core.Shape{c.m, c.n}
			if c.batch > 1 {
				as = append(core.Shape{c.batch}, as...)
				bs = append(core.Shape{c.batch}, bs...)
				ds = append(core.Shape{c.batch}, ds...)
			}
			x, w, y := upload(be, as, randn(rng, as.Size())), upload(be, bs, randn(rng, bs.Size())), be.Alloc(ds)
			flops := 2 * float64(c.batch) * float64(c.m) * float64(c.n) * float64(c.k)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				be.MatMul(y, x, w, c.transA, c.tB, 1, 0)
			}
			b.ReportMetric(flops*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "GFLOP/s")
		})
	}
}

// BenchmarkOps measures the memory-bound ops at ViT-B/32 batch-256 sizes.
func BenchmarkOps(b *testing.B) {
	const tokens, width, mlp = 12800, 768, 3072
	be := New()
	rng := rand.New(rand.NewPCG(3, 4))
	act := core.Shape{tokens, width}
	x := upload(be, act, randn(rng, act.Size()))
	dy := upload(be, act, randn(rng, act.Size()))
	h := upload(be, core.Shape{tokens, mlp}, randn(rng, tokens*mlp))
	bias := upload(be, core.Shape{width}, randn(rng, width))
	gamma, beta := upload(be, core.Shape{width}, randn(rng, width)), upload(be, core.Shape{width}, randn(rng, width))
	mean, rstd := be.Alloc(core.Shape{tokens}), be.Alloc(core.Shape{tokens})
	out, outH := be.Alloc(act), be.Alloc(h.Shape())
	att := upload(be, core.Shape{256 * 12 * 50, 50}, randn(rng, 256*12*50*50))
	attOut := be.Alloc(att.Shape())
	col := be.Alloc(core.Shape{1, width})
	perm := be.Alloc(core.Shape{width, tokens})
	dg, db := be.Alloc(core.Shape{width}), be.Alloc(core.Shape{width})
	// 16M parameters, with their moments far beyond the caches as a fine-tuned
	// ViT-B/32's 88M are.
	params := core.Shape{16 << 20}
	pw, pg := upload(be, params, randn(rng, params.Size())), upload(be, params, randn(rng, params.Size()))
	pm, pv := be.Alloc(params), be.Alloc(params)
	adamStep := 0
	ops := []struct {
		name  string
		bytes int // bytes read and written per call, for GB/s
		fn    func()
	}{
		{"BiasAdd", 8*act.Size() + 4*width, func() { be.Binary(core.Add, out, x, bias) }},
		{"GELU/12800x3072", 8 * tokens * mlp, func() { be.Unary(core.GELU, outH, h) }},
		{"QuickGELU/12800x3072", 8 * tokens * mlp, func() { be.Unary(core.QuickGELU, outH, h) }},
		{"LayerNorm", 8 * act.Size(), func() { be.LayerNorm(out, mean, rstd, x, gamma, beta, 1e-5) }},
		{"LayerNormGrad", 16 * act.Size(), func() { be.LayerNormGrad(out, dg, db, dy, x, mean, rstd, gamma, false) }},
		{"Softmax/attention", 8 * att.Size(), func() { be.Softmax(attOut, att) }},
		{"ReduceColumns", 4 * act.Size(), func() { be.Reduce(core.ReduceSum, col, dy, false) }},
		{"Transpose", 8 * act.Size(), func() { be.Permute(perm, x, []int{1, 0}) }},
		{"Alloc+Release", 0, func() { be.Release(be.Alloc(act)) }},
		{"AdamW/16M", 28 * params.Size(), func() { adamStep++; be.AdamWStep(pw, pg, pm, pv, 1e-3, 0.9, 0.999, 1e-8, 0.01, adamStep) }},
	}
	be.LayerNorm(out, mean, rstd, x, gamma, beta, 1e-5)
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				op.fn()
			}
			if op.bytes > 0 {
				b.ReportMetric(float64(op.bytes)*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "GB/s")
			}
		})
	}
}
