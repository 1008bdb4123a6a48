package cpu

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/testutil"
)

// The shared test helpers (core/testutil) under the names this package's tests use.
var (
	upload      = testutil.Upload
	download    = testutil.Download
	randn       = testutil.Randn
	closeTo     = testutil.AllClose[float32, float64]
	expectPanic = testutil.MustPanic
)

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func TestSizeClass(t *testing.T) {
	prevCap := 0
	prevClass := -1
	for n := 0; n < 1<<16; n++ {
		class, capacity := sizeClass(n)
		if capacity < n {
			t.Fatalf("sizeClass(%d) capacity %d is too small", n, capacity)
		}
		if n > smallestClass && float64(capacity) > float64(n)*(1+1.0/classesPerOctave) {
			t.Fatalf("sizeClass(%d) capacity %d wastes more than 1/%d", n, capacity, classesPerOctave)
		}
		// Classes are numbered densely in increasing capacity.
		switch {
		case class == prevClass && capacity != prevCap:
			t.Fatalf("sizeClass(%d) class %d has capacity %d, earlier %d", n, class, capacity, prevCap)
		case class != prevClass && (class != prevClass+1 || capacity <= prevCap):
			t.Fatalf("sizeClass(%d) = class %d capacity %d after class %d capacity %d", n, class, capacity, prevClass, prevCap)
		}
		prevClass, prevCap = class, capacity
	}
	for _, n := range []int{1 << 20, 12800 * 3072, maxElements} {
		class, capacity := sizeClass(n)
		if class >= numClasses || capacity < n {
			t.Fatalf("sizeClass(%d) = %d, %d", n, class, capacity)
		}
	}
}

func TestPoolReuseAndZeroing(t *testing.T) {
	b := newBackend()
	x := b.Alloc(core.Shape{3, 5})
	b.Fill(x, 7)
	buf := x.Storage()
	b.Release(x)
	if got := b.PooledBytes(); got != 4*buf.Len() {
		t.Fatalf("PooledBytes = %d after one release, want %d", got, 4*buf.Len())
	}
	// 16 elements share 15's size class and must come back zeroed.
	y := b.Alloc(core.Shape{16})
	if y.Storage() != buf {
		t.Fatal("Alloc of the same size class did not reuse the released buffer")
	}
	for i, v := range download(b, y) {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed: element %d = %v", i, v)
		}
	}
	expectPanic(t, "already released", func() {
		v := y.Reshape(4, 4)
		b.Release(y)
		b.Release(v)
	})
	b.Trim()
	if b.PooledBytes() != 0 {
		t.Fatalf("PooledBytes = %d after Trim", b.PooledBytes())
	}
}

func TestBadInputPanicsClearly(t *testing.T) {
	b := newBackend()
	x := b.Alloc(core.Shape{2, 3})
	expectPanic(t, "6 elements", func() { b.Upload(x, make([]float32, 5)) })
	expectPanic(t, "negative dimension", func() { b.Alloc(core.Shape{2, -1}) })
	expectPanic(t, "more than", func() { b.Alloc(core.Shape{1 << 30, 1 << 30, 1 << 30}) })
	idx := upload(b, core.Shape{2}, []float32{1, 3})
	dst := b.Alloc(core.Shape{2, 3})
	expectPanic(t, "index 3 at position 1", func() { b.Gather(dst, x, idx, 0) })
	b.Upload(idx, []float32{0.5, 1})
	expectPanic(t, "index 0.5 at position 0", func() { b.Gather(dst, x, idx, 0) })
	labels := upload(b, core.Shape{2}, []float32{0, float32(math.NaN())})
	loss := b.Alloc(core.Shape{1})
	expectPanic(t, "CrossEntropy labels: index NaN at position 1", func() { b.CrossEntropy(loss, nil, x, labels, 0) })
	foreign := core.NewTensor(b, fakeStorage(6), core.Shape{6}, core.Float32)
	expectPanic(t, "not allocated by a cpu backend", func() { b.Fill(foreign, 1) })
	expectPanic(t, "do not broadcast", func() {
		b.Binary(core.Add, b.Alloc(core.Shape{2, 3}), x, b.Alloc(core.Shape{2}))
	})
}

type fakeStorage int

func (f fakeStorage) Len() int { return int(f) }

