package core

import (
	"fmt"
	"strings"
)

// Shape lists a tensor's dimension sizes, outermost first (row-major).
type Shape []int

// Size is the number of elements, 1 for a scalar (empty shape).
func (s Shape) Size() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// SizeWithin is Size for a shape that has not been checked yet (an allocation's): it
// fails on a negative dimension, or when the product exceeds limit, before the product
// can overflow.
func (s Shape) SizeWithin(limit int) (int, error) {
	n := 1
	for i, d := range s {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension, %d on axis %d", s, d, i)
		}
		if d > 0 && n > limit/d {
			return 0, fmt.Errorf("shape %v has more than %d elements", s, limit)
		}
		n *= d
	}
	return n, nil
}

// Equal reports whether two shapes have the same rank and sizes.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy that does not alias s.
func (s Shape) Clone() Shape { return append(Shape(nil), s...) }

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Strides returns row-major element strides for s.
func (s Shape) Strides() []int {
	st := make([]int, len(s))
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= s[i]
	}
	return st
}

// DType is a tensor's storage type. Arithmetic is float32 everywhere; the narrower
// types exist so the GPU backend can store activations and matmul inputs in 16 bits.
type DType uint8

const (
	Float32 DType = iota
	BFloat16
	Float16
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case BFloat16:
		return "bfloat16"
	case Float16:
		return "float16"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Storage is a backend's private buffer behind a Tensor. Only the backend that made it
// may type-assert it.
type Storage interface {
	// Len is the number of elements the buffer holds.
	Len() int
}

// Tensor is a handle to a contiguous, row-major buffer owned by a Backend. Several
// tensors may share one Storage with different shapes (see Reshape); none of them owns
// more than the others.
type Tensor struct {
	shape   Shape
	dtype   DType
	backend Backend
	storage Storage
}

// NewTensor wraps a backend's storage. Backends call it; other code allocates through
// Backend.Alloc.
func NewTensor(b Backend, s Storage, shape Shape, dt DType) *Tensor {
	if s.Len() < shape.Size() {
		panic(fmt.Sprintf("core: storage of %d elements is too small for shape %v", s.Len(), shape))
	}
	return &Tensor{shape: shape.Clone(), dtype: dt, backend: b, storage: s}
}

func (t *Tensor) Shape() Shape     { return t.shape }
func (t *Tensor) DType() DType     { return t.dtype }
func (t *Tensor) Backend() Backend { return t.backend }
func (t *Tensor) Storage() Storage { return t.storage }
func (t *Tensor) Size() int        { return t.shape.Size() }
func (t *Tensor) Rank() int        { return len(t.shape) }
func (t *Tensor) Dim(i int) int    { return t.shape[i] }
func (t *Tensor) String() string   { return fmt.Sprintf("Tensor%v(%s)", t.shape, t.backend.Name()) }

// Reshape returns a view with a new shape over the same storage. A single -1 is
// inferred from the remaining sizes.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	s, err := InferShape(t.Size(), shape)
	if err != nil {
		panic(fmt.Sprintf("core: reshape %v to %v: %v", t.shape, shape, err))
	}
	return &Tensor{shape: s, dtype: t.dtype, backend: t.backend, storage: t.storage}
}

// InferShape resolves one -1 entry so that the shape has n elements.
func InferShape(n int, shape []int) (Shape, error) {
	s := Shape(append([]int(nil), shape...))
	neg := -1
	known := 1
	for i, d := range s {
		switch {
		case d == -1 && neg < 0:
			neg = i
		case d < 0:
			return nil, fmt.Errorf("invalid size %d", d)
		default:
			known *= d
		}
	}
	if neg >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("cannot infer -1 for %d elements", n)
		}
		s[neg] = n / known
	}
	if s.Size() != n {
		return nil, fmt.Errorf("%d elements do not fit shape %v", n, s)
	}
	return s, nil
}
