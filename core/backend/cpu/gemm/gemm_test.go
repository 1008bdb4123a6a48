package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/kadapt/kadapt/core/testutil"
)

// shape is one test product; lda/ldb/ldc pad beyond the stored columns when extra > 0.
type shape struct {
	m, n, k     int
	tA, tB      bool
	alpha, beta float32
	batch       int
	extra       int
	shareB      bool
	// packB multiplies through PackB and SgemmPacked (B is then shared).
	packB bool
	// bias adds a random row to every row of C.
	bias bool
	// nanPad fills A's and B's padding columns with NaN and gives each a tail of NaN
	// beyond its last entry, which the in-place reads of small operands (serial) run
	// into at the matrix edge: none may reach C.
	nanPad bool
}

// check runs one product with the active kernel and compares it element by element
// with gonum's float64 blas64 on the same inputs, within float32's worst-case rounding
// for a k-term sum.
func check(t *testing.T, rng *rand.Rand, s shape) {
	t.Helper()
	if msg := checkQuiet(rng, s); msg != "" {
		t.Fatal(msg)
	}
}

// checkQuiet is check's comparison, returning the first mismatch instead of failing,
// for goroutines other than the test's.
func checkQuiet(rng *rand.Rand, s shape) string {
	batch := max(s.batch, 1)
	ar, ac := s.m, s.k
	if s.tA {
		ar, ac = s.k, s.m
	}
	br, bc := s.k, s.n
	if s.tB {
		br, bc = s.n, s.k
	}
	lda, ldb, ldc := ac+s.extra, bc+s.extra, s.n+s.extra
	sa, sb, sc := ar*lda+s.extra, br*ldb, s.m*ldc+s.extra
	if s.shareB || s.packB {
		sb = 0
	}
	a := randSlice(rng, (batch-1)*sa+ar*lda)
	b := randSlice(rng, (batch-1)*sb+br*ldb)
	if s.nanPad {
		a = nanPadded(a, ar, ac, lda, sa)
		b = nanPadded(b, br, bc, ldb, sb)
	}
	c := randSlice(rng, (batch-1)*sc+s.m*ldc)
	if s.beta == 0 {
		for i := range c {
			c[i] = float32(math.NaN()) // beta = 0 must not read C
		}
	}
	orig := append([]float32(nil), c...)
	var bias []float32
	if s.bias {
		bias = randSlice(rng, s.n)
	}
	if s.packB {
		pb := PackB(s.tB, s.k, s.n, b, ldb)
		// The packed copy must not depend on B afterwards.
		saved := append([]float32(nil), b...)
		clear(b)
		SgemmPacked(s.tA, s.m, s.alpha, a, lda, sa, pb, bias, s.beta, c, ldc, sc, batch)
		copy(b, saved)
	} else {
		SgemmStrided(s.tA, s.tB, s.m, s.n, s.k, s.alpha, a, lda, sa, b, ldb, sb, bias, s.beta, c, ldc, sc, batch)
	}

	ta, tb := blas.NoTrans, blas.NoTrans
	if s.tA {
		ta = blas.Trans
	}
	if s.tB {
		tb = blas.Trans
	}
	for e := 0; e < batch; e++ {
		ag := blas64.General{Rows: ar, Cols: ac, Stride: lda, Data: f64(a[e*sa : e*sa+ar*lda])}
		bg := blas64.General{Rows: br, Cols: bc, Stride: ldb, Data: f64(b[e*sb : e*sb+br*ldb])}
		absA := blas64.General{Rows: ar, Cols: ac, Stride: lda, Data: abs64(ag.Data)}
		absB := blas64.General{Rows: br, Cols: bc, Stride: ldb, Data: abs64(bg.Data)}
		want := blas64.General{Rows: s.m, Cols: s.n, Stride: ldc, Data: f64(orig[e*sc : e*sc+s.m*ldc])}
		if s.beta == 0 {
			clear(want.Data)
		}
		bound := blas64.General{Rows: s.m, Cols: s.n, Stride: ldc, Data: abs64(want.Data)}
		blas64.Gemm(ta, tb, float64(s.alpha), ag, bg, float64(s.beta), want)
		blas64.Gemm(ta, tb, math.Abs(float64(s.alpha)), absA, absB, math.Abs(float64(s.beta)), bound)
		for i := 0; bias != nil && i < s.m; i++ {
			for j, v := range bias {
				want.Data[i*ldc+j] += float64(v)
				bound.Data[i*ldc+j] += math.Abs(float64(v))
			}
		}
		for i := 0; i < s.m; i++ {
			for j := 0; j < ldc; j++ {
				got := c[e*sc+i*ldc+j]
				if j >= s.n {
					if o := orig[e*sc+i*ldc+j]; !(got == o || math.IsNaN(float64(got)) && math.IsNaN(float64(o))) {
						return fmt.Sprintf("%+v: batch %d C[%d][%d] beyond n was written: %v, held %v", s, e, i, j, got, o)
					}
					continue
				}
				w := want.Data[i*ldc+j]
				tol := 2*float64(s.k+2)*0x1p-24*bound.Data[i*ldc+j] + 1e-30
				if d := math.Abs(float64(got) - w); !(d <= tol) {
					return fmt.Sprintf("%+v: batch %d C[%d][%d] = %v, want %v (|diff| %.3g > %.3g)", s, e, i, j, got, w, d, tol)
				}
			}
		}
	}
	return ""
}

