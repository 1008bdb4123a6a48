package cpu

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/cpu/gemm"
)

// refMatMul computes alpha·op(a)·op(b) + beta·c per batch entry in float64 with gonum's
// blas64, the independent reference for MatMul.
func refMatMul(a, b, c []float32, batch, m, n, k int, aShared, bShared, tA, tB bool, alpha, beta float64) []float64 {
	out := f64(c)
	if beta == 0 {
		clear(out) // BLAS semantics: beta = 0 ignores C, even NaN
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	for i := 0; i < batch; i++ {
		ao, bo := i*m*k, i*k*n
		if aShared {
			ao = 0
		}
		if bShared {
			bo = 0
		}
		ag := blas64.General{Rows: m, Cols: k, Stride: k, Data: f64(a[ao : ao+m*k])}
		if tA {
			ag = blas64.General{Rows: k, Cols: m, Stride: m, Data: ag.Data}
		}
		bg := blas64.General{Rows: k, Cols: n, Stride: n, Data: f64(b[bo : bo+k*n])}
		if tB {
			bg = blas64.General{Rows: n, Cols: k, Stride: k, Data: bg.Data}
		}
		cg := blas64.General{Rows: m, Cols: n, Stride: n, Data: out[i*m*n : (i+1)*m*n]}
		blas64.Gemm(ta, tb, alpha, ag, bg, beta, cg)
	}
	return out
}

// TestMatMul runs every case on each GEMM this machine has: the gemm package's
// kernels and gonum's fallback ("none").
func TestMatMul(t *testing.T) {
	saved := gemm.Kernel()
	defer func() {
		if err := gemm.SetKernel(cmp.Or(saved, "none")); err != nil {
			t.Fatal(err)
		}
	}()
	for _, k := range append(gemm.Kernels(), "none") {
		if err := gemm.SetKernel(k); err != nil {
			t.Fatal(err)
		}
		t.Run(k, testMatMul)
	}
}

func testMatMul(t *testing.T) {
	type tc struct {
		batch            core.Shape // dst's batch axes
		m, n, k          int
		aShared, bShared bool
		alpha, beta      float32
	}
	cases := []tc{
		{nil, 5, 7, 3, false, false, 1, 0},
		{nil, 1, 1, 1, false, false, 2, 0},
		{nil, 70, 130, 90, false, false, 0.5, 0.25}, // big enough for gonum's own threads
		{core.Shape{3}, 4, 6, 5, false, false, 1, 0},
		{core.Shape{2, 3}, 4, 6, 5, false, true, 1, 1},  // shared b: folded into one product
		{core.Shape{2, 3}, 4, 6, 5, true, false, -1, 0}, // shared a
		{core.Shape{4}, 3, 2, 7, true, true, 1, 0.5},    // both shared
		{core.Shape{64}, 17, 9, 33, false, false, 1, 0}, // enough small products to split batches
		{core.Shape{5}, 65, 66, 8, false, false, 1, 0},  // each product parallel inside gonum
	}
	rng := rand.New(rand.NewPCG(1, 1))
	b := New()
	for _, c := range cases {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				name := fmt.Sprintf("%v_%dx%dx%d_shared%v%v_t%v%v_a%v_b%v", c.batch, c.m, c.n, c.k, c.aShared, c.bShared, tA, tB, c.alpha, c.beta)
				t.Run(name, func(t *testing.T) {
					batch := c.batch.Size()
					aMat := core.Shape{c.m, c.k}
					if tA {
						aMat = core.Shape{c.k, c.m}
					}
					bMat := core.Shape{c.k, c.n}
					if tB {
						bMat = core.Shape{c.n, c.k}
					}
					as, bs := aMat, bMat
					if !c.aShared {
						as = append(c.batch.Clone(), aMat...)
					}
					if !c.bShared {
						bs = append(c.batch.Clone(), bMat...)
					}
					ds := append(c.batch.Clone(), c.m, c.n)
					av, bv, cv := randn(rng, as.Size()), randn(rng, bs.Size()), randn(rng, ds.Size())
					if c.beta == 0 {
						cv[0] = float32(math.NaN()) // must be ignored
					}
					a, bt, dst := upload(b, as, av), upload(b, bs, bv), upload(b, ds, cv)
					b.MatMul(dst, a, bt, tA, tB, c.alpha, c.beta)
					want := refMatMul(av, bv, cv, batch, c.m, c.n, c.k, c.aShared, c.bShared, tA, tB, float64(c.alpha), float64(c.beta))
					closeTo(t, "MatMul", download(b, dst), want, 1e-4, 1e-4)
				})
			}
		}
	}
}

