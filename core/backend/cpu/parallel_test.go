package cpu

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/kadapt/kadapt/core"
)

func TestWorkers(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	cases := []struct{ units, elems, want int }{
		{1000, parallelMin - 1, 1},            // too little work
		{1, 1 << 30, 1},                       // one unit cannot be split
		{2, 1 << 30, min(2, procs)},           // no more workers than units
		{1 << 20, 1 << 30, procs},             // plenty of both
		{1 << 20, parallelMin, min(2, procs)}, // at least parallelMin/2 elements each
	}
	for _, c := range cases {
		if got := workers(c.units, c.elems); got != c.want {
			t.Errorf("workers(%d, %d) = %d, want %d", c.units, c.elems, got, c.want)
		}
	}
}

// TestParallelMatchesSerial runs every op once serially and once split across an odd
// number of goroutines with a tiny threshold, so chunk boundaries fall mid-row and
// mid-block. Each output element is computed by exactly one goroutine in a fixed order,
// so the results must agree bit for bit; the serial results are themselves checked
// against references in the other tests.
func TestParallelMatchesSerial(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	const rows, cols = 37, 53
	s := core.Shape{rows, cols}
	xs, ys := randn(rng, rows*cols), randn(rng, rows*cols)
	pos := make([]float32, len(xs))
	for i, v := range xs {
		pos[i] = v*v + 0.1
	}
	labels := make([]float32, rows)
	for i := range labels {
		labels[i] = float32(i % cols)
	}
	idx := make([]float32, 2*rows)
	for i := range idx {
		idx[i] = float32((i * 7) % rows)
	}
	type run func(b core.Backend) [][]float32
	ops := map[string]run{
		"binary bias": func(b core.Backend) [][]float32 {
			d := b.Alloc(s)
			b.Binary(core.Add, d, upload(b, s, xs), upload(b, core.Shape{cols}, ys[:cols]))
			return [][]float32{download(b, d)}
		},
		"binary strided": func(b core.Backend) [][]float32 {
			d := b.Alloc(core.Shape{rows, 3, cols})
			b.Binary(core.Mul, d, upload(b, core.Shape{rows, 1, cols}, xs), upload(b, core.Shape{3, 1}, ys[:3]))
			return [][]float32{download(b, d)}
		},
		"unary and grad": func(b core.Backend) [][]float32 {
			d, g := b.Alloc(s), b.Alloc(s)
			b.Unary(core.GELU, d, upload(b, s, xs))
			b.UnaryGrad(core.SiLU, g, upload(b, s, xs), upload(b, s, ys), false)
			return [][]float32{download(b, d), download(b, g)}
		},
		"reduce": func(b core.Backend) [][]float32 {
			x := upload(b, s, xs)
			c, r, a := b.Alloc(core.Shape{1, cols}), b.Alloc(core.Shape{rows, 1}), b.Alloc(core.Shape{1, 1})
			b.Reduce(core.ReduceSum, c, x, false)
			b.Reduce(core.ReduceMax, r, x, false)
			b.Reduce(core.ReduceSum, a, x, false)
			return [][]float32{download(b, c), download(b, r), download(b, a)}
		},
		"permute": func(b core.Backend) [][]float32 {
			x := upload(b, core.Shape{rows, cols}, xs)
			p := b.Alloc(core.Shape{cols, rows})
			b.Permute(p, x, []int{1, 0})
			return [][]float32{download(b, p)}
		},
		"gather scatter copyalong": func(b core.Backend) [][]float32 {
			x, ix := upload(b, s, xs), upload(b, core.Shape{2 * rows}, idx)
			g := b.Alloc(core.Shape{2 * rows, cols})
			b.Gather(g, x, ix, 0)
			sc := b.Alloc(s)
			b.ScatterAdd(sc, g, ix, 0)
			ca := b.Alloc(core.Shape{rows, cols + 5})
			b.CopyAlong(ca, x, 1, 5, 0, cols, false)
			return [][]float32{download(b, g), download(b, sc), download(b, ca)}
		},
		"softmax family": func(b core.Backend) [][]float32 {
			x := upload(b, s, xs)
			y, ly, dx, ldx := b.Alloc(s), b.Alloc(s), b.Alloc(s), b.Alloc(s)
			b.Softmax(y, x)
			b.LogSoftmax(ly, x)
			b.SoftmaxGrad(dx, y, upload(b, s, ys), false)
			b.LogSoftmaxGrad(ldx, ly, upload(b, s, ys), false)
			loss, dl := b.Alloc(core.Shape{1}), b.Alloc(s)
			b.CrossEntropy(loss, dl, x, upload(b, core.Shape{rows}, labels), 0.1)
			bl, bdl := b.Alloc(core.Shape{1}), b.Alloc(s)
			b.BCEWithLogits(bl, bdl, x, upload(b, s, pos[:len(xs)]))
			return [][]float32{download(b, y), download(b, ly), download(b, dx), download(b, ldx),
				download(b, loss), download(b, dl), download(b, bl), download(b, bdl)}
		},
		"layernorm": func(b core.Backend) [][]float32 {
			x := upload(b, s, xs)
			gamma, beta := upload(b, core.Shape{cols}, ys[:cols]), upload(b, core.Shape{cols}, ys[cols:2*cols])
			d, m, r := b.Alloc(s), b.Alloc(core.Shape{rows}), b.Alloc(core.Shape{rows})
			b.LayerNorm(d, m, r, x, gamma, beta, 1e-5)
			dx, dg, db := b.Alloc(s), b.Alloc(core.Shape{cols}), b.Alloc(core.Shape{cols})
			b.LayerNormGrad(dx, dg, db, upload(b, s, ys), x, m, r, gamma, false)
			return [][]float32{download(b, d), download(b, dx), download(b, dg), download(b, db)}
		},
		"dropout sumsquares optimizers": func(b core.Backend) [][]float32 {
			x := upload(b, s, xs)
			d, mask := b.Alloc(s), b.Alloc(s)
			b.Dropout(d, mask, x, 0.3, 99)
			ss := b.Alloc(core.Shape{1})
			b.SumSquares(ss, x, false)
			p, g, m, v := upload(b, s, xs), upload(b, s, ys), b.Alloc(s), b.Alloc(s)
			b.AdamWStep(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1)
			q, mom := upload(b, s, xs), b.Alloc(s)
			b.SGDStep(q, g, mom, 0.1, 0.9, 1e-4, true, true)
			return [][]float32{download(b, d), download(b, mask), download(b, ss), download(b, p), download(b, q)}
		},
		"batched matmul": func(b core.Backend) [][]float32 {
			const batch, m, n, k = 9, 5, 7, 11
			d := b.Alloc(core.Shape{batch, m, n})
			b.MatMul(d, upload(b, core.Shape{batch, m, k}, xs[:batch*m*k]), upload(b, core.Shape{batch, n, k}, ys[:batch*n*k]), false, true, 1, 0)
			return [][]float32{download(b, d)}
		},
	}
	oldMin, oldProcs := parallelMin, runtime.GOMAXPROCS(0)
	defer func() {
		parallelMin = oldMin
		runtime.GOMAXPROCS(oldProcs)
	}()
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			parallelMin = 1 << 40
			serial := op(New())
			parallelMin = 16
			runtime.GOMAXPROCS(5)
			par := op(New())
			runtime.GOMAXPROCS(oldProcs)
			for i := range serial {
				closeTo(t, fmt.Sprint("output ", i), par[i], f64(serial[i]), 0, 0)
			}
		})
	}
}