// nanPadded sets every element of s that is not one of the rows×cols entries of a
// batch entry (ld apart, entries stride apart) to NaN and appends 64 more.
func nanPadded(s []float32, rows, cols, ld, stride int) []float32 {
	nan := float32(math.NaN())
	for i := range s {
		off := i
		if stride > 0 {
			off = i % stride
		}
		if off/ld >= rows || off%ld >= cols {
			s[i] = nan
		}
	}
	for range 64 {
		s = append(s, nan)
	}
	return s
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func f64(s []float32) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

func abs64(s []float64) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = math.Abs(v)
	}
	return out
}

// forEachKernel runs f once per microkernel this CPU has, selected explicitly, so both
// the AVX-512 and the AVX2 paths are tested on a machine with AVX-512.
func forEachKernel(t *testing.T, f func(t *testing.T)) {
	if len(available) == 0 {
		t.Skip("no SIMD microkernel on this CPU; the backend uses gonum")
	}
	saved := active
	defer func() { active = saved }()
	for _, k := range available {
		active = k
		t.Run(k.name, f)
	}
}

// withBlocks shrinks the cache blocks so that small, fast products cross every block
// boundary, and sets GOMAXPROCS so that the parallel path runs.
func withBlocks(t *testing.T, k, m, n, procs int) {
	bk, bm, bn := blockK, blockM, blockN
	old := runtime.GOMAXPROCS(procs)
	blockK, blockM, blockN = k, m, n
	t.Cleanup(func() {
		blockK, blockM, blockN = bk, bm, bn
		runtime.GOMAXPROCS(old)
	})
}

func transposes() [][2]bool {
	return [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}
}

func TestSgemmSmallShapes(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		dims := []int{1, 2, 3, 5, 7, 13, 17, 31, 33, 47}
		for _, tr := range transposes() {
			for _, m := range dims {
				for _, n := range dims {
					k := dims[(m+n)%len(dims)]
					check(t, rng, shape{m: m, n: n, k: k, tA: tr[0], tB: tr[1], alpha: 1, beta: 0})
				}
			}
		}
	})
}

func TestSgemmAlphaBeta(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, ab := range [][2]float32{{1, 0}, {-0.5, 0}, {1, 1}, {2, -0.75}, {0, 0.5}, {0, 0}, {0.25, 1}} {
			for _, tr := range transposes() {
				check(t, rng, shape{m: 29, n: 37, k: 41, tA: tr[0], tB: tr[1], alpha: ab[0], beta: ab[1], extra: 3})
			}
		}
		// k = 0 is an empty sum: C = beta·C, and 0 for beta = 0 whatever C held.
		c := []float32{1, 2, float32(math.NaN()), 4}
		Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0.5, c, 2)
		if c[0] != 0.5 || c[1] != 1 || !math.IsNaN(float64(c[2])) || c[3] != 2 {
			t.Fatalf("k = 0, beta = 0.5: C = %v, want [0.5 1 NaN 2]", c)
		}
		Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
		if c[0] != 0 || c[1] != 0 || c[2] != 0 || c[3] != 0 {
			t.Fatalf("k = 0, beta = 0: C = %v, want zeros", c)
		}
	})
}

