package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
)

// unravel converts a flat row-major index into a multi-index of shape s.
func unravel(i int, s core.Shape) []int {
	idx := make([]int, len(s))
	for ax := len(s) - 1; ax >= 0; ax-- {
		idx[ax] = i % s[ax]
		i /= s[ax]
	}
	return idx
}

func ravel(idx []int, s core.Shape) int {
	i := 0
	for ax, d := range s {
		i = i*d + idx[ax]
	}
	return i
}

func TestReduce(t *testing.T) {
	cases := []struct{ x, dst core.Shape }{
		{core.Shape{4, 5}, core.Shape{4, 1}},             // rows
		{core.Shape{4, 5}, core.Shape{1, 5}},             // columns (bias gradient)
		{core.Shape{4, 5}, core.Shape{1, 1}},             // everything
		{core.Shape{3, 4, 5}, core.Shape{3, 1, 5}},       // middle axis
		{core.Shape{3, 4, 5}, core.Shape{1, 4, 1}},       // outer and inner
		{core.Shape{2, 3, 4, 5}, core.Shape{2, 1, 4, 1}}, // alternating
		{core.Shape{2, 1, 4}, core.Shape{2, 1, 1}},       // size-1 axis kept
		{core.Shape{3, 4}, core.Shape{3, 4}},             // nothing reduced
		{core.Shape{5000}, core.Shape{1}},                // several blocks... of one
		{core.Shape{0, 3}, core.Shape{1, 3}},             // empty
	}
	rng := rand.New(rand.NewPCG(3, 3))
	b := New()
	for _, c := range cases {
		for _, op := range []core.ReduceOp{core.ReduceSum, core.ReduceMax} {
			t.Run(fmt.Sprintf("%v_%v_%d", c.x, c.dst, op), func(t *testing.T) {
				xs := randn(rng, c.x.Size())
				want := make([]float64, c.dst.Size())
				for i := range want {
					if op == core.ReduceMax {
						want[i] = math.Inf(-1)
					}
				}
				for i, v := range xs {
					idx := unravel(i, c.x)
					for ax := range idx {
						if c.dst[ax] == 1 {
							idx[ax] = 0
						}
					}
					j := ravel(idx, c.dst)
					if op == core.ReduceMax {
						want[j] = math.Max(want[j], float64(v))
					} else {
						want[j] += float64(v)
					}
				}
				x, dst := upload(b, c.x, xs), b.Alloc(c.dst)
				b.Reduce(op, dst, x, false)
				closeTo(t, "Reduce", download(b, dst), want, 1e-6, 1e-6)
				if op == core.ReduceSum {
					b.Reduce(op, dst, x, true)
					for i := range want {
						want[i] *= 2
					}
					closeTo(t, "Reduce accumulated", download(b, dst), want, 1e-6, 1e-6)
				}
			})
		}
	}
	b2 := New()
	expectPanic(t, "accumulate is only valid", func() {
		b2.Reduce(core.ReduceMax, b2.Alloc(core.Shape{1}), b2.Alloc(core.Shape{3}), true)
	})
	expectPanic(t, "not x", func() {
		b2.Reduce(core.ReduceSum, b2.Alloc(core.Shape{2}), b2.Alloc(core.Shape{3}), false)
	})
}

// TestReduceAccuracy sums 12,800 rows (a ViT-B/32 batch of tokens) of a value that is
// not exact in binary; a float32 running sum would drift by ~1e-4 relative.
func TestReduceAccuracy(t *testing.T) {
	b := New()
	const rows, cols = 12800, 3
	xs := make([]float32, rows*cols)
	for i := range xs {
		xs[i] = 0.1
	}
	dst := b.Alloc(core.Shape{1, cols})
	b.Reduce(core.ReduceSum, dst, upload(b, core.Shape{rows, cols}, xs), false)
	want := float64(float32(0.1)) * rows
	closeTo(t, "column sum", download(b, dst), []float64{want, want, want}, 0, 1e-7)
}

