//go:build cuda

package cuda

// Tests on a real GPU. Each one skips, with the reason, where Probe finds no driver
// or device: most machines that compile this package have neither, and the binary
// itself starts anywhere because the CUDA libraries are opened with dlopen.
//
// Run with -test.v, the binary re-runs itself as a child and closes with a line
// "N passed, N failed, N skipped" counting every test and subtest (see TestMain), which
// is what core/backend/cuda/gpucheck.sh's command prints last on the GPU machine.

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/backendtest"
	"github.com/kadapt/kadapt/core/testutil"
)

const childEnv = "KADAPT_CUDA_TEST_CHILD"

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Verbose() || os.Getenv(childEnv) != "" {
		os.Exit(m.Run())
	}
	os.Exit(runCounted())
}

var resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): `)

// runCounted runs this test binary again with the same flags, passes its output
// through and appends the tally; the exit status is the child's.
func runCounted() int {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "cuda tests: starting the child run:", err)
		return 2
	}
	counts := map[string]int{}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Println(line)
			if m := resultLine.FindStringSubmatch(line); m != nil {
				counts[m[1]]++
			}
		}
		io.Copy(io.Discard, pr)
		close(done)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	fmt.Printf("%d passed, %d failed, %d skipped\n", counts["PASS"], counts["FAIL"], counts["SKIP"])
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 2
	}
	return 0
}

var (
	gpuOnce sync.Once
	gpuB    *Backend
	gpuErr  error
)

// gpu returns the shared float32 backend on device 0, or skips. The kernels are
// compiled once per process, so the tests share one backend.
func gpu(t *testing.T) *Backend {
	t.Helper()
	gpuOnce.Do(func() {
		if _, gpuErr = Probe(); gpuErr == nil {
			gpuB, gpuErr = Open("cuda:0")
		}
	})
	if gpuErr != nil {
		if strings.Contains(gpuErr.Error(), "compiling kernels") || strings.Contains(gpuErr.Error(), "loading the kernels") {
			t.Fatalf("a GPU is present but the backend did not open: %v", gpuErr)
		}
		t.Skipf("no usable GPU: %v", gpuErr)
	}
	return gpuB
}

// onEach runs fn as a subtest on the GPU and on the kernel emulator (emu_test.go),
// each skipping where it is unavailable: the emulator runs the same kernel sources on
// the CPU, so these checks mean something on machines without a GPU too.
func onEach(t *testing.T, fn func(t *testing.T, b *Backend)) {
	t.Run("gpu", func(t *testing.T) { fn(t, gpu(t)) })
	t.Run("emu", func(t *testing.T) { fn(t, newEmu(t, 132)) })
}

// TestProbeNeverExits calls Probe directly: on a machine without CUDA it must return
// an error naming what is missing, not end the process as gorgonia.org/cu's init does.
func TestProbeNeverExits(t *testing.T) {
	n, err := Probe()
	if err != nil {
		if !strings.HasPrefix(err.Error(), "cuda: ") {
			t.Fatalf("Probe's error %q does not say where it comes from", err)
		}
		t.Skipf("no GPU here (%v), and the process is still running", err)
	}
	if n < 1 {
		t.Fatalf("Probe found %d devices without an error", n)
	}
}

// TestConformance runs the shared suite: every Backend method against the float64
// reference backend on odd sizes, broadcasts, accumulate paths and large cases.
func TestConformance(t *testing.T) {
	b := gpu(t)
	backendtest.Run(t, func() core.Backend { return b }, backendtest.DefaultTolerances())
}

// openGPU opens a second backend on the GPU with the device options of spec, closed
// when the test ends.
func openGPU(t *testing.T, spec string) *Backend {
	t.Helper()
	gpu(t)
	b, err := Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestConformancePrecisions reruns the suite with TF32 and with bf16 autocast
// products, under the suite's tolerances for each (only MatMul loosens).
func TestConformancePrecisions(t *testing.T) {
	for _, c := range []struct {
		spec string
		tol  backendtest.Tolerances
	}{{"cuda:0?precision=tf32", backendtest.TF32Tolerances()}, {"cuda:0?precision=bf16", backendtest.BF16Tolerances()}} {
		t.Run(c.spec, func(t *testing.T) {
			b := openGPU(t, c.spec)
			backendtest.Run(t, func() core.Backend { return b }, c.tol)
		})
	}
}

// TestBF16Products holds bf16 autocast to the exact product of the rounded inputs.
func TestBF16Products(t *testing.T) {
	checkBF16Products(t, openGPU(t, "cuda:0?precision=bf16"), 2e-6)
}

func TestOpenThroughRegistry(t *testing.T) {
	gpu(t)
	b, err := core.OpenBackend("cuda:0")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "cuda:0" {
		t.Errorf("name %q, want cuda:0", b.Name())
	}
	b.(*Backend).Close()
	nb, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.(*Backend).Close(); err != nil {
		t.Fatal(err)
	}
	if err := nb.Sync(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Sync after Close: %v, want an error saying the backend was closed", err)
	}
	if _, err := core.OpenBackend("cuda:4096"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("cuda:4096 opened or failed unclearly: %v", err)
	}
}

func randF32(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.Float64()*2 - 1)
	}
	return v
}

// TestLargeReductions covers the split paths the conformance shapes are too small
// to reach: long rows, tall columns and bias-gradient shapes, against float64 sums.
func TestLargeReductions(t *testing.T) {
	onEach(t, func(t *testing.T, b *Backend) {
		rng := rand.New(rand.NewPCG(7, 7))
		for _, c := range []struct{ xs, ds core.Shape }{
			{core.Shape{1 << 20}, core.Shape{1}},
			{core.Shape{3, 300000}, core.Shape{3, 1}},
			{core.Shape{12800, 768}, core.Shape{1, 768}},
			{core.Shape{8, 50, 768}, core.Shape{8, 1, 768}},
			{core.Shape{4, 4096, 3}, core.Shape{1, 4096, 1}},
		} {
			for _, acc := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v->%v/accumulate=%v", c.xs, c.ds, acc), func(t *testing.T) {
					xv := randF32(rng, c.xs.Size())
					x := testutil.Upload(b, c.xs, xv)
					d0 := randF32(rng, c.ds.Size())
					d := testutil.Upload(b, c.ds, d0)
					defer b.Release(x)
					defer b.Release(d)
					b.Reduce(core.ReduceSum, d, x, acc)
					xd := make([]float64, len(xv))
					for i, v := range xv {
						xd[i] = float64(v)
					}
					want := refReduce(c.xs, c.ds, xd, core.ReduceSum)
					got := testutil.Download(b, d)
					n := float64(c.xs.Size() / c.ds.Size())
					for i := range want {
						if acc {
							want[i] += float64(d0[i])
						}
						if d := math.Abs(float64(got[i]) - want[i]); d > 1e-5*math.Sqrt(n)+1e-5*math.Abs(want[i]) {
							t.Fatalf("output %d: %v, want %v", i, got[i], want[i])
						}
					}
					b.Reduce(core.ReduceMax, d, x, false)
					wantMax := refReduce(c.xs, c.ds, xd, core.ReduceMax)
					for i, v := range testutil.Download(b, d) {
						if float64(v) != wantMax[i] {
							t.Fatalf("max %d: %v, want %v", i, v, wantMax[i])
						}
					}
				})
			}
		}
	})
}

// TestBadIndexIsReported checks that an out-of-range Gather index surfaces at Sync
// with the op's name and leaves the context usable.
func TestBadIndexIsReported(t *testing.T) {
	onEach(t, func(t *testing.T, b *Backend) {
		x := testutil.Upload(b, core.Shape{4, 3}, make([]float32, 12))
		idx := testutil.Upload(b, core.Shape{2}, []float32{1, 7})
		d := b.Alloc(core.Shape{2, 3})
		b.Gather(d, x, idx, 0)
		if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "Gather") {
			t.Fatalf("Sync after a bad Gather index: %v", err)
		}
		if err := b.Sync(); err != nil {
			t.Fatalf("the error was reported twice: %v", err)
		}
		b.Fill(d, 2.5)
		if v := testutil.Download(b, d); v[5] != 2.5 {
			t.Fatalf("after the bad index, Fill gives %v", v)
		}
		labels := testutil.Upload(b, core.Shape{2}, []float32{0, 3})
		logits := b.Alloc(core.Shape{2, 3})
		loss := b.Alloc(core.Shape{1})
		b.CrossEntropy(loss, nil, logits, labels, 0)
		if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "CrossEntropy") {
			t.Fatalf("Sync after a bad label: %v", err)
		}
		for _, x := range []*core.Tensor{x, idx, d, labels, logits, loss} {
			b.Release(x)
		}
	})
}

// TestDropoutMaskIsTheCPUs compares a 2¹⁸-element mask with core.DropoutUniform directly.
func TestDropoutMaskIsTheCPUs(t *testing.T) {
	onEach(t, func(t *testing.T, b *Backend) {
		const n, p, seed = 1<<18 + 3, float32(0.1), uint64(0xdeadbeefcafe)
		x := testutil.Upload(b, core.Shape{n}, make([]float32, n))
		mask, d := b.Alloc(core.Shape{n}), b.Alloc(core.Shape{n})
		b.Dropout(d, mask, x, p, seed)
		got := testutil.Download(b, mask)
		scale := 1 / (1 - p)
		for i, m := range got {
			want := float32(0)
			if core.DropoutUniform(seed, i) >= p {
				want = scale
			}
			if m != want {
				t.Fatalf("mask element %d is %v, the CPU's is %v", i, m, want)
			}
		}
		for _, x := range []*core.Tensor{x, mask, d} {
			b.Release(x)
		}
	})
}

// TestKronSumAgainstGonum runs autograd's Σ A_i⊗B_i (MatMul + Permute on the GPU)
// against gonum's Kronecker products.
func TestKronSumAgainstGonum(t *testing.T) {
	onEach(t, func(t *testing.T, b *Backend) {
		rng := rand.New(rand.NewPCG(1, 2))
		n, p, q, r, s := 3, 5, 2, 3, 7
		av, bv := randF32(rng, n*p*q), randF32(rng, n*r*s)
		tp := autograd.NewTape(b)
		tp.SetGradEnabled(false)
		defer tp.Reset()
		got := testutil.Download(b, tp.KronSum(tp.Input(av, n, p, q), tp.Input(bv, n, r, s)).Value)
		want := mat.NewDense(p*r, q*s, nil)
		for i := 0; i < n; i++ {
			A, B := mat.NewDense(p, q, nil), mat.NewDense(r, s, nil)
			for j := 0; j < p*q; j++ {
				A.Set(j/q, j%q, float64(av[i*p*q+j]))
			}
			for j := 0; j < r*s; j++ {
				B.Set(j/s, j%s, float64(bv[i*r*s+j]))
			}
			var k mat.Dense
			k.Kronecker(A, B)
			want.Add(want, &k)
		}
		for i := range got {
			if d := math.Abs(float64(got[i]) - want.At(i/(q*s), i%(q*s))); d > 1e-5 {
				t.Fatalf("element %d differs from gonum by %.3g", i, d)
			}
		}
	})
}

// blockStep runs one transformer-block training step (forward, backward) on be and
// returns the parameter gradients.
func blockStep(be core.Backend) []float32 {
	rng := rand.New(rand.NewPCG(3, 4))
	param := func(name string, shape ...int) *autograd.Var {
		p := autograd.NewParam(be, name, core.Shape(shape))
		d := make([]float32, p.Value.Size())
		for i := range d {
			d[i] = float32(rng.NormFloat64() * 0.1)
		}
		be.Upload(p.Value, d)
		return p
	}
	w1, w2, head := param("w1", 64, 32), param("w2", 32, 64), param("head", 5, 32)
	x := make([]float32, 8*10*32)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := testutil.Upload(be, core.Shape{8}, []float32{0, 1, 2, 3, 4, 0, 1, 2})
	tp := autograd.NewTape(be)
	in := tp.Input(x, 8, 10, 32)
	h := tp.LayerNorm(in, nil, nil, 1e-5)
	q := tp.Permute(tp.Reshape(h, 8, 10, 2, 16), 0, 2, 1, 3)
	att := tp.Reshape(tp.Permute(tp.Attention(q, q, q, false, 0.25), 0, 2, 1, 3), 8, 10, 32)
	y := tp.Add(in, tp.Linear(tp.QuickGELU(tp.Linear(att, w1, nil)), w2, nil))
	logits := tp.Linear(tp.Mean(y, []int{1}, false), head, nil)
	tp.Backward(tp.CrossEntropy(logits, labels, 0.1))
	var out []float32
	for _, p := range []*autograd.Var{w1, w2, head} {
		out = append(out, testutil.Download(be, p.Grad)...)
		be.Release(p.Value)
		be.Release(p.Grad)
	}
	tp.Reset()
	be.Release(labels)
	return out
}

// TestTrainingStepMatchesCPU compares a whole block's gradients with the CPU's.
func TestTrainingStepMatchesCPU(t *testing.T) {
	onEach(t, func(t *testing.T, g *Backend) {
		want, got := blockStep(cpu.New()), blockStep(g)
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
				t.Fatalf("gradient %d: GPU %v, CPU %v", i, got[i], want[i])
			}
		}
	})
}

// TestSteadyStateAllocatesNothing repeats the training step: after the first, the
// caching allocator must serve every Alloc from its free lists.
func TestSteadyStateAllocatesNothing(t *testing.T) {
	onEach(t, func(t *testing.T, b *Backend) {
		blockStep(b)
		b.mu.Lock()
		before := b.mallocs
		b.mu.Unlock()
		for range 3 {
			blockStep(b)
		}
		b.mu.Lock()
		after := b.mallocs
		b.mu.Unlock()
		if after != before {
			t.Fatalf("three repeated steps made %d device allocations", after-before)
		}
		if err := b.Sync(); err != nil {
			t.Fatal(err)
		}
	})
}
