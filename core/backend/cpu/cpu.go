package cpu

import (
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kadapt/kadapt/core"
)

func init() {
	core.RegisterBackend("cpu", func(device string) (core.Backend, error) {
		name, opts, _ := strings.Cut(device, "?")
		if name != "cpu" && name != "cpu:0" {
			return nil, fmt.Errorf("device %q: the cpu backend has a single device, \"cpu\"", device)
		}
		b := newBackend()
		for _, kv := range strings.Split(opts, "&") {
			switch kv {
			case "":
			case "attention=fused", "attention=composed":
				b.composedAttention = kv == "attention=composed"
			default:
				return nil, fmt.Errorf("device %q: the cpu backend takes one option, attention=fused|composed (%s is a GPU setting or unknown)", device, kv)
			}
		}
		return b, nil
	})
}

// Backend is the pure-Go float32 backend. Its methods are safe for concurrent use as
// long as concurrent ops do not write tensors that other ops read or write.
type Backend struct {
	mu   sync.Mutex
	free [numClasses][]*buffer
	// pooled counts the float32 elements held in free lists, for PooledBytes.
	pooled int

	scratchMu sync.Mutex
	scratch   []*[]float64

	// packedBytes is the memory held by packed weights (matmul.go), bounded by
	// packCacheLimit.
	packedBytes atomic.Int64

	// composedAttention (device option attention=composed) turns the fused attention
	// off, so that the two paths can be compared (attention.go).
	composedAttention bool
}

// New returns a CPU backend with an empty pool.
func New() core.Backend { return newBackend() }

func newBackend() *Backend { return &Backend{} }

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Sync returns nil: every op has finished when its method returns.
func (b *Backend) Sync() error { return nil }

// buffer is the Storage behind CPU tensors. data has the full capacity of the size
// class; a tensor uses the first Size() elements.
type buffer struct {
	data  []float32
	class int
	// released guards against handing the same buffer to the pool twice, which would
	// give it to two later Allocs at once.
	released bool

	// version counts the ops that may have written data (f32 bumps it; read-only
	// accessors do not), so a packed copy of data (packs, matmul.go) knows when it is
	// stale. Ops reading the same tensor may run concurrently, hence atomic.
	version atomic.Uint64
	packMu  sync.Mutex
	packs   [2]packEntry // indexed by transB
}

func (s *buffer) Len() int { return len(s.data) }

const (
	// classesPerOctave size classes split each power of two, bounding the slack of a
	// pooled buffer at 1/classesPerOctave.
	classesPerOctave = 8
	classShift       = 3 // log2(classesPerOctave)
	// smallestClass is the capacity of class 0; every smaller request shares it.
	smallestClass = 2 * classesPerOctave
	numClasses    = 1 + (bits.UintSize-5)*classesPerOctave
)

// sizeClass maps a requested element count to its class index and capacity.
func sizeClass(n int) (class, capacity int) {
	if n <= smallestClass {
		return 0, smallestClass
	}
	e := bits.Len(uint(n - 1)) // 2^(e-1) < n <= 2^e, e >= 5
	g := 1 << (e - 1 - classShift)
	q := (n + g - 1) / g // in (classesPerOctave, 2·classesPerOctave]
	return 1 + (e-5)*classesPerOctave + (q - classesPerOctave - 1), q * g
}

// Alloc returns a zero-filled tensor, reusing pooled storage of the same size class
// when there is some.
func (b *Backend) Alloc(shape core.Shape) *core.Tensor { return b.alloc(shape, true) }

// AllocUninit is Alloc without the zero fill of reused storage (core.UninitAllocator).
func (b *Backend) AllocUninit(shape core.Shape) *core.Tensor { return b.alloc(shape, false) }

func (b *Backend) alloc(shape core.Shape, zero bool) *core.Tensor {
	n, err := shape.SizeWithin(maxElements)
	if err != nil {
		panic("cpu: Alloc: " + err.Error())
	}
	class, capacity := sizeClass(n)
	b.mu.Lock()
	var buf *buffer
	if l := len(b.free[class]); l > 0 {
		buf = b.free[class][l-1]
		b.free[class][l-1] = nil
		b.free[class] = b.free[class][:l-1]
		b.pooled -= len(buf.data)
	}
	b.mu.Unlock()
	if buf == nil {
		buf = &buffer{data: make([]float32, capacity), class: class}
	} else {
		buf.released = false
		buf.version.Add(1)
		if zero {
			fill(buf.data[:n], 0)
		}
	}
	return core.NewTensor(b, buf, shape, core.Float32)
}