func TestPermute(t *testing.T) {
	cases := []struct {
		x    core.Shape
		perm []int
	}{
		{core.Shape{3, 4}, []int{1, 0}},                    // transpose
		{core.Shape{70, 45}, []int{1, 0}},                  // transpose over several tiles, ragged
		{core.Shape{2, 5, 3, 4}, []int{0, 2, 1, 3}},        // heads swap: contiguous runs
		{core.Shape{2, 5, 3, 4}, []int{2, 0, 3, 1}},        // scattered
		{core.Shape{2, 3, 4}, []int{0, 1, 2}},              // identity
		{core.Shape{2, 1, 4}, []int{1, 0, 2}},              // identity once size 1 is dropped
		{core.Shape{4, 3, 2, 5}, []int{3, 2, 1, 0}},        // reversal
		{core.Shape{2, 17, 3, 4, 8}, []int{2, 0, 3, 1, 4}}, // qkv split [B,T,3,H,D]→[3,B,H,T,D]
		{core.Shape{2, 40, 33}, []int{0, 2, 1}},            // batched transpose
		{core.Shape{}, []int{}},                            // scalar
	}
	rng := rand.New(rand.NewPCG(5, 5))
	b := New()
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v_%v", c.x, c.perm), func(t *testing.T) {
			xs := randn(rng, c.x.Size())
			ds := make(core.Shape, len(c.perm))
			for i, p := range c.perm {
				ds[i] = c.x[p]
			}
			want := make([]float64, len(xs))
			for i := range want {
				di := unravel(i, ds)
				xi := make([]int, len(di))
				for ax, p := range c.perm {
					xi[p] = di[ax]
				}
				want[i] = float64(xs[ravel(xi, c.x)])
			}
			dst := b.Alloc(ds)
			b.Permute(dst, upload(b, c.x, xs), c.perm)
			closeTo(t, "Permute", download(b, dst), want, 0, 0)
		})
	}
	expectPanic(t, "not a permutation", func() {
		b.Permute(b.Alloc(core.Shape{2, 2}), b.Alloc(core.Shape{2, 2}), []int{1, 1})
	})
}

func TestCopyAlong(t *testing.T) {
	b := New()
	// src [2,3,2] rows 1..2 of axis 1 into dst [2,4,2] rows 2..3.
	src := upload(b, core.Shape{2, 3, 2}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	dst := b.Alloc(core.Shape{2, 4, 2})
	b.Fill(dst, -1)
	b.CopyAlong(dst, src, 1, 2, 1, 2, false)
	want := []float64{-1, -1, -1, -1, 3, 4, 5, 6, -1, -1, -1, -1, 9, 10, 11, 12}
	closeTo(t, "CopyAlong", download(b, dst), want, 0, 0)
	b.CopyAlong(dst, src, 1, 0, 0, 1, true) // add row 0 into row 0
	want[0], want[1], want[8], want[9] = 0, 1, 6, 7
	closeTo(t, "CopyAlong accumulate", download(b, dst), want, 0, 0)
	// Along the last axis and the first.
	d2 := b.Alloc(core.Shape{2, 3, 1})
	b.CopyAlong(d2, src, 2, 0, 1, 1, false)
	closeTo(t, "last axis", download(b, d2), []float64{2, 4, 6, 8, 10, 12}, 0, 0)
	d3 := b.Alloc(core.Shape{1, 3, 2})
	b.CopyAlong(d3, src, 0, 0, 1, 1, false)
	closeTo(t, "first axis", download(b, d3), []float64{7, 8, 9, 10, 11, 12}, 0, 0)
	expectPanic(t, "exceeds axis 1", func() { b.CopyAlong(dst, src, 1, 3, 0, 2, false) })
}

func TestGatherScatterAdd(t *testing.T) {
	b := New()
	x := upload(b, core.Shape{2, 3, 2}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	idx := upload(b, core.Shape{4}, []float32{2, 0, 2, 1})
	dst := b.Alloc(core.Shape{2, 4, 2})
	b.Gather(dst, x, idx, 1)
	closeTo(t, "Gather", download(b, dst), []float64{5, 6, 1, 2, 5, 6, 3, 4, 11, 12, 7, 8, 11, 12, 9, 10}, 0, 0)
	// ScatterAdd is Gather's adjoint: <Gather(x), y> = <x, ScatterAdd(y)>.
	ys := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	grad := b.Alloc(core.Shape{2, 3, 2})
	b.Fill(grad, 100)
	b.ScatterAdd(grad, upload(b, core.Shape{2, 4, 2}, ys), idx, 1)
	// Position 2 receives src rows 0 and 2, position 0 row 1, position 1 row 3.
	closeTo(t, "ScatterAdd", download(b, grad), []float64{
		103, 104, 107, 108, 106, 108,
		111, 112, 115, 116, 122, 124,
	}, 0, 0)
	// Embedding lookup along axis 0, where outer is 1 and workers split columns.
	emb := upload(b, core.Shape{3, 2}, []float32{1, 2, 3, 4, 5, 6})
	ids := upload(b, core.Shape{3}, []float32{1, 1, 0})
	out := b.Alloc(core.Shape{3, 2})
	b.Gather(out, emb, ids, 0)
	closeTo(t, "embedding", download(b, out), []float64{3, 4, 3, 4, 1, 2}, 0, 0)
	g := b.Alloc(core.Shape{3, 2})
	b.ScatterAdd(g, out, ids, 0)
	closeTo(t, "embedding grad", download(b, g), []float64{1, 2, 6, 8, 0, 0}, 0, 0)
	expectPanic(t, "ScatterAdd: index -1", func() {
		b.ScatterAdd(g, out, upload(b, core.Shape{3}, []float32{0, -1, 0}), 0)
	})
}