// TestSgemmAcrossBlocks crosses every block boundary (KC, MC, NC) on both the serial
// and the parallel path, with padded leading dimensions.
func TestSgemmAcrossBlocks(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		mr, nr := active.mr, active.nr
		for _, procs := range []int{1, 3} {
			t.Run(fmt.Sprintf("procs%d", procs), func(t *testing.T) {
				withBlocks(t, 24, 2*mr, 3*nr, procs)
				rng := rand.New(rand.NewPCG(5, 6))
				for _, tr := range transposes() {
					for _, s := range []shape{
						{m: 2*mr*3 + 1, n: 3*nr*2 + 5, k: 24*3 + 7},
						{m: 101, n: 97, k: 89},
						{m: 4*mr - 1, n: 7*nr + 1, k: 24},
						{m: 64, n: 64, k: 64, beta: 0.5, extra: 2},
						{m: 67, n: 131, k: 71, beta: 1, alpha: -1, extra: 1},
					} {
						s.tA, s.tB = tr[0], tr[1]
						if s.alpha == 0 {
							s.alpha = 1
						}
						check(t, rng, s)
					}
				}
			})
		}
	})
}

// TestSgemmRealBlocks runs products just above the production block sizes in k and m
// and across NC in n, on the parallel path.
func TestSgemmRealBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("large products")
	}
	forEachKernel(t, func(t *testing.T) {
		withBlocks(t, blockK, blockM, blockN, 2)
		rng := rand.New(rand.NewPCG(7, 8))
		check(t, rng, shape{m: blockM + 3, n: 2*active.nr + 3, k: blockK + 5, alpha: 1, beta: 0.5})
		check(t, rng, shape{m: 9, n: blockN + 17, k: 11, tB: true, alpha: 1})
		check(t, rng, shape{m: 2*blockM + 1, n: 129, k: 2*blockK + 1, tA: true, tB: true, alpha: 1})
	})
}

func TestSgemmBatched(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		for _, procs := range []int{1, 2} {
			withBlocks(t, blockK, blockM, blockN, procs)
			rng := rand.New(rand.NewPCG(9, 10))
			for _, tr := range transposes() {
				// Attention's products: many small ones, split across the batch.
				check(t, rng, shape{m: 50, n: 50, k: 64, tA: tr[0], tB: tr[1], alpha: 0.125, batch: 7})
				check(t, rng, shape{m: 50, n: 64, k: 50, tA: tr[0], tB: tr[1], alpha: 1, beta: 1, batch: 5, extra: 1})
				// Large entries, each parallel, and a shared B.
				check(t, rng, shape{m: 70, n: 90, k: 80, tA: tr[0], tB: tr[1], alpha: 1, batch: 3, shareB: true})
			}
		}
	})
}

// TestSgemmPacked runs products with a pre-packed B across every block boundary, on the
// serial, parallel and batch-parallel paths, and checks that a packed B gives exactly
// the bits that packing it on every product gives.
func TestSgemmPacked(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		mr, nr := active.mr, active.nr
		for _, procs := range []int{1, 3} {
			t.Run(fmt.Sprintf("procs%d", procs), func(t *testing.T) {
				withBlocks(t, 24, 2*mr, 3*nr, procs)
				rng := rand.New(rand.NewPCG(12, 13))
				for _, tr := range transposes() {
					for _, s := range []shape{
						{m: 2*mr*3 + 1, n: 3*nr*2 + 5, k: 24*3 + 7, alpha: 1},
						{m: 101, n: 97, k: 89, alpha: 0.5, beta: 1, extra: 3},
						{m: 1, n: 1, k: 1, alpha: 1},
						{m: 7, n: 3*nr + 1, k: 24, alpha: -1, beta: 0.25, batch: 5},
						{m: 67, n: 131, k: 71, alpha: 1, batch: 2},
					} {
						s.tA, s.tB, s.packB = tr[0], tr[1], true
						check(t, rng, s)
					}
				}
				m, n, k := 53, 4*nr+3, 61
				a, b := randSlice(rng, m*k), randSlice(rng, k*n)
				want, got := make([]float32, m*n), make([]float32, m*n)
				Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, want, n)
				SgemmPacked(false, m, 1, a, k, 0, PackB(true, k, n, b, k), nil, 0, got, n, 0, 1)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("C[%d] = %v with a packed B, %v without", i, got[i], want[i])
					}
				}
			})
		}
	})
}

