// Package ref is kadapt's float64 reference backend: the yardstick every other backend
// and every finite-difference gradient test is measured against.
//
// Storage is float64 and every op is a plain loop written to be obviously correct rather
// than fast (products go through gonum's blas64). Upload widens float32 exactly and
// Download rounds to float32, so a float32 backend that agrees with ref after Download is
// as accurate as float32 allows. Float64s and UploadFloat64 give tests the unrounded
// values.
//
// ref checks shapes and indices and panics with a message naming the op and the
// offending tensor; it is meant for tests, where a loud failure beats a silent wrong
// number.
package ref

import (
	"fmt"
	"math"
	"sync"

	"github.com/kadapt/kadapt/core"
)

func init() {
	core.RegisterBackend("ref", func(string) (core.Backend, error) { return New(), nil })
}

// buffer is the Storage behind a ref tensor.
type buffer struct {
	data []float64
	// released catches a second Release of the same storage, which would otherwise hand
	// one buffer to two later Allocs.
	released bool
}

func (b *buffer) Len() int { return len(b.data) }

type backend struct {
	mu   sync.Mutex
	pool map[int][]*buffer // free buffers keyed by exact length
}

// New returns a fresh reference backend with its own storage pool.
func New() core.Backend { return &backend{pool: map[int][]*buffer{}} }

func (*backend) Name() string { return "ref" }

// AllocUninit fills the tensor with NaN, so that a caller that reads what it promised
// to overwrite sees it in its results (core.UninitAllocator).
func (be *backend) AllocUninit(shape core.Shape) *core.Tensor {
	t := be.Alloc(shape)
	d := t.Storage().(*buffer).data
	for i := range d[:t.Size()] {
		d[i] = math.NaN()
	}
	return t
}

func (be *backend) Alloc(shape core.Shape) *core.Tensor {
	n, err := shape.SizeWithin(math.MaxInt)
	if err != nil {
		panic("ref: Alloc: " + err.Error())
	}
	be.mu.Lock()
	var buf *buffer
	if free := be.pool[n]; len(free) > 0 {
		buf = free[len(free)-1]
		be.pool[n] = free[:len(free)-1]
	}
	be.mu.Unlock()
	if buf == nil {
		buf = &buffer{data: make([]float64, n)}
	} else {
		clear(buf.data)
		buf.released = false
	}
	return core.NewTensor(be, buf, shape, core.Float32)
}

func (be *backend) Release(t *core.Tensor) {
	buf := storage(t, "Release")
	be.mu.Lock()
	defer be.mu.Unlock()
	if buf.released {
		panic(fmt.Sprintf("ref: Release: %v was already released", t))
	}
	buf.released = true
	be.pool[len(buf.data)] = append(be.pool[len(buf.data)], buf)
}

func (*backend) Upload(dst *core.Tensor, src []float32) {
	d := vals(dst, "Upload", "dst")
	if len(src) != len(d) {
		panic(fmt.Sprintf("ref: Upload: %d values for %v", len(src), dst))
	}
	for i, v := range src {
		d[i] = float64(v)
	}
}

func (*backend) Download(dst []float32, src *core.Tensor) {
	s := vals(src, "Download", "src")
	if len(dst) != len(s) {
		panic(fmt.Sprintf("ref: Download: %d slots for %v", len(dst), src))
	}
	for i, v := range s {
		dst[i] = float32(v)
	}
}

func (*backend) Sync() error { return nil }

// Float64s returns a copy of the exact float64 contents of a ref tensor.
func Float64s(t *core.Tensor) []float64 {
	return append([]float64(nil), vals(t, "Float64s", "t")...)
}

// UploadFloat64 sets a ref tensor's contents without rounding to float32, so
// finite-difference tests can perturb inputs by less than a float32 ulp.
func UploadFloat64(t *core.Tensor, v []float64) {
	d := vals(t, "UploadFloat64", "t")
	if len(v) != len(d) {
		panic(fmt.Sprintf("ref: UploadFloat64: %d values for %v", len(v), t))
	}
	copy(d, v)
}

func storage(t *core.Tensor, op string) *buffer {
	if t == nil {
		panic(fmt.Sprintf("ref: %s: nil tensor", op))
	}
	buf, ok := t.Storage().(*buffer)
	if !ok {
		panic(fmt.Sprintf("ref: %s: %v was not allocated by a ref backend", op, t))
	}
	return buf
}

// vals returns the live elements of t; role names the argument in panic messages.
func vals(t *core.Tensor, op, role string) []float64 {
	if t == nil {
		panic(fmt.Sprintf("ref: %s: %s is nil", op, role))
	}
	buf, ok := t.Storage().(*buffer)
	if !ok {
		panic(fmt.Sprintf("ref: %s: %s %v was not allocated by a ref backend", op, role, t))
	}
	if buf.released {
		panic(fmt.Sprintf("ref: %s: %s %v is used after Release", op, role, t))
	}
	return buf.data[:t.Size()]
}

func sameSize(op string, a, b *core.Tensor) {
	if a.Size() != b.Size() {
		panic(fmt.Sprintf("ref: %s: sizes differ: %v and %v", op, a, b))
	}
}

func sameShape(op string, a, b *core.Tensor) {
	if !a.Shape().Equal(b.Shape()) {
		panic(fmt.Sprintf("ref: %s: shapes differ: %v and %v", op, a, b))
	}
}

// offset maps the flat row-major index i of a tensor of shape out to an element offset
// using strides st (0 on broadcast axes).
func offset(i int, out core.Shape, st []int) int {
	off := 0
	for ax := len(out) - 1; ax >= 0; ax-- {
		off += (i % out[ax]) * st[ax]
		i /= out[ax]
	}
	return off
}

// index converts the float-stored index at position i of idx to an int in [0, n).
func index(op string, idx []float64, i, n int) int {
	v := idx[i]
	if v != math.Trunc(v) || v < 0 || v >= float64(n) {
		panic(fmt.Sprintf("ref: %s: index %v at position %d is not an integer in [0, %d)", op, v, i, n))
	}
	return int(v)
}

// lastAxis returns the length of t's last axis, the row length of the softmax family.
func lastAxis(op string, t *core.Tensor) int {
	if t.Rank() == 0 {
		panic(fmt.Sprintf("ref: %s: %v has no last axis", op, t))
	}
	return t.Dim(t.Rank() - 1)
}
