//go:build cuda

package cuda

import (
	"encoding/binary"
	"math"
)

// args packs kernel parameters as the kernel's C signature lays them out: each one
// aligned to its own size, pointers and long longs 8 bytes, ints and floats 4, Idx
// structs 8-aligned.
type args struct {
	buf  []byte
	offs []int
}

func (a *args) align(n int) {
	for len(a.buf)%n != 0 {
		a.buf = append(a.buf, 0)
	}
	a.offs = append(a.offs, len(a.buf))
}

func (a *args) ptr(p uintptr) *args {
	a.align(8)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(p))
	return a
}

func (a *args) i64(v int) *args {
	a.align(8)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(int64(v)))
	return a
}

func (a *args) u64(v uint64) *args {
	a.align(8)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, v)
	return a
}

func (a *args) i32(v int) *args {
	a.align(4)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(int32(v)))
	return a
}

func (a *args) f32(v float32) *args {
	a.align(4)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, math.Float32bits(v))
	return a
}

// maxRank matches the kernels' MAXR.
const maxRank = 8

// idx is the kernels' Idx struct: a shape and two stride vectors.
func (a *args) idx(shape, sa, sb []int) *args {
	a.align(8)
	put := func(v []int) {
		for i := 0; i < maxRank; i++ {
			x := int64(0)
			if i < len(v) {
				x = int64(v[i])
			}
			a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(x))
		}
	}
	a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(len(shape)))
	put(shape)
	put(sa)
	put(sb)
	return a
}
