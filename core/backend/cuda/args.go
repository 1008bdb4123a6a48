//go:build cuda

package cuda

import (
	"encoding/binary"
	"math"
)

// args packs a kernel's parameters into one buffer, each value aligned to its own
// size (pointers, long longs and Idx structs to 8, ints and floats to 4) as the C ABI
// lays out a parameter list, and records where each starts: kd_launch passes the
// driver one pointer per parameter into the buffer. The order of calls must match the
// kernel's signature.
type args struct {
	buf  []byte
	offs []int32
	// kinds spells the C type of each parameter (p pointer, l long long, u unsigned
	// long long, i int, f float, x Idx) and names holds its name in the kernel's
	// signature, so the tests can hold every call site to the kernel's parameter list.
	kinds []byte
	names []string
}

// maxParams bounds a kernel's parameter count (kd_launch's array).
const maxParams = 16

func newArgs() *args {
	return &args{buf: make([]byte, 0, 256), offs: make([]int32, 0, maxParams), kinds: make([]byte, 0, maxParams),
		names: make([]string, 0, maxParams)}
}

// start aligns the buffer for a parameter of the given size and kind.
func (a *args) start(name string, size int, kind byte) {
	for len(a.buf)%size != 0 {
		a.buf = append(a.buf, 0)
	}
	a.offs = append(a.offs, int32(len(a.buf)))
	a.kinds = append(a.kinds, kind)
	a.names = append(a.names, name)
}

func (a *args) ptr(name string, p uintptr) *args {
	a.start(name, 8, 'p')
	a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(p))
	return a
}

func (a *args) i64(name string, v int) *args {
	a.start(name, 8, 'l')
	a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(int64(v)))
	return a
}

func (a *args) u64(name string, v uint64) *args {
	a.start(name, 8, 'u')
	a.buf = binary.LittleEndian.AppendUint64(a.buf, v)
	return a
}

func (a *args) i32(name string, v int) *args {
	a.start(name, 4, 'i')
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(int32(v)))
	return a
}

func (a *args) flag(name string, v bool) *args {
	if v {
		return a.i32(name, 1)
	}
	return a.i32(name, 0)
}

func (a *args) f32(name string, v float32) *args {
	a.start(name, 4, 'f')
	a.buf = binary.LittleEndian.AppendUint32(a.buf, math.Float32bits(v))
	return a
}

// maxRank is the kernels' MAXR: the most axes a strided walk (Binary, Reduce,
// Permute) handles.
const maxRank = 8

// idx packs the kernels' Idx struct: a rank, a shape and two vectors over it, each
// padded to maxRank entries.
func (a *args) idx(name string, shape, sa, sb []int) *args {
	a.start(name, 8, 'x')
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
