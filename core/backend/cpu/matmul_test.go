package cpu

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
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