// maxElements bounds a single tensor at 2^40 float32 elements (4 TiB), far beyond any
// real model but small enough that size arithmetic cannot overflow an int.
const maxElements = 1 << 40

// Release returns t's storage to the pool. Releasing the same storage twice (through t
// or a view of it) panics, since the pool would otherwise hand it out twice.
func (b *Backend) Release(t *core.Tensor) {
	if t == nil {
		return
	}
	buf := b.buf(t, "Release")
	b.mu.Lock()
	defer b.mu.Unlock()
	if buf.released {
		panic(fmt.Sprintf("cpu: Release: storage of %v was already released", t.Shape()))
	}
	buf.released = true
	buf.dropPacks()
	b.free[buf.class] = append(b.free[buf.class], buf)
	b.pooled += len(buf.data)
}

// Trim drops every pooled buffer so the garbage collector can reclaim it.
func (b *Backend) Trim() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.free {
		clear(b.free[i])
		b.free[i] = nil
	}
	b.pooled = 0
	b.scratchMu.Lock()
	b.scratch = nil
	b.scratchMu.Unlock()
}

// PooledBytes reports how many bytes of released storage the pool holds.
func (b *Backend) PooledBytes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return 4 * b.pooled
}

// buf returns t's storage, panicking with the op's name if t belongs to another backend.
func (b *Backend) buf(t *core.Tensor, op string) *buffer {
	buf, ok := t.Storage().(*buffer)
	if !ok {
		panic(fmt.Sprintf("cpu: %s: tensor %v was not allocated by a cpu backend", op, t.Shape()))
	}
	return buf
}

// f32 returns the elements of t for an op that may write them: any packed copy of t
// made before is stale from now on.
func (b *Backend) f32(t *core.Tensor, op string) []float32 {
	buf := b.buf(t, op)
	buf.version.Add(1)
	return buf.data[:t.Size()]
}

// in returns the elements of t for an op that only reads them. Every other access
// goes through f32, so that an op which writes can never leave a packed copy current.
func (b *Backend) in(t *core.Tensor, op string) []float32 {
	return b.buf(t, op).data[:t.Size()]
}

// opt is f32 for an optional tensor: nil stays nil.
func (b *Backend) opt(t *core.Tensor, op string) []float32 {
	if t == nil {
		return nil
	}
	return b.f32(t, op)
}

// getScratch returns a float64 slice of length n, not zeroed. Scratch holds float64
// accumulators for reductions; pooling it keeps those ops allocation-free.
func (b *Backend) getScratch(n int) *[]float64 {
	b.scratchMu.Lock()
	for i := len(b.scratch) - 1; i >= 0; i-- {
		if s := b.scratch[i]; cap(*s) >= n {
			last := len(b.scratch) - 1
			b.scratch[i] = b.scratch[last]
			b.scratch[last] = nil
			b.scratch = b.scratch[:last]
			b.scratchMu.Unlock()
			*s = (*s)[:n]
			return s
		}
	}
	b.scratchMu.Unlock()
	s := make([]float64, n)
	return &s
}

func (b *Backend) putScratch(s *[]float64) {
	b.scratchMu.Lock()
	b.scratch = append(b.scratch, s)
	b.scratchMu.Unlock()
}

// Upload copies src into dst.
func (b *Backend) Upload(dst *core.Tensor, src []float32) {
	d := b.f32(dst, "Upload")
	if len(src) != len(d) {
		panic(fmt.Sprintf("cpu: Upload: %d values for a tensor of shape %v (%d elements)", len(src), dst.Shape(), len(d)))
	}
	copy(d, src)
}

// Download copies src into dst.
func (b *Backend) Download(dst []float32, src *core.Tensor) {
	s := b.in(src, "Download")
	if len(dst) != len(s) {
		panic(fmt.Sprintf("cpu: Download: %d values for a tensor of shape %v (%d elements)", len(dst), src.Shape(), len(s)))
	}
	copy(dst, s)
}

func checkSameSize(op string, a, b *core.Tensor) {
	if a.Size() != b.Size() {
		panic(fmt.Sprintf("cpu: %s: sizes differ: %v and %v", op, a.Shape(), b.Shape()))
	}
}