// TestPackedBCurrent checks that a PackedB is refused once the kernel or the blocks it
// was packed for have changed.
func TestPackedBCurrent(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		pb := PackB(false, 3, 4, make([]float32, 12), 4)
		if !pb.Current() {
			t.Fatal("a fresh PackedB is not current")
		}
		withBlocks(t, 2*blockK, blockM, blockN, 1)
		if pb.Current() {
			t.Fatal("a PackedB is current after KC changed")
		}
		defer func() {
			if recover() == nil {
				t.Fatal("SgemmPacked accepted a stale PackedB")
			}
		}()
		SgemmPacked(false, 2, 1, make([]float32, 6), 3, 0, pb, nil, 0, make([]float32, 8), 4, 0, 1)
	})
}

// TestSgemmInPlace runs small products whose transposed A or plain B the serial path
// reads in place, with NaN in every padding column and past the end of each operand,
// which the kernel reads at the edge tiles: sizes around the kernel's tile, batched
// and single, with and without padding.
func TestSgemmInPlace(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		withBlocks(t, blockK, blockM, blockN, 1)
		rng := rand.New(rand.NewPCG(14, 15))
		mr, nr := active.mr, active.nr
		for _, tr := range transposes() {
			for _, s := range []shape{
				{m: 50, n: 64, k: 50, alpha: 1, batch: 4},
				{m: 50, n: 50, k: 64, alpha: 0.125, batch: 3, extra: 5},
				{m: mr + 1, n: nr - 1, k: 3, alpha: 1, beta: 1, extra: 1},
				{m: 2*mr - 1, n: 2*nr + 1, k: 37, alpha: -2, beta: 0.5, batch: 2, extra: 2},
				{m: 1, n: 1, k: 1, alpha: 1},
			} {
				s.tA, s.tB, s.nanPad = tr[0], tr[1], true
				check(t, rng, s)
			}
		}
	})
}

func TestSgemmChecksOperands(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("a too-short A did not panic")
			}
		}()
		Sgemm(false, false, 4, 4, 4, 1, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
	})
}

func TestSetKernel(t *testing.T) {
	saved := active
	defer func() { active = saved }()
	if err := SetKernel("none"); err != nil || Kernel() != "" {
		t.Fatalf("SetKernel(none) = %v, Kernel() = %q", err, Kernel())
	}
	if err := SetKernel("sse9"); err == nil {
		t.Fatal("SetKernel accepted an unknown kernel")
	}
}

// TestSgemmConcurrentCallers multiplies from several goroutines at once, parallel
// products and batch-parallel ones mixed, as training and a data loader's preprocessing
// (or two backends) may: the worker pool and the workspace free list are shared.
func TestSgemmConcurrentCallers(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		withBlocks(t, 32, 2*active.mr, 4*active.nr, 3)
		var wg sync.WaitGroup
		errs := make(chan string, 8)
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 11))
				for r := 0; r < 3; r++ {
					s := shape{m: 90 + g, n: 130 + 7*g, k: 100, alpha: 1, tB: g%2 == 0}
					if g%3 == 0 {
						s = shape{m: 20, n: 24, k: 16, alpha: 1, batch: 40}
					}
					if msg := checkQuiet(rng, s); msg != "" {
						errs <- msg
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for msg := range errs {
			t.Error(msg)
		}
	})
}

