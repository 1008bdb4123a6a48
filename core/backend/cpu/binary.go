package cpu

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// maxRank bounds the rank the strided kernels handle, so their index arithmetic lives
// in fixed arrays instead of per-call slices.
const maxRank = 16

// bcastIter describes dst = op(a, b) after broadcasting: axes of size 1 dropped and
// neighbouring axes merged wherever both operands step through them contiguously. The
// innermost axis then has stride 0 or 1 in each operand, so the inner loop is one of
// vector∘vector, vector∘scalar or scalar∘vector.
type bcastIter struct {
	rank   int
	dims   [maxRank]int
	sa, sb [maxRank]int
	inner  int // dims[rank-1]
	outer  int // product of the other dims
}

func newBcastIter(op core.BinaryOp, out, a, b core.Shape) bcastIter {
	if len(out) > maxRank {
		panic(fmt.Sprintf("cpu: Binary %s: rank %d exceeds the supported %d", op, len(out), maxRank))
	}
	var it bcastIter
	strideOf := func(s core.Shape, axis int) (stride int, ok bool) {
		// Row-major stride of s's axis aligned with out's axis, or 0 when s is
		// stretched along it.
		j := axis - (len(out) - len(s))
		if j < 0 || s[j] == 1 {
			return 0, true
		}
		if s[j] != out[axis] {
			return 0, false
		}
		st := 1
		for _, d := range s[j+1:] {
			st *= d
		}
		return st, true
	}
	if len(a) > len(out) || len(b) > len(out) {
		panic(fmt.Sprintf("cpu: Binary %s: operands %s and %s do not broadcast to %s", op, a.String(), b.String(), out.String()))
	}
	for i := range out {
		if out[i] == 1 {
			continue
		}
		sa, oka := strideOf(a, i)
		sb, okb := strideOf(b, i)
		if !oka || !okb {
			panic(fmt.Sprintf("cpu: Binary %s: operands %s and %s do not broadcast to %s", op, a.String(), b.String(), out.String()))
		}
		if r := it.rank; r > 0 && it.sa[r-1] == sa*out[i] && it.sb[r-1] == sb*out[i] {
			it.dims[r-1] *= out[i]
			it.sa[r-1], it.sb[r-1] = sa, sb
			continue
		}
		it.dims[it.rank], it.sa[it.rank], it.sb[it.rank] = out[i], sa, sb
		it.rank++
	}
	if it.rank == 0 { // a scalar result
		it.dims[0], it.rank = 1, 1
	}
	it.inner = it.dims[it.rank-1]
	it.outer = 1
	for _, d := range it.dims[:it.rank-1] {
		it.outer *= d
	}
	return it
}

// offsets returns where outer row o starts in a and b.
func (it *bcastIter) offsets(o int) (oa, ob int) {
	for ax := it.rank - 2; ax >= 0; ax-- {
		i := o % it.dims[ax]
		o /= it.dims[ax]
		oa += i * it.sa[ax]
		ob += i * it.sb[ax]
	}
	return oa, ob
}

type binaryKernel struct {
	op      core.BinaryOp
	d, a, b []float32
	it      bcastIter
}

// run handles output elements [lo, hi), which may start and end mid-row.
func (k binaryKernel) run(lo, hi int) {
	it := &k.it
	n := it.inner
	sa, sb := it.sa[it.rank-1], it.sb[it.rank-1]
	for lo < hi {
		o, j := lo/n, lo%n
		m := min(n-j, hi-lo)
		oa, ob := it.offsets(o)
		d := k.d[lo : lo+m]
		switch {
		case sa == 1 && sb == 1:
			binaryVV(k.op, d, k.a[oa+j:oa+j+m], k.b[ob+j:ob+j+m])
		case sa == 1:
			binaryVS(k.op, d, k.a[oa+j:oa+j+m], k.b[ob])
		case sb == 1:
			binarySV(k.op, d, k.a[oa], k.b[ob+j:ob+j+m])
		default:
			// Neither operand varies along the last axis, which coalescing leaves
			// only for a one-element result.
			binaryVV(k.op, d, k.a[oa:oa+1], k.b[ob:ob+1])
		}
		lo += m
	}
}

// Binary computes dst = op(a, b) with NumPy broadcasting.
func (b *Backend) Binary(op core.BinaryOp, dst, a, bt *core.Tensor) {
	if op > core.Equal {
		panic(fmt.Sprintf("cpu: Binary: unknown op %d", op))
	}
	d := b.f32(dst, "Binary")
	as, bs := b.f32(a, "Binary"), b.f32(bt, "Binary")
	if len(d) == 0 {
		return
	}
	if len(as) == len(d) && len(bs) == len(d) {
		// Same shape (or a reshape of it): one flat vector loop.
		forEach(binaryFlat{op, d, as, bs}, len(d), 1)
		return
	}
	it := newBcastIter(op, dst.Shape(), a.Shape(), bt.Shape())
	forEach(binaryKernel{op, d, as, bs, it}, len(d), 1)
}

type binaryFlat struct {
	op      core.BinaryOp
	d, a, b []float32
}

func (k binaryFlat) run(lo, hi int) { binaryVV(k.op, k.d[lo:hi], k.a[lo:hi], k.b[lo:hi]) }

func maximum(a, b float32) float32 {
	switch {
	case a > b:
		return a
	case b >= a:
		return b
	}
	return a + b // one of them is NaN: propagate it, as torch.maximum does
}

func equal(a, b float32) float32 {
	if a == b {
		return 1
	}
	return 0
}

func binaryVV(op core.BinaryOp, d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	switch op {
	case core.Add:
		for i := range d {
			d[i] = a[i] + b[i]
		}
	case core.Sub:
		for i := range d {
			d[i] = a[i] - b[i]
		}
	case core.Mul:
		for i := range d {
			d[i] = a[i] * b[i]
		}
	case core.Div:
		for i := range d {
			d[i] = a[i] / b[i]
		}
	case core.Maximum:
		for i := range d {
			d[i] = maximum(a[i], b[i])
		}
	default:
		for i := range d {
			d[i] = equal(a[i], b[i])
		}
	}
}

// binaryVS is the per-row-scalar case: b is constant over the row (trailing size-1 axes
// or a scalar operand).
func binaryVS(op core.BinaryOp, d, a []float32, b float32) {
	a = a[:len(d)]
	switch op {
	case core.Add:
		for i := range d {
			d[i] = a[i] + b
		}
	case core.Sub:
		for i := range d {
			d[i] = a[i] - b
		}
	case core.Mul:
		for i := range d {
			d[i] = a[i] * b
		}
	case core.Div:
		// Divide rather than multiply by 1/b so results match a/b exactly.
		for i := range d {
			d[i] = a[i] / b
		}
	case core.Maximum:
		for i := range d {
			d[i] = maximum(a[i], b)
		}
	default:
		for i := range d {
			d[i] = equal(a[i], b)
		}
	}
}

func binarySV(op core.BinaryOp, d []float32, a float32, b []float32) {
	b = b[:len(d)]
	switch op {
	case core.Add:
		for i := range d {
			d[i] = a + b[i]
		}
	case core.Sub:
		for i := range d {
			d[i] = a - b[i]
		}
	case core.Mul:
		for i := range d {
			d[i] = a * b[i]
		}
	case core.Div:
		for i := range d {
			d[i] = a / b[i]
		}
	case core.Maximum:
		for i := range d {
			d[i] = maximum(a, b[i])
		}
	default:
		for i := range d {
			d[i] = equal(a, b[i])
		}
	}
}