func TestMatMulEdgeSizes(t *testing.T) {
	b := New()
	// k = 0: an empty sum, so dst = beta·dst.
	dst := upload(b, core.Shape{2, 2}, []float32{1, 2, 3, float32(math.NaN())})
	b.MatMul(dst, b.Alloc(core.Shape{2, 0}), b.Alloc(core.Shape{0, 2}), false, false, 1, 0)
	closeTo(t, "k=0 beta=0", download(b, dst), []float64{0, 0, 0, 0}, 0, 0)
	b.Upload(dst, []float32{1, 2, 3, 4})
	b.MatMul(dst, b.Alloc(core.Shape{2, 0}), b.Alloc(core.Shape{0, 2}), false, false, 1, 3)
	closeTo(t, "k=0 beta=3", download(b, dst), []float64{3, 6, 9, 12}, 0, 0)
	// m = 0 and an empty batch are no-ops.
	b.MatMul(b.Alloc(core.Shape{0, 3}), b.Alloc(core.Shape{0, 2}), b.Alloc(core.Shape{2, 3}), false, false, 1, 0)
	b.MatMul(b.Alloc(core.Shape{0, 2, 3}), b.Alloc(core.Shape{0, 2, 2}), b.Alloc(core.Shape{2, 3}), false, false, 1, 0)
	// A hand-computed product: [[1,2],[3,4]]·[[5,6],[7,8]] = [[19,22],[43,50]].
	p := b.Alloc(core.Shape{2, 2})
	b.MatMul(p, upload(b, core.Shape{2, 2}, []float32{1, 2, 3, 4}), upload(b, core.Shape{2, 2}, []float32{5, 6, 7, 8}), false, false, 1, 0)
	closeTo(t, "2x2", download(b, p), []float64{19, 22, 43, 50}, 0, 0)
	expectPanic(t, "shapes do not match", func() {
		b.MatMul(p, b.Alloc(core.Shape{2, 3}), b.Alloc(core.Shape{2, 2}), false, false, 1, 0)
	})
	expectPanic(t, "batch axes", func() {
		b.MatMul(b.Alloc(core.Shape{3, 2, 2}), b.Alloc(core.Shape{2, 2, 2}), b.Alloc(core.Shape{2, 2}), false, false, 1, 0)
	})
}