// TestSgemmBias adds a bias row on every path (serial, parallel, batch-parallel,
// packed B) against gonum, and checks the documented equivalence bit for bit: the
// product with a bias equals C = beta·C + bias first, then the product with beta = 1.
func TestSgemmBias(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		mr, nr := active.mr, active.nr
		for _, procs := range []int{1, 3} {
			t.Run(fmt.Sprintf("procs%d", procs), func(t *testing.T) {
				withBlocks(t, 24, 2*mr, 3*nr, procs)
				rng := rand.New(rand.NewPCG(14, 15))
				for _, tr := range transposes() {
					for _, s := range []shape{
						{m: 2*mr*3 + 1, n: 3*nr*2 + 5, k: 24*3 + 7, alpha: 1},
						{m: 101, n: 97, k: 89, alpha: 0.5, beta: 1, extra: 3},
						{m: 29, n: 37, k: 41, alpha: -1, beta: 0.75, extra: 1},
						{m: 50, n: 50, k: 64, alpha: 0.125, batch: 7},
						{m: 70, n: 90, k: 80, alpha: 1, batch: 3, shareB: true},
						{m: 7, n: 3*nr + 1, k: 24, alpha: -1, beta: 0.25, batch: 5, packB: true},
						{m: 67, n: 131, k: 71, alpha: 1, packB: true},
						{m: 5, n: 9, k: 3, alpha: 0, beta: 0.5},
					} {
						s.tA, s.tB, s.bias = tr[0], tr[1], true
						check(t, rng, s)
					}
				}
				m, n, k := 2*mr*3+5, 3*nr*2+7, 24*3+1
				a, b, bias := randSlice(rng, m*k), randSlice(rng, k*n), randSlice(rng, n)
				for _, beta := range []float32{0, 1, -0.5} {
					c0 := randSlice(rng, m*n)
					want := append([]float32(nil), c0...)
					for i := 0; i < m; i++ {
						for j, v := range bias {
							if beta == 0 {
								want[i*n+j] = v
							} else {
								want[i*n+j] = beta*want[i*n+j] + v
							}
						}
					}
					Sgemm(false, true, m, n, k, 1.5, a, k, b, k, 1, want, n)
					got := append([]float32(nil), c0...)
					SgemmStrided(false, true, m, n, k, 1.5, a, k, 0, b, k, 0, bias, beta, got, n, 0, 1)
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("beta %v: C[%d] = %v with the bias in the product, %v added first", beta, i, got[i], want[i])
						}
					}
				}
			})
		}
		// k = 0: only beta·C + bias remains.
		c := []float32{1, 2, 3, 4}
		SgemmStrided(false, false, 2, 2, 0, 1, nil, 1, 0, nil, 2, 0, []float32{10, 20}, 0.5, c, 2, 0, 1)
		if c[0] != 10.5 || c[1] != 21 || c[2] != 11.5 || c[3] != 22 {
			t.Fatalf("k = 0 with a bias: C = %v, want [10.5 21 11.5 22]", c)
		}
	})
}

// TestSgemmSideBySide writes a batch whose entries lie side by side within C's rows
// (attention's heads: d columns each in rows of H·d), against one Sgemm per entry, and
// checks that entries that would overlap are still refused.
func TestSgemmSideBySide(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(16, 17))
		const batch, m, n, k = 3, 9, 5, 7
		ldc := batch*n + 2
		for _, procs := range []int{1, 3} {
			withBlocks(t, blockK, blockM, blockN, procs)
			a, b := randSlice(rng, batch*m*k), randSlice(rng, batch*k*n)
			c0 := randSlice(rng, m*ldc)
			got := append([]float32(nil), c0...)
			SgemmStrided(false, false, m, n, k, 1, a, k, m*k, b, n, k*n, nil, 0.5, got, ldc, n, batch)
			want := append([]float32(nil), c0...)
			for e := 0; e < batch; e++ {
				Sgemm(false, false, m, n, k, 1, a[e*m*k:], k, b[e*k*n:], n, 0.5, want[e*n:], ldc)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("procs %d: C[%d] = %v, want %v", procs, i, got[i], want[i])
				}
			}
		}
		c := make([]float32, m*ldc)
		a, b := make([]float32, batch*m*k), make([]float32, batch*k*n)
		testutil.MustPanic(t, "overlaps", func() {
			SgemmStrided(false, false, m, n, k, 1, a, k, m*k, b, n, k*n, nil, 0, c, ldc, n-1, batch)
		})

		// Two groups of those rows, one below the other, through SgemmGrouped: each
		// group's B shared by its entries (stride 0), A's entries stacked.
		const groups = 2
		for _, procs := range []int{1, 3} {
			withBlocks(t, blockK, blockM, blockN, procs)
			a, b := randSlice(rng, groups*batch*m*k), randSlice(rng, groups*k*n)
			c0 := randSlice(rng, groups*m*ldc)
			got := append([]float32(nil), c0...)
			SgemmGrouped(false, false, m, n, k, -1, a, k, m*k, batch*m*k, b, n, 0, k*n, 1, got, ldc, n, m*ldc, batch, groups)
			want := append([]float32(nil), c0...)
			for g := 0; g < groups; g++ {
				for e := 0; e < batch; e++ {
					Sgemm(false, false, m, n, k, -1, a[(g*batch+e)*m*k:], k, b[g*k*n:], n, 1, want[g*m*ldc+e*n:], ldc)
				}
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("grouped, procs %d: C[%d] = %v, want %v", procs, i, got[i], want[i])
				}
			}
		}
		testutil.MustPanic(t, "group stride", func() {
			SgemmGrouped(false, false, m, n, k, 1, a, k, 0, 0, b, n, 0, 0, 0, make([]float32, groups*m*ldc), ldc, n, (m-1)*ldc, batch, groups)
		})
	})
}
