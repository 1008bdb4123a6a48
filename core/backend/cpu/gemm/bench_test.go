package gemm

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// contender is one implementation of a strided-batched product.
type contender struct {
	name string
	run  func(tA, tB bool, m, n, k int, a, b, c []float32, batch int)
	// unbatched contenders only take single products.
	unbatched bool
}

func blasContender(name string, impl blas.Float32Level3) contender {
	return contender{name: name, run: func(tA, tB bool, m, n, k int, a, b, c []float32, batch int) {
		ta, tb := blas.NoTrans, blas.NoTrans
		lda, ldb := k, n
		if tA {
			ta, lda = blas.Trans, m
		}
		if tB {
			tb, ldb = blas.Trans, k
		}
		for i := 0; i < batch; i++ {
			impl.Sgemm(ta, tb, m, n, k, 1, a[i*m*k:], lda, b[i*k*n:], ldb, 0, c[i*m*n:], n)
		}
	}}
}

// contenders are this package's kernels, gonum's pure-Go Sgemm and, in a build with
// -tags openblas, OpenBLAS (openblas_bench_test.go); KADAPT_BENCH_GEMM=name,name keeps
// only those, in that order. Two-thread comparisons need it: OpenBLAS's worker
// thread spins for a while after each of its products and takes the second core from
// whatever runs next in the same process, so tools/bench/gemm.sh times each
// contender in a process of its own.
func contenders() []contender {
	all := allContenders()
	only := os.Getenv("KADAPT_BENCH_GEMM")
	if only == "" {
		return all
	}
	var cs []contender
	for _, name := range strings.Split(only, ",") {
		for _, c := range all {
			if c.name == name {
				cs = append(cs, c)
			}
		}
	}
	return cs
}

func allContenders() []contender {
	var cs []contender
	for _, k := range available {
		k := k
		cs = append(cs, contender{name: "kadapt-" + k.name, run: func(tA, tB bool, m, n, k2 int, a, b, c []float32, batch int) {
			saved := active
			active = k
			lda, ldb := k2, n
			if tA {
				lda = m
			}
			if tB {
				ldb = k2
			}
			SgemmStrided(tA, tB, m, n, k2, 1, a, lda, m*k2, b, ldb, k2*n, nil, 0, c, n, m*n, batch)
			active = saved
		}})
	}
	if len(available) > 0 {
		// The first kernel with B packed once, as the CPU backend serves a frozen weight:
		// the difference to the plain kernel is what packing B costs per product.
		k := available[0]
		var pb *PackedB
		cs = append(cs, contender{name: "kadapt-" + k.name + "-packedB", unbatched: true, run: func(tA, tB bool, m, n, k2 int, a, b, c []float32, batch int) {
			saved := active
			active = k
			if pb == nil || !pb.Current() {
				ldb := n
				if tB {
					ldb = k2
				}
				pb = PackB(tB, k2, n, b, ldb)
			}
			lda := k2
			if tA {
				lda = m
			}
			SgemmPacked(tA, m, 1, a, lda, 0, pb, nil, 0, c, n, 0, 1)
			active = saved
		}})
	}
	cs = append(cs, blasContender("gonum", gonum.Implementation{}))
	if openBLAS != nil {
		cs = append(cs, blasContender("openblas", openBLAS))
	}
	return cs
}

// openBLAS is set by openblas_bench_test.go under -tags openblas.
var openBLAS blas.Float32Level3

var _ = blas32.Use // blas32 is the backend's route to the same implementations

// BenchmarkViTB32 times the products of a ViT-B/32 training step at batch 8 (400
// tokens; attention as 96 heads×images of 50×64) and the batch-256 qkv product,
// alternating the contenders within each iteration so that a shared machine's load
// hits them alike, and reports each one's GFLOP/s and the first kernel's speedup over
// the others in wall time and, on one thread, in CPU time.
// warmUp is how long BenchmarkViTB32 runs its contenders before timing them.
const warmUp = 200 * time.Millisecond

func BenchmarkViTB32(b *testing.B) {
	shapes := []struct {
		name    string
		m, n, k int
		tA, tB  bool
		batch   int
	}{
		{"qkv-fwd_400x768x768_NT", 400, 768, 768, false, true, 1},
		{"fc1-fwd_400x3072x768_NT", 400, 3072, 768, false, true, 1},
		{"fc2-fwd_400x768x3072_NT", 400, 768, 3072, false, true, 1},
		{"fc1-dx_400x768x3072_NN", 400, 768, 3072, false, false, 1},
		{"qkv-dw_768x768x400_TN", 768, 768, 400, true, false, 1},
		{"attn-scores_96x50x50x64_NT", 50, 50, 64, false, true, 96},
		{"attn-values_96x50x64x50_NN", 50, 64, 50, false, false, 96},
		{"qkv-fwd-b256_12800x768x768_NT", 12800, 768, 768, false, true, 1},
	}
	for _, s := range shapes {
		for _, procs := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads%d", s.name, procs), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				rng := rand.New(rand.NewPCG(1, 2))
				a := randSlice(rng, s.batch*s.m*s.k)
				bb := randSlice(rng, s.batch*s.k*s.n)
				c := make([]float32, s.batch*s.m*s.n)
				var cs []contender
				for _, c := range contenders() {
					if s.batch == 1 || !c.unbatched {
						cs = append(cs, c)
					}
				}
				if len(cs) == 0 {
					b.Skipf("KADAPT_BENCH_GEMM=%s names no contender this build has", os.Getenv("KADAPT_BENCH_GEMM"))
				}
				spent := make([]time.Duration, len(cs))
				cpuSpent := make([]time.Duration, len(cs))
				// Warm up (pools, pages, worker threads) for at least warmUp: a process's
				// first ~0.1 s of two-thread products ran at up to half speed, whichever
				// shape came first (docs/performance.md), which a single call did not cover.
				for start := time.Now(); ; {
					for _, ct := range cs {
						ct.run(s.tA, s.tB, s.m, s.n, s.k, a, bb, c, s.batch)
					}
					if time.Since(start) >= warmUp {
						break
					}
				}
				b.ResetTimer()
				for b.Loop() {
					for i, ct := range cs {
						t0, c0 := time.Now(), processCPUTime()
						ct.run(s.tA, s.tB, s.m, s.n, s.k, a, bb, c, s.batch)
						spent[i] += time.Since(t0)
						cpuSpent[i] += processCPUTime() - c0
					}
				}
				flops := 2 * float64(s.batch*s.m*s.n*s.k) * float64(b.N)
				for i, ct := range cs {
					b.ReportMetric(flops/float64(spent[i].Nanoseconds()), "GFLOP/s-"+ct.name)
					if i > 0 {
						b.ReportMetric(float64(spent[i])/float64(spent[0]), cs[0].name+"-speedup-vs-"+ct.name)
					}
					if procs == 1 && cpuSpent[0] > 0 && i > 0 {
						// One thread each (OPENBLAS_NUM_THREADS=1 for OpenBLAS): CPU time
						// compares the work itself, whatever else the machine ran.
						b.ReportMetric(float64(cpuSpent[i])/float64(cpuSpent[0]), cs[0].name+"-cputime-speedup-vs-"+ct.name)
					}
				}
			})
		}
	}
}
