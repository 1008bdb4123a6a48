//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

// This file holds the host-side planning that decides how an op maps onto cuBLAS or
// a kernel. It is plain Go, so the tests check it against reference arithmetic on
// machines without a GPU.

// gemmPlan is one column-major strided-batched cuBLAS product C = op(X)·op(Y).
// Row-major storage read column-major is the transpose, so the row-major product
// D = op(A)·op(B) is computed as Dᵀ = op(B)ᵀ·op(A)ᵀ: X is B's storage, Y is A's, and
// the transpose flags carry over unchanged.
type gemmPlan struct {
	transX, transY            bool
	m, n, k                   int // cuBLAS's: m = dst columns, n = dst rows
	ldx, ldy, ldc             int
	strideX, strideY, strideC int64 // elements between batch entries; 0 shares the operand
	batch                     int
}

// planGemm checks the shapes of a MatMul and plans it. Leading (batch) axes of a and
// b must equal dst's or hold a single matrix, which every batch entry then shares.
func planGemm(ds, as, bs core.Shape, transA, transB bool) (gemmPlan, error) {
	bad := func(why string) (gemmPlan, error) {
		return gemmPlan{}, fmt.Errorf("cuda: MatMul: %s: dst %v, a %v (transposed %v), b %v (transposed %v)",
			why, ds, as, transA, bs, transB)
	}
	if len(ds) < 2 || len(as) < 2 || len(bs) < 2 {
		return bad("operands need at least two axes")
	}
	rows, cols := ds[len(ds)-2], ds[len(ds)-1]
	am, ak := as[len(as)-2], as[len(as)-1]
	if transA {
		am, ak = ak, am
	}
	bk, bn := bs[len(bs)-2], bs[len(bs)-1]
	if transB {
		bk, bn = bn, bk
	}
	if am != rows || bn != cols || ak != bk {
		return bad("inner or outer dimensions do not match")
	}
	batch := ds[:len(ds)-2].Size()
	stride := func(s core.Shape) (int64, bool) {
		lead := s[:len(s)-2]
		switch {
		case lead.Size() == 1:
			return 0, true
		case lead.Equal(ds[:len(ds)-2]):
			return int64(s[len(s)-2] * s[len(s)-1]), true
		}
		return 0, false
	}
	sa, okA := stride(as)
	sb, okB := stride(bs)
	if !okA || !okB {
		return bad("batch axes must equal dst's or be absent")
	}
	g := gemmPlan{
		transX: transB, transY: transA,
		m: cols, n: rows, k: ak,
		ldx: bs[len(bs)-1], ldy: as[len(as)-1], ldc: cols,
		strideX: sb, strideY: sa, strideC: int64(rows * cols),
		batch: batch,
	}
	for _, v := range []int{g.m, g.n, g.k, g.ldx, g.ldy, g.batch} {
		if v > math.MaxInt32 {
			return bad("a dimension exceeds cuBLAS's 32-bit limit")
		}
	}
	// cuBLAS rejects a leading dimension of 0 even when the operand is empty.
	g.ldx, g.ldy, g.ldc = max(g.ldx, 1), max(g.ldy, 1), max(g.ldc, 1)
	return g, nil
}

// suffixLen reports whether operand shape s, without its leading size-1 axes, equals
// the trailing axes of out; then output element i reads s's element i mod n. Equal
// shapes, row vectors broadcast over rows, and scalars all qualify.
func suffixLen(s, out core.Shape) (n int, ok bool) {
	lead := 0
	for lead < len(s) && s[lead] == 1 {
		lead++
	}
	s = s[lead:]
	if len(s) > len(out) || !s.Equal(out[len(out)-len(s):]) {
		return 0, false
	}
	return s.Size(), true
}

// Reduce kernels, chosen by planReduce.
const (
	reduceNone    = iota // no axis is reduced: a copy or an add
	reduceRows           // [A, R]: contiguous rows
	reduceCols           // [A, R, K] with K > 1
	reduceGeneric        // reduced axes not contiguous: one thread per output
)

// reducePlan views x as [A, R, K], R the reduced extent, when the reduced axes are
// adjacent once size-1 axes are set aside.
type reducePlan struct {
	kind    int
	A, R, K int
}

// planReduce checks that dst is x with some axes reduced to 1 and classifies the
// reduction.
func planReduce(xs, ds core.Shape) (reducePlan, error) {
	if len(xs) != len(ds) {
		return reducePlan{}, fmt.Errorf("cuda: Reduce: dst %v and x %v differ in rank", ds, xs)
	}
	p := reducePlan{A: 1, R: 1, K: 1}
	// Walk the axes that are not 1 in x: kept ones before the reduced run go to A,
	// after it to K. A second reduced run after kept axes breaks the pattern.
	phase := 0 // 0: before, 1: in the reduced run, 2: after
	for i := range xs {
		switch {
		case ds[i] != xs[i] && ds[i] != 1:
			return reducePlan{}, fmt.Errorf("cuda: Reduce: dst %v is not x %v with some axes reduced to 1", ds, xs)
		case xs[i] == 1:
			continue
		case ds[i] == 1: // reduced
			if phase == 2 {
				p.kind = reduceGeneric
			}
			if phase == 0 {
				phase = 1
			}
			p.R *= xs[i]
		default: // kept
			if phase == 0 {
				p.A *= xs[i]
			} else {
				phase = 2
				p.K *= xs[i]
			}
		}
	}
	switch {
	case p.kind == reduceGeneric:
	case phase == 0:
		p.kind = reduceNone
	case p.K == 1:
		p.kind = reduceRows
	default:
		p.kind = reduceCols
	}
	return p, nil
}

// splitPlan divides a sum over r elements among s blocks of chunk elements each so
// that about target blocks run in all when only have blocks would otherwise; no
// chunk is shorter than minChunk and s stays within a grid dimension.
func splitPlan(r, have, target, minChunk int) (s, chunk int) {
	s = 1
	if have < target {
		s = min((target+have-1)/have, (r+minChunk-1)/minChunk, maxGridYZ)
		s = max(s, 1)
	}
	chunk = (r + s - 1) / max(s, 1)
	if chunk > 0 {
		s = (r + chunk - 1) / chunk // no empty trailing split
	}
	return max(s, 1), chunk
}

// rowMode picks warp-per-row for rows of at most 1024 elements and block-per-row
// above, and the grid for rows rows.
func rowMode(rows, cols int) (warp bool, grid int) {
	if cols <= 1024 {
		return true, max(1, min((rows+rowsPerBlock-1)/rowsPerBlock, maxGridX))
	}
	return false, max(1, min(rows, maxGridX))
}

// threads is the block size of every one-dimensional launch; rowsPerBlock follows
// (one warp per row in warp mode).
const (
	threads      = 256
	rowsPerBlock = threads / 32
)

// elementGrid is the grid of a grid-stride loop over n elements: one thread each up
// to a bound past which threads loop.
func elementGrid(n int) int { return max(1, min((n+threads-1)/threads, 1<<20)) }
