package cpu

import (
	"fmt"
	"runtime"

	"github.com/kadapt/kadapt/core"
)

// transposeTile is the side of the square tiles a transposing permute copies: 32×32
// float32 is 4 KiB per side, so source and destination tiles stay in L1.
const transposeTile = 32

// permuteKernel copies x into dst with axes reordered. Axes are coalesced where x is
// contiguous across them; q is the dst axis that walks x with stride 1. When q is the
// last axis every unit is one contiguous run; otherwise a unit is a band of
// transposeTile rows of the (q, last) plane, copied tile by tile.
type permuteKernel struct {
	rank int
	dims [maxRank]int
	xst  [maxRank]int // x stride of each dst axis
	dst  [maxRank]int // dst strides
	q    int
	d, x []float32
}

// base returns the x and dst offsets of unit u's outer index: every axis but q and the
// last, innermost first. bands is the number of units per outer index.
func (k *permuteKernel) base(u, bands int) (band, xo, do int) {
	band = u % bands
	u /= bands
	last := k.rank - 1
	for ax := last; ax >= 0; ax-- {
		if ax == last || ax == k.q {
			continue
		}
		i := u % k.dims[ax]
		u /= k.dims[ax]
		xo += i * k.xst[ax]
		do += i * k.dst[ax]
	}
	return band, xo, do
}

func (k permuteKernel) run(lo, hi int) {
	last := k.rank - 1
	n := k.dims[last]
	if k.q == last {
		for u := lo; u < hi; u++ {
			_, xo, do := k.base(u, 1)
			copy(k.d[do:do+n], k.x[xo:xo+n])
		}
		return
	}
	bands := (k.dims[k.q] + transposeTile - 1) / transposeTile
	xs, ds := k.xst[last], k.dst[k.q]
	for u := lo; u < hi; u++ {
		band, xo, do := k.base(u, bands)
		i0, i1 := band*transposeTile, min((band+1)*transposeTile, k.dims[k.q])
		for j0 := 0; j0 < n; j0 += transposeTile {
			j1 := min(j0+transposeTile, n)
			for i := i0; i < i1; i++ {
				d := k.d[do+i*ds+j0 : do+i*ds+j1]
				xi := xo + i + j0*xs
				for j := range d {
					d[j] = k.x[xi+j*xs]
				}
			}
		}
	}
}

// Permute writes x with its axes reordered: dst axis i is x axis perm[i].
func (b *Backend) Permute(dst, x *core.Tensor, perm []int) {
	xs, ds := x.Shape(), dst.Shape()
	if len(perm) != len(xs) || len(ds) != len(xs) {
		panic(fmt.Sprintf("cpu: Permute: permutation %v does not fit x %v and dst %v", core.Shape(perm).String(), xs, ds))
	}
	if len(xs) > maxRank {
		panic(fmt.Sprintf("cpu: Permute: rank %d exceeds the supported %d", len(xs), maxRank))
	}
	var seen [maxRank]bool
	var xstrides [maxRank]int
	st := 1
	for i := len(xs) - 1; i >= 0; i-- {
		xstrides[i] = st
		st *= xs[i]
	}
	for i, p := range perm {
		if p < 0 || p >= len(xs) || seen[p] {
			panic(fmt.Sprintf("cpu: Permute: %v is not a permutation of %d axes", core.Shape(perm).String(), len(xs)))
		}
		seen[p] = true
		if ds[i] != xs[p] {
			panic(fmt.Sprintf("cpu: Permute: dst %v is not x %v permuted by %v", ds, xs, core.Shape(perm).String()))
		}
	}
	d, xd := b.f32(dst, "Permute"), b.f32(x, "Permute")
	if len(d) == 0 {
		return
	}
	k := permuteKernel{d: d, x: xd}
	for _, p := range perm {
		if xs[p] == 1 {
			continue
		}
		if r := k.rank; r > 0 && k.xst[r-1] == xstrides[p]*xs[p] {
			k.dims[r-1] *= xs[p]
			k.xst[r-1] = xstrides[p]
			continue
		}
		k.dims[k.rank], k.xst[k.rank] = xs[p], xstrides[p]
		k.rank++
	}
	if k.rank <= 1 { // the identity once size-1 axes are ignored
		forEach(copyKernel{d, xd}, len(d), 1)
		return
	}
	st = 1
	for i := k.rank - 1; i >= 0; i-- {
		k.dst[i] = st
		st *= k.dims[i]
		if k.xst[i] == 1 {
			k.q = i
		}
	}
	last := k.rank - 1
	units := len(d) / k.dims[last]
	if k.q != last {
		bands := (k.dims[k.q] + transposeTile - 1) / transposeTile
		units = units / k.dims[k.q] * bands
	}
	forEach(k, units, len(d)/units)
}

// axisSplit returns the sizes before, along and after axis.
func axisSplit(s core.Shape, axis int) (outer, along, inner int) {
	outer, inner = 1, 1
	for _, d := range s[:axis] {
		outer *= d
	}
	for _, d := range s[axis+1:] {
		inner *= d
	}
	return outer, s[axis], inner
}

// checkAlong verifies that a and b have equal rank and agree on every axis but axis.
func checkAlong(op string, a, b core.Shape, axis int) {
	if len(a) != len(b) || axis < 0 || axis >= len(a) {
		panic(fmt.Sprintf("cpu: %s: shapes %v and %v along axis %d", op, a, b, axis))
	}
	for i := range a {
		if i != axis && a[i] != b[i] {
			panic(fmt.Sprintf("cpu: %s: shapes %v and %v differ off axis %d", op, a, b, axis))
		}
	}
}