// TestSteadyStateAllocations is the pool's contract: once a training step's shapes have
// been seen, repeating Alloc / ops / Release allocates no tensor storage. The only heap
// allocations left are the *core.Tensor handles and their shape copies.
func TestSteadyStateAllocations(t *testing.T) {
	b := newBackend()
	const rows, cols = 64, 96 // 6144 elements per tensor: every op runs serially
	x := upload(b, core.Shape{rows, cols}, randn(rand.New(rand.NewPCG(1, 2)), rows*cols))
	w := upload(b, core.Shape{cols, cols}, randn(rand.New(rand.NewPCG(3, 4)), cols*cols))
	bias := b.Alloc(core.Shape{cols})
	gamma, beta := b.Alloc(core.Shape{cols}), b.Alloc(core.Shape{cols})
	b.Fill(gamma, 1)
	shape := core.Shape{rows, cols}
	colShape := core.Shape{1, cols}
	rowShape := core.Shape{rows}
	transShape := core.Shape{cols, rows}
	perm := []int{1, 0}
	step := func() {
		h := b.Alloc(shape)
		b.MatMul(h, x, w, false, true, 1, 0)
		b.Binary(core.Add, h, h, bias)
		b.Unary(core.GELU, h, h)
		mean, rstd := b.Alloc(rowShape), b.Alloc(rowShape)
		y := b.Alloc(shape)
		b.LayerNorm(y, mean, rstd, h, gamma, beta, 1e-5)
		s := b.Alloc(shape)
		b.Softmax(s, y)
		col := b.Alloc(colShape)
		b.Reduce(core.ReduceSum, col, s, false)
		p := b.Alloc(transShape)
		b.Permute(p, s, perm)
		for _, t := range []*core.Tensor{h, mean, rstd, y, s, col, p} {
			b.Release(t)
		}
	}
	step() // warm the pool
	const handles = 7
	allocs := testing.AllocsPerRun(20, step)
	// Each Alloc makes a Tensor and a shape copy inside core.NewTensor.
	if allocs > 2*handles {
		t.Errorf("steady-state step makes %.0f allocations, want at most %d (tensor handles only)", allocs, 2*handles)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const steps = 20
	for range steps {
		step()
	}
	runtime.ReadMemStats(&after)
	perStep := float64(after.TotalAlloc-before.TotalAlloc) / steps
	storage := float64(4 * (4*rows*cols + 2*rows + cols + cols*rows))
	if perStep > 2048 {
		t.Errorf("steady-state step allocates %.0f bytes, want only handle-sized allocations (tensor storage is %.0f bytes)", perStep, storage)
	}
}

// TestLargeOpsAllocateLittle checks that the parallel path's bookkeeping (goroutines,
// closures) stays tiny compared with the tensors it processes.
func TestLargeOpsAllocateLittle(t *testing.T) {
	b := newBackend()
	const n = 1 << 18
	x := upload(b, core.Shape{256, n / 256}, randn(rand.New(rand.NewPCG(5, 6)), n))
	step := func() {
		y := b.Alloc(x.Shape())
		b.Unary(core.Exp, y, x)
		b.Binary(core.Mul, y, y, x)
		z := b.Alloc(x.Shape())
		b.Softmax(z, y)
		b.Release(y)
		b.Release(z)
	}
	step()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		step()
	}
	runtime.ReadMemStats(&after)
	if perStep := (after.TotalAlloc - before.TotalAlloc) / 10; perStep > 4096 {
		t.Errorf("large step allocates %d bytes, want well under the %d bytes of one tensor", perStep, 4*n)
	}
}

// TestRegistered opens the backend by name; errors name the device string.
func TestRegistered(t *testing.T) {
	for _, c := range []struct{ device, err string }{
		{"cpu", ""},
		{"cpu:0", ""},
		{"cpu:3", `device "cpu:3": the cpu backend has a single device, "cpu"`},
		{"cpu?attention=composed", ""},
		{"cpu:0?attention=fused", ""},
		{"cpu?precision=tf32", "takes one option, attention=fused|composed (precision=tf32 is a GPU setting or unknown)"},
		{"cpu?attention=fused&profile=1", "(profile=1 is a GPU setting or unknown)"},
	} {
		b, err := core.OpenBackend(c.device)
		switch {
		case c.err == "" && (err != nil || b.Name() != "cpu"):
			t.Errorf("OpenBackend(%q) = %v, %v", c.device, b, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("OpenBackend(%q) error %v, want one containing %q", c.device, err, c.err)
		}
	}
}