// TestMatMulPackedWeights multiplies by the same weight repeatedly, as a frozen layer
// is, and checks that the backend starts serving it packed from its second use, and
// that every way of writing the weight (each op that has it as its destination, a
// write through a reshaped view, a release and reuse of its storage, another kernel)
// makes the next product use the new values: a stale packed copy would give the old
// ones.
func TestMatMulPackedWeights(t *testing.T) {
	if systemBLAS || gemm.Kernel() == "" {
		t.Skip("products go through gonum's blas32 (no gemm kernel on this CPU, or the openblas tag), which packs nothing")
	}
	saved := gemm.Kernel()
	defer func() {
		if err := gemm.SetKernel(saved); err != nil {
			t.Fatal(err)
		}
	}()
	const m, n, k = 37, 45, 29
	rng := rand.New(rand.NewPCG(3, 3))
	for _, tB := range []bool{true, false} {
		b := newBackend()
		wShape := core.Shape{k, n}
		slot := 0
		if tB {
			wShape, slot = core.Shape{n, k}, 1
		}
		wv := randn(rng, wShape.Size())
		w := upload(b, wShape, wv)
		other := upload(b, wShape, randn(rng, wShape.Size()))
		// product multiplies a fresh x [2, m, k] (folded into one product) by w and
		// checks the result against the float64 reference for the values w holds now.
		product := func(what string) {
			t.Helper()
			xv := randn(rng, 2*m*k)
			x, dst := upload(b, core.Shape{2, m, k}, xv), b.Alloc(core.Shape{2, m, n})
			b.MatMul(dst, x, w, false, tB, 1, 0)
			wNow := download(b, w)
			want := refMatMul(xv, wNow, make([]float32, 2*m*n), 2, m, n, k, false, true, false, tB, 1, 0)
			closeTo(t, fmt.Sprintf("transB %v, %s", tB, what), download(b, dst), want, 1e-4, 1e-4)
			b.Release(x)
			b.Release(dst)
		}
		packed := func() *gemm.PackedB {
			buf := b.buf(w, "test")
			buf.packMu.Lock()
			defer buf.packMu.Unlock()
			return buf.packs[slot].packed
		}
		warm := func(what string) {
			t.Helper()
			product(what + ", first use")
			product(what + ", second use")
			first := packed()
			if first == nil {
				t.Fatalf("transB %v, %s: a weight used twice unchanged was not packed", tB, what)
			}
			product(what + ", third use")
			if packed() != first {
				t.Fatalf("transB %v, %s: an unchanged weight was packed again", tB, what)
			}
		}
		g := b.Alloc(wShape)
		b.Upload(g, randn(rng, wShape.Size()))
		mom, vel := b.Alloc(wShape), b.Alloc(wShape)
		step := 0
		writes := []struct {
			name  string
			write func()
		}{
			{"Upload", func() { b.Upload(w, randn(rng, wShape.Size())) }},
			{"AdamWStep", func() { step++; b.AdamWStep(w, g, mom, vel, 0.1, 0.9, 0.999, 1e-8, 0.01, step) }},
			{"SGDStep", func() { b.SGDStep(w, g, nil, 0.5, 0, 0, false, true) }},
			{"Axpby", func() { b.Axpby(w, 1, other, 0.5) }},
			{"Copy", func() { b.Copy(w, other) }},
			{"Unary", func() { b.Unary(core.Neg, w, w) }},
			{"Binary", func() { b.Binary(core.Add, w, other, g) }},
			{"Fill through a view", func() { b.Fill(w.Reshape(-1), 0.25) }},
			{"MatMul into it", func() {
				b.MatMul(w.Reshape(1, wShape.Size()), upload(b, core.Shape{1, 1}, []float32{2}), other.Reshape(1, wShape.Size()), false, false, 1, 0)
			}},
		}
		for _, wr := range writes {
			warm("before " + wr.name)
			wr.write()
			product("after " + wr.name)
			if packed() != nil {
				t.Fatalf("transB %v: the packed copy survived %s", tB, wr.name)
			}
		}
		// Released and handed out again: the same storage, other values.
		warm("before release")
		b.Release(w)
		w = b.Alloc(wShape)
		b.Upload(w, randn(rng, wShape.Size()))
		product("after release and reuse")
		// Another kernel packs with other panel widths.
		warm("before switching kernels")
		for _, name := range gemm.Kernels() {
			if err := gemm.SetKernel(name); err != nil {
				t.Fatal(err)
			}
			product("kernel " + name)
			product("kernel " + name + " again")
		}
		if err := gemm.SetKernel(saved); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMatMulPackedWeightsConcurrent multiplies by one weight from several goroutines
// at once, which the backend allows for tensors nobody writes: the first goroutines to
// see it packed race to pack it (run under -race).
func TestMatMulPackedWeightsConcurrent(t *testing.T) {
	if systemBLAS || gemm.Kernel() == "" {
		t.Skip("products go through gonum's blas32 (no gemm kernel on this CPU, or the openblas tag)")
	}
	const m, n, k = 23, 40, 31
	b := newBackend()
	rng := rand.New(rand.NewPCG(4, 4))
	wv := randn(rng, n*k)
	w := upload(b, core.Shape{n, k}, wv)
	xs := make([][]float32, 6)
	for i := range xs {
		xs[i] = randn(rng, m*k)
	}
	var wg sync.WaitGroup
	got := make([][]float32, len(xs))
	for g := range xs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := upload(b, core.Shape{m, k}, xs[g])
			dst := b.Alloc(core.Shape{m, n})
			for range 4 {
				b.MatMul(dst, x, w, false, true, 1, 0)
			}
			got[g] = download(b, dst)
		}()
	}
	wg.Wait()
	for g := range xs {
		want := refMatMul(xs[g], wv, make([]float32, m*n), 1, m, n, k, false, true, false, true, 1, 0)
		closeTo(t, fmt.Sprintf("goroutine %d", g), got[g], want, 1e-4, 1e-4)
	}
}

// TestPackCacheLimitFromEnv reads KADAPT_CPU_PACK_CACHE_MIB: a size in MiB, 0 turning
// the packed copies off; anything else keeps the default.
func TestPackCacheLimitFromEnv(t *testing.T) {
	const def = 2 << 30
	for _, tc := range []struct {
		env  string
		want int64
	}{
		{"", def}, {"0", 0}, {"512", 512 << 20}, {"-1", def}, {"lots", def}, {"1.5", def},
	} {
		if got := packCacheLimitFromEnv(tc.env, def); got != tc.want {
			t.Errorf("KADAPT_CPU_PACK_CACHE_MIB=%q: limit %d, want %d", tc.env, got, tc.want)
		}
	}
}
