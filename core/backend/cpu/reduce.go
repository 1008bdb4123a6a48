package cpu

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

// reduceKernel accumulates x into a float64 buffer of dst's size. The axes are
// coalesced into alternating kept and reduced runs; workers split the first kept axis,
// so each owns a disjoint part of the accumulator.
type reduceKernel struct {
	max   bool
	rank  int
	dims  [maxRank]int
	xst   [maxRank]int // x strides
	ast   [maxRank]int // accumulator strides, 0 on reduced axes
	red   [maxRank]bool
	split int // the axis workers divide
	x     []float32
	acc   []float64
}

func (k reduceKernel) run(lo, hi int) { k.walk(0, 0, 0, lo, hi) }

func (k *reduceKernel) walk(level, xo, ao, lo, hi int) {
	from, to := 0, k.dims[level]
	if level == k.split {
		from, to = lo, hi
	}
	if level < k.rank-1 {
		for i := from; i < to; i++ {
			k.walk(level+1, xo+i*k.xst[level], ao+i*k.ast[level], lo, hi)
		}
		return
	}
	x := k.x[xo+from : xo+to]
	if k.red[level] {
		s := k.acc[ao]
		if k.max {
			for _, v := range x {
				if f := float64(v); f > s || f != f {
					s = f
				}
			}
		} else {
			for _, v := range x {
				s += float64(v)
			}
		}
		k.acc[ao] = s
		return
	}
	acc := k.acc[ao+from : ao+to]
	if k.max {
		for i, v := range x {
			if f := float64(v); f > acc[i] || f != f {
				acc[i] = f
			}
		}
	} else {
		for i, v := range x {
			acc[i] += float64(v)
		}
	}
}

// Reduce reduces x over every axis where dst has size 1 and x does not.
func (b *Backend) Reduce(op core.ReduceOp, dst, x *core.Tensor, accumulate bool) {
	if op != core.ReduceSum && op != core.ReduceMax {
		panic(fmt.Sprintf("cpu: Reduce: unknown op %d", op))
	}
	if accumulate && op != core.ReduceSum {
		panic("cpu: Reduce: accumulate is only valid with ReduceSum")
	}
	xs, ds := x.Shape(), dst.Shape()
	if len(xs) != len(ds) {
		panic(fmt.Sprintf("cpu: Reduce: dst %v and x %v differ in rank", ds, xs))
	}
	if len(xs) > maxRank {
		panic(fmt.Sprintf("cpu: Reduce: rank %d exceeds the supported %d", len(xs), maxRank))
	}
	k := reduceKernel{max: op == core.ReduceMax, split: -1}
	for i := range xs {
		red := ds[i] == 1 && xs[i] != 1
		if !red && ds[i] != xs[i] {
			panic(fmt.Sprintf("cpu: Reduce: dst %v is not x %v with some axes reduced to 1", ds, xs))
		}
		if xs[i] == 1 {
			continue
		}
		if r := k.rank; r > 0 && k.red[r-1] == red {
			k.dims[r-1] *= xs[i]
			continue
		}
		k.dims[k.rank], k.red[k.rank] = xs[i], red
		k.rank++
	}
	d, xd := b.f32(dst, "Reduce"), b.f32(x, "Reduce")
	init := 0.0
	if k.max {
		init = math.Inf(-1)
	}
	switch {
	case len(d) == 0:
		return
	case len(xd) == 0:
		if !accumulate {
			fill(d, float32(init))
		}
		return
	}
	nred := 0
	for i := 0; i < k.rank; i++ {
		if k.red[i] {
			nred++
		} else if k.split < 0 {
			k.split = i
		}
	}
	if nred == 0 { // nothing to reduce: dst is x reshaped
		if accumulate {
			forEach(axpbyKernel{d, xd, 1, 1}, len(d), 1)
		} else {
			forEach(copyKernel{d, xd}, len(d), 1)
		}
		return
	}
	if k.split < 0 {
		b.reduceAll(k.max, d, xd, accumulate)
		return
	}
	xst, ast := 1, 1
	for i := k.rank - 1; i >= 0; i-- {
		k.xst[i] = xst
		xst *= k.dims[i]
		if !k.red[i] {
			k.ast[i] = ast
			ast *= k.dims[i]
		}
	}
	sp := b.getScratch(len(d))
	acc := *sp
	for i := range acc {
		acc[i] = init
	}
	k.x, k.acc = xd, acc
	forEach(k, k.dims[k.split], len(xd)/k.dims[k.split])
	for i, v := range acc {
		if accumulate {
			v += float64(d[i])
		}
		d[i] = float32(v)
	}
	b.putScratch(sp)
}

type reduceAllKernel struct {
	max     bool
	x       []float32
	partial []float64
}

func (k reduceAllKernel) run(lo, hi int) {
	for blk := lo; blk < hi; blk++ {
		x := k.x[blk*sumBlock : min((blk+1)*sumBlock, len(k.x))]
		if k.max {
			s := math.Inf(-1)
			for _, v := range x {
				if f := float64(v); f > s || f != f {
					s = f
				}
			}
			k.partial[blk] = s
			continue
		}
		var s float64
		for _, v := range x {
			s += float64(v)
		}
		k.partial[blk] = s
	}
}

// reduceAll reduces every element of x into d[0] in fixed blocks, so the result does
// not depend on the number of goroutines.
func (b *Backend) reduceAll(isMax bool, d, x []float32, accumulate bool) {
	nb := (len(x) + sumBlock - 1) / sumBlock
	sp := b.getScratch(nb)
	forEach(reduceAllKernel{isMax, x, *sp}, nb, sumBlock)
	var s float64
	if isMax {
		s = math.Inf(-1)
		for _, v := range *sp {
			if v > s || v != v {
				s = v
			}
		}
	} else {
		s = sumInOrder(*sp)
	}
	b.putScratch(sp)
	if accumulate {
		s += float64(d[0])
	}
	d[0] = float32(s)
}
