package ref

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

func (*backend) Permute(dst, x *core.Tensor, perm []int) {
	d, xs := vals(dst, "Permute", "dst"), vals(x, "Permute", "x")
	xShape, dShape := x.Shape(), dst.Shape()
	if len(perm) != len(xShape) || len(dShape) != len(xShape) {
		panic(fmt.Sprintf("ref: Permute: perm %v does not fit x %v and dst %v", perm, x, dst))
	}
	seen := make([]bool, len(perm))
	xst := xShape.Strides()
	st := make([]int, len(perm))
	for i, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] || dShape[i] != xShape[p] {
			panic(fmt.Sprintf("ref: Permute: perm %v does not map x %v to dst %v", perm, x, dst))
		}
		seen[p] = true
		st[i] = xst[p]
	}
	for i := range d {
		d[i] = xs[offset(i, dShape, st)]
	}
}

// splitAt returns the element counts before axis and after it.
func splitAt(s core.Shape, axis int) (outer, inner int) {
	return s[:axis].Size(), s[axis+1:].Size()
}

// sameExceptAxis reports whether a and b agree on every axis but axis.
func sameExceptAxis(a, b core.Shape, axis int) bool {
	if len(a) != len(b) || axis < 0 || axis >= len(a) {
		return false
	}
	for i := range a {
		if i != axis && a[i] != b[i] {
			return false
		}
	}
	return true
}

func (*backend) CopyAlong(dst, src *core.Tensor, axis, dstOff, srcOff, n int, accumulate bool) {
	d, s := vals(dst, "CopyAlong", "dst"), vals(src, "CopyAlong", "src")
	ds, ss := dst.Shape(), src.Shape()
	if !sameExceptAxis(ds, ss, axis) || n < 0 || dstOff < 0 || srcOff < 0 ||
		dstOff+n > ds[axis] || srcOff+n > ss[axis] {
		panic(fmt.Sprintf("ref: CopyAlong: block of %d at src offset %d / dst offset %d on axis %d does not fit src %v and dst %v",
			n, srcOff, dstOff, axis, src, dst))
	}
	outer, inner := splitAt(ds, axis)
	for o := range outer {
		for j := range n {
			for k := range inner {
				v := s[(o*ss[axis]+srcOff+j)*inner+k]
				p := &d[(o*ds[axis]+dstOff+j)*inner+k]
				if accumulate {
					*p += v
				} else {
					*p = v
				}
			}
		}
	}
}

func (*backend) Gather(dst, x, idx *core.Tensor, axis int) {
	d, xs, ix := vals(dst, "Gather", "dst"), vals(x, "Gather", "x"), vals(idx, "Gather", "idx")
	ds, xsh := dst.Shape(), x.Shape()
	if !sameExceptAxis(ds, xsh, axis) || len(ix) != ds[axis] {
		panic(fmt.Sprintf("ref: Gather: dst %v, x %v and idx %v do not fit along axis %d", dst, x, idx, axis))
	}
	outer, inner := splitAt(ds, axis)
	for i := range ix {
		index("Gather", ix, i, xsh[axis])
	}
	for o := range outer {
		for i := range ix {
			src := index("Gather", ix, i, xsh[axis])
			for k := range inner {
				d[(o*ds[axis]+i)*inner+k] = xs[(o*xsh[axis]+src)*inner+k]
			}
		}
	}
}

func (*backend) ScatterAdd(dst, src, idx *core.Tensor, axis int) {
	d, s, ix := vals(dst, "ScatterAdd", "dst"), vals(src, "ScatterAdd", "src"), vals(idx, "ScatterAdd", "idx")
	ds, ss := dst.Shape(), src.Shape()
	if !sameExceptAxis(ds, ss, axis) || len(ix) != ss[axis] {
		panic(fmt.Sprintf("ref: ScatterAdd: dst %v, src %v and idx %v do not fit along axis %d", dst, src, idx, axis))
	}
	for i := range ix {
		index("ScatterAdd", ix, i, ds[axis])
	}
	outer, inner := splitAt(ds, axis)
	for o := range outer {
		for i := range ix {
			to := index("ScatterAdd", ix, i, ds[axis])
			for k := range inner {
				d[(o*ds[axis]+to)*inner+k] += s[(o*ss[axis]+i)*inner+k]
			}
		}
	}
}