type copyAlongKernel struct {
	d, s         []float32
	row          int // n·inner: elements copied per outer index
	dStep, sStep int // dst and src elements per outer index
	dBase, sBase int // dstOff·inner, srcOff·inner
	acc          bool
}

// run copies elements [lo, hi) of the [outer, row] block, which may start mid-row.
func (k copyAlongKernel) run(lo, hi int) {
	for lo < hi {
		o, j := lo/k.row, lo%k.row
		m := min(k.row-j, hi-lo)
		d := k.d[o*k.dStep+k.dBase+j : o*k.dStep+k.dBase+j+m]
		s := k.s[o*k.sStep+k.sBase+j : o*k.sStep+k.sBase+j+m]
		if k.acc {
			for i, v := range s {
				d[i] += v
			}
		} else {
			copy(d, s)
		}
		lo += m
	}
}

// CopyAlong copies (or adds) src[..., srcOff:srcOff+n, ...] into dst[..., dstOff:dstOff+n, ...].
func (b *Backend) CopyAlong(dst, src *core.Tensor, axis, dstOff, srcOff, n int, accumulate bool) {
	checkAlong("CopyAlong", dst.Shape(), src.Shape(), axis)
	outer, dLen, inner := axisSplit(dst.Shape(), axis)
	sLen := src.Dim(axis)
	if n < 0 || dstOff < 0 || srcOff < 0 || dstOff+n > dLen || srcOff+n > sLen {
		panic(fmt.Sprintf("cpu: CopyAlong: block of %d at dst offset %d / src offset %d exceeds axis %d of dst %v or src %v",
			n, dstOff, srcOff, axis, dst.Shape(), src.Shape()))
	}
	row := n * inner
	if row == 0 || outer == 0 {
		return
	}
	k := copyAlongKernel{
		d: b.f32(dst, "CopyAlong"), s: b.f32(src, "CopyAlong"),
		row: row, dStep: dLen * inner, sStep: sLen * inner,
		dBase: dstOff * inner, sBase: srcOff * inner, acc: accumulate,
	}
	forEach(k, outer*row, 1)
}

// checkIndices verifies that every value of idx is an integer in [0, limit).
func checkIndices(op string, idx []float32, limit int) {
	for i, v := range idx {
		if !(v >= 0 && v < float32(limit)) || v != float32(int(v)) {
			panic(fmt.Sprintf("cpu: %s: index %v at position %d is not an integer in [0, %d)", op, v, i, limit))
		}
	}
}

type gatherKernel struct {
	d, x, idx     []float32
	along, xAlong int
	inner         int
}

// run copies units [lo, hi), one per (outer, position) pair.
func (k gatherKernel) run(lo, hi int) {
	for u := lo; u < hi; u++ {
		o, i := u/k.along, u%k.along
		src := (o*k.xAlong + int(k.idx[i])) * k.inner
		copy(k.d[u*k.inner:(u+1)*k.inner], k.x[src:src+k.inner])
	}
}

// Gather writes dst[..., i, ...] = x[..., idx[i], ...] along axis.
func (b *Backend) Gather(dst, x, idx *core.Tensor, axis int) {
	checkAlong("Gather", dst.Shape(), x.Shape(), axis)
	outer, along, inner := axisSplit(dst.Shape(), axis)
	if idx.Size() != along {
		panic(fmt.Sprintf("cpu: Gather: %d indices for axis %d of dst %v", idx.Size(), axis, dst.Shape()))
	}
	ix := b.f32(idx, "Gather")
	checkIndices("Gather", ix, x.Dim(axis))
	k := gatherKernel{d: b.f32(dst, "Gather"), x: b.f32(x, "Gather"), idx: ix, along: along, xAlong: x.Dim(axis), inner: inner}
	forEach(k, outer*along, inner)
}

// scatterKernel adds src rows into dst rows. Repeated indices make dst rows collide,
// so workers split either the outer axis or the columns of inner, never the indices.
type scatterKernel struct {
	d, s, idx     []float32
	along, dAlong int
	inner, outer  int
	byOuter       bool
}

func (k scatterKernel) run(lo, hi int) {
	o0, o1, c0, c1 := lo, hi, 0, k.inner
	if !k.byOuter {
		o0, o1, c0, c1 = 0, k.outer, lo, hi
	}
	for o := o0; o < o1; o++ {
		for i := 0; i < k.along; i++ {
			so := (o*k.along+i)*k.inner + c0
			do := (o*k.dAlong+int(k.idx[i]))*k.inner + c0
			d := k.d[do : do+c1-c0]
			for j, v := range k.s[so : so+c1-c0] {
				d[j] += v
			}
		}
	}
}

// ScatterAdd adds src[..., i, ...] into dst[..., idx[i], ...] along axis.
func (b *Backend) ScatterAdd(dst, src, idx *core.Tensor, axis int) {
	checkAlong("ScatterAdd", dst.Shape(), src.Shape(), axis)
	outer, along, inner := axisSplit(src.Shape(), axis)
	if idx.Size() != along {
		panic(fmt.Sprintf("cpu: ScatterAdd: %d indices for axis %d of src %v", idx.Size(), axis, src.Shape()))
	}
	ix := b.f32(idx, "ScatterAdd")
	checkIndices("ScatterAdd", ix, dst.Dim(axis))
	k := scatterKernel{
		d: b.f32(dst, "ScatterAdd"), s: b.f32(src, "ScatterAdd"), idx: ix,
		along: along, dAlong: dst.Dim(axis), inner: inner, outer: outer,
		byOuter: outer >= runtime.GOMAXPROCS(0) || inner == 1,
	}
	if k.byOuter {
		forEach(k, outer, along*inner)
	} else {
		forEach(k, inner, outer*along)
	}
}
