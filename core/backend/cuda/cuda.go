//go:build cuda

// Package cuda is kadapt's GPU backend: core.Backend on NVIDIA GPUs, compiled only
// with the `cuda` build tag so the default build stays pure Go.
//
// Products go through cuBLAS (cublasGemmEx and cublasGemmStridedBatchedEx, TF32 or
// bf16 tensor cores on request); every other op is a kernel from kernels/, compiled at
// start-up by NVRTC for the GPU's own architecture. The driver, cuBLAS and NVRTC are
// opened with dlopen by a small cgo layer of our own (cudadl.c) rather than linked or
// reached through gorgonia.org/cu, whose package init calls cuInit and exits the
// process when that fails: a binary built with -tags cuda therefore starts anywhere,
// and New, Open and Probe return errors such as "cuda: no CUDA driver: libcuda.so.1 not
// loadable (...)". docs/cuda.md gives the reasons at length.
//
// Memory comes from a size-bucketed caching allocator: Release returns a buffer to its
// bucket, so a steady-state training step makes no device allocation. All work is
// queued in order on one stream; Download and Sync wait for it. Bad indices and labels
// found by kernels are reported by the next Sync (as an error) or Download (as a
// panic), since the Backend methods themselves return nothing.
package cuda

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/kadapt/kadapt/core"
)

//go:embed kernels
var kernelFS embed.FS

// kernelNames lists every kernel the Go side launches; loading fails unless the
// compiled module has them all.
var kernelNames = []string{
	"k_axpby", "k_binary_suffix", "k_binary", "k_unary", "k_unary_grad", "k_dropout", "k_scale_by",
	"k_permute", "k_copy_along", "k_gather", "k_scatter_add",
	"k_reduce_rows", "k_reduce_cols", "k_reduce", "k_sum_squares",
	"k_softmax", "k_softmax_grad", "k_cross_entropy", "k_bce", "k_layer_norm", "k_layer_norm_dx", "k_layer_norm_dparams",
	"k_sgd", "k_adamw", "k_to_bf16", "k_mha_fwd", "k_mha_bwd", "k_bias_unary",
}

// kernelSource is common.cuh followed by the .cu files in name order: one NVRTC
// program, so no include paths are needed at run time.
func kernelSource() (string, error) {
	var b strings.Builder
	common, err := kernelFS.ReadFile("kernels/common.cuh")
	if err != nil {
		return "", err
	}
	b.Write(common)
	names, err := fs.Glob(kernelFS, "kernels/*.cu")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		src, err := kernelFS.ReadFile(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n// ---- %s ----\n", n)
		b.Write(src)
	}
	return b.String(), nil
}

func init() {
	core.RegisterBackend("cuda", func(device string) (core.Backend, error) {
		b, err := Open(device)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// Precision selects how MatMul multiplies; every other op computes in float32 and
// every tensor is stored in float32 whatever the precision.
type Precision uint8

const (
	// FP32 products: float32 inputs and accumulation (precision=fp32, the default).
	FP32 Precision = iota
	// TF32 products: tensor cores round the inputs to 10 mantissa bits and accumulate
	// in float32 (precision=tf32).
	TF32
	// BF16 autocast: the inputs of each product are rounded to bfloat16 (7 mantissa
	// bits, round to nearest even) on the device and multiplied on tensor cores with
	// float32 accumulation and a float32 result (precision=bf16). Weights, gradients,
	// optimizer state and every other op stay float32.
	BF16
)

func (p Precision) String() string {
	switch p {
	case FP32:
		return "fp32"
	case TF32:
		return "tf32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("Precision(%d)", uint8(p))
}

// Options are the settings a device string can carry after '?'.
type Options struct {
	Precision Precision
	// ComposedAttention turns the fused attention kernels off (attention=composed):
	// autograd then permutes the heads and uses cuBLAS products around a row softmax.
	// The default is attention=fused.
	ComposedAttention bool
	// Profile waits for every launch, product and copy and adds up the time per
	// kernel (profile=1; see Backend.ProfileReport). Waiting serialises host and
	// device, so a profiled step is slower; the breakdown says where the time goes.
	Profile bool
}

// ParseDevice parses "cuda", "cuda:N" and either followed by options:
// "?precision=fp32|tf32|bf16&attention=fused|composed&profile=0|1".
func ParseDevice(spec string) (ordinal int, opt Options, err error) {
	dev, query, _ := strings.Cut(spec, "?")
	name, num, hasNum := strings.Cut(dev, ":")
	if name != "cuda" {
		return 0, opt, fmt.Errorf("cuda: device %q: want cuda or cuda:N", spec)
	}
	if hasNum {
		ordinal, err = strconv.Atoi(num)
		if err != nil || ordinal < 0 {
			return 0, opt, fmt.Errorf("cuda: device %q: %q is not a device number", spec, num)
		}
	}
	if query == "" {
		return ordinal, opt, nil
	}
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		bad := func(want string) error {
			return fmt.Errorf("cuda: device %q: %s %q is not supported (%s)", spec, k, v, want)
		}
		switch k {
		case "precision":
			p, ok := map[string]Precision{"fp32": FP32, "tf32": TF32, "bf16": BF16}[v]
			if !ok {
				return 0, opt, bad("fp32, tf32 or bf16")
			}
			opt.Precision = p
		case "attention":
			if v != "fused" && v != "composed" {
				return 0, opt, bad("fused or composed")
			}
			opt.ComposedAttention = v == "composed"
		case "profile":
			if v != "0" && v != "1" {
				return 0, opt, bad("0 or 1")
			}
			opt.Profile = v == "1"
		default:
			return 0, opt, fmt.Errorf("cuda: device %q: unknown option %q (known: precision=fp32|tf32|bf16, attention=fused|composed, profile=0|1)", spec, kv)
		}
	}
	return ordinal, opt, nil
}

// storage is a device buffer of n float32s (its bucket's capacity).
type storage struct {
	ptr      uintptr
	n        int
	released bool
}

func (s *storage) Len() int { return s.n }

// driver is what Backend needs from a GPU; *device is the real one. The tests also
// run every method against a recording driver that checks each launch against the
// kernel signatures in kernels/, which needs no GPU.
type driver interface {
	alloc(bytes int) (uintptr, error)
	free(p uintptr) error
	memset32(p uintptr, v uint32, n int) error
	upload(p uintptr, src []float32) error
	download(dst []float32, p uintptr) (status uint32, err error)
	sync() (status uint32, err error)
	copy(dst, src uintptr, n int) error
	launch(name string, gx, gy, gz, bx, by int, a *args) error
	// gemm multiplies float32 operands, or with bf16 set operands x and y that hold
	// bfloat16 elements; c is float32 either way.
	gemm(g gemmPlan, tf32, bf16 bool, x, y, c uintptr, alpha, beta float32) error
	setTF32(on bool) error
	memInfo() (free, total int64, err error)
	smCount() int
	describe() string
	close()
}

// Backend is the CUDA backend for one GPU.
type Backend struct {
	d         driver
	name      string
	precision Precision
	composed  bool // attention=composed: FusesAttention reports false

	mu      sync.Mutex // guards everything below
	pool    map[int][]*storage
	inUse   int64 // bytes handed out
	cached  int64 // bytes held in the pool
	peak    int64 // most bytes held at once, in use plus cached
	peakUse int64 // most bytes in use at once
	mallocs int   // device allocations so far (the cache's misses)
	err     error // first asynchronous failure, reported by Sync
	closed  bool
}

// New opens GPU ordinal with float32 products.
func New(device int) (core.Backend, error) {
	b, err := open(device, Options{})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Open opens the device a string such as "cuda:1?precision=tf32" names (see
// ParseDevice).
func Open(spec string) (*Backend, error) {
	ordinal, opt, err := ParseDevice(spec)
	if err != nil {
		return nil, err
	}
	return open(ordinal, opt)
}

func open(ordinal int, opt Options) (*Backend, error) {
	d, err := openDevice(ordinal)
	if err != nil {
		return nil, err
	}
	src, err := kernelSource()
	if err == nil {
		err = d.compile(src, kernelNames)
	}
	if err != nil {
		d.close()
		return nil, err
	}
	b, err := newBackend(d, fmt.Sprintf("cuda:%d", ordinal), opt)
	if err != nil {
		d.close()
		return nil, err
	}
	return b, nil
}

func newBackend(d driver, name string, opt Options) (*Backend, error) {
	if opt.Profile {
		d = newProfiler(d)
	}
	b := &Backend{d: d, name: name, pool: map[int][]*storage{}, composed: opt.ComposedAttention}
	if err := b.SetPrecision(opt.Precision); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Backend) Name() string { return b.name }

// Device describes the GPU: its name and compute capability.
func (b *Backend) Device() string { return b.d.describe() }

// SetPrecision switches how later MatMuls multiply (see Precision). TF32 also sets
// CUBLAS_TF32_TENSOR_OP_MATH on the cuBLAS handle.
func (b *Backend) SetPrecision(p Precision) error {
	if p > BF16 {
		return fmt.Errorf("cuda: SetPrecision: unknown precision %d", p)
	}
	if err := b.d.setTF32(p == TF32); err != nil {
		return err
	}
	b.mu.Lock()
	b.precision = p
	b.mu.Unlock()
	return nil
}

// Precision is the current MatMul precision.
func (b *Backend) Precision() Precision {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.precision
}

// The host finds these methods by asserting core.DeviceMemory; a signature that
// drifted would silently turn off staging and the memory figures of `host bench`.
var _ core.DeviceMemory = (*Backend)(nil)

// PeakBytes is the most device memory the backend has held at once (in use plus
// cached), for `host bench`; PyTorch's torch.cuda.max_memory_reserved is the like.
func (b *Backend) PeakBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// PeakInUseBytes is the most device memory in tensors at once (bucket-rounded),
// PyTorch's torch.cuda.max_memory_allocated.
func (b *Backend) PeakInUseBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peakUse
}

// ResetPeak starts the peak counters afresh from what is held now, so a benchmark can
// measure its steady state after warm-up.
func (b *Backend) ResetPeak() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.peak, b.peakUse = b.inUse+b.cached, b.inUse
}

// MemoryInfo reports the device's free and total memory as the driver sees it.
func (b *Backend) MemoryInfo() (free, total int64, err error) { return b.d.memInfo() }

// EmptyCache frees every cached buffer (after waiting for queued work, which may still
// use them), returning the memory to the driver.
func (b *Backend) EmptyCache() error {
	if _, err := b.d.sync(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.emptyCacheLocked()
}

func (b *Backend) emptyCacheLocked() error {
	var first error
	for c, free := range b.pool {
		for _, s := range free {
			if err := b.d.free(s.ptr); err != nil && first == nil {
				first = err
			}
			b.cached -= int64(4 * s.n)
		}
		delete(b.pool, c)
	}
	return first
}

// Close waits for queued work, frees the cache and releases the GPU. Tensors still
// allocated must not be used afterwards; their memory goes with the context.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	err := b.EmptyCache()
	b.d.close()
	return err
}

// bucket rounds a size up to one of eight steps per power of two, so a buffer is at
// most 12.5% larger than asked for and similar sizes share a free list.
func bucket(n int) int {
	if n <= 256 {
		return 256
	}
	p := 1
	for p*2 <= n {
		p *= 2
	}
	step := p / 8
	return (n + step - 1) / step * step
}

// maxElements bounds one tensor (16 GiB of float32), so a corrupt shape fails with a
// message instead of asking the driver for absurd amounts.
const maxElements = 1 << 32

func (b *Backend) fail(err error) {
	if err == nil {
		return
	}
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

// Alloc returns a zero-filled tensor.
func (b *Backend) Alloc(shape core.Shape) *core.Tensor {
	t := b.AllocUninit(shape)
	if err := b.d.memset32(b.p(t, "Alloc"), 0, t.Size()); err != nil {
		b.fail(err)
	}
	return t
}

// AllocUninit is Alloc without the zero fill (core.UninitAllocator), for outputs and
// scratch written in full before they are read.
func (b *Backend) AllocUninit(shape core.Shape) *core.Tensor {
	n, err := shape.SizeWithin(maxElements)
	if err != nil {
		panic("cuda: Alloc: " + err.Error())
	}
	c := bucket(max(n, 1))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		panic("cuda: Alloc after Close")
	}
	var s *storage
	if free := b.pool[c]; len(free) > 0 {
		s = free[len(free)-1]
		b.pool[c] = free[:len(free)-1]
		b.cached -= int64(4 * c)
		s.released = false
	} else {
		p, err := b.d.alloc(4 * c)
		if err != nil {
			// Out of memory with buffers of other sizes cached: give those back and
			// try once more.
			if _, serr := b.d.sync(); serr == nil && b.emptyCacheLocked() == nil {
				p, err = b.d.alloc(4 * c)
			}
		}
		if err != nil {
			panic(fmt.Sprintf("cuda: Alloc %v: %d bytes: %v (%d bytes in use)", shape, 4*c, err, b.inUse))
		}
		b.mallocs++
		s = &storage{ptr: p, n: c}
	}
	b.inUse += int64(4 * c)
	b.peak = max(b.peak, b.inUse+b.cached)
	b.peakUse = max(b.peakUse, b.inUse)
	return core.NewTensor(b, s, shape, core.Float32)
}

func (b *Backend) Release(t *core.Tensor) {
	s := b.st(t, "Release")
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.released {
		panic(fmt.Sprintf("cuda: Release: storage of %v was already released", t.Shape()))
	}
	s.released = true
	b.pool[s.n] = append(b.pool[s.n], s)
	b.inUse -= int64(4 * s.n)
	b.cached += int64(4 * s.n)
}

// st returns t's storage, panicking with the op's name if t is not this backend's.
func (b *Backend) st(t *core.Tensor, op string) *storage {
	if t == nil {
		panic(fmt.Sprintf("cuda: %s: nil tensor", op))
	}
	s, ok := t.Storage().(*storage)
	if !ok || t.Backend() != core.Backend(b) {
		panic(fmt.Sprintf("cuda: %s: tensor %v belongs to backend %s", op, t.Shape(), t.Backend().Name()))
	}
	return s
}

// p is t's device address; nil tensors pass as null for the kernels' optional
// arguments.
func (b *Backend) p(t *core.Tensor, op string) uintptr {
	if t == nil {
		return 0
	}
	return b.st(t, op).ptr
}

func (b *Backend) Upload(dst *core.Tensor, src []float32) {
	if len(src) != dst.Size() {
		panic(fmt.Sprintf("cuda: Upload: %d values for a tensor of shape %v", len(src), dst.Shape()))
	}
	b.fail(b.d.upload(b.p(dst, "Upload"), src))
}

// Download copies src to the host after all queued work. An earlier asynchronous
// failure or a bad index found by a kernel panics here, since the results would be
// wrong; Sync reports the same as an error.
func (b *Backend) Download(dst []float32, src *core.Tensor) {
	if len(dst) != src.Size() {
		panic(fmt.Sprintf("cuda: Download: %d slots for a tensor of shape %v", len(dst), src.Shape()))
	}
	status, err := b.d.download(dst, b.p(src, "Download"))
	b.fail(err)
	b.fail(statusError(status))
	if err := b.takeErr(); err != nil {
		panic(fmt.Sprintf("cuda: Download: %v", err))
	}
}

// Sync waits for queued work and reports the first failure since the last Sync.
func (b *Backend) Sync() error {
	status, err := b.d.sync()
	b.fail(err)
	b.fail(statusError(status))
	return b.takeErr()
}

func (b *Backend) takeErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.err
	b.err = nil
	return err
}

// DefersIndexChecks marks the backend as checking indices and labels in its kernels
// (kd_status), so autograd does not download them to check before each use.
func (b *Backend) DefersIndexChecks() {}

// statusNames decodes the kernels' kd_status bits (ST_* in kernels/common.cuh).
var statusNames = []string{
	"Gather: an index is not an integer in [0, axis size)",
	"ScatterAdd: an index is not an integer in [0, axis size)",
	"CrossEntropy: a label is not an integer in [0, classes)",
}

func statusError(status uint32) error {
	if status == 0 {
		return nil
	}
	var msgs []string
	for i, m := range statusNames {
		if status&(1<<i) != 0 {
			msgs = append(msgs, m)
		}
	}
	return errors.New("cuda: " + strings.Join(msgs, "; "))
}

// launch runs a one-dimensional grid-stride kernel over n elements.
func (b *Backend) launch(name string, n int, a *args) {
	if n == 0 {
		return
	}
	b.fail(b.d.launch(name, elementGrid(n), 1, 1, threads, 1, a))
}

// Every op checks its shapes before launching: a kernel that strays outside a buffer
// does not fail alone but poisons the whole CUDA context, so a shape bug must stop at
// the host with a message naming the op.

func sameSize(op string, a, b *core.Tensor) {
	if a.Size() != b.Size() {
		panic(fmt.Sprintf("cuda: %s: sizes differ: %v and %v", op, a.Shape(), b.Shape()))
	}
}

func sameShape(op string, a, b *core.Tensor) {
	if !a.Shape().Equal(b.Shape()) {
		panic(fmt.Sprintf("cuda: %s: shapes differ: %v and %v", op, a.Shape(), b.Shape()))
	}
}

// Split sums aim for this many blocks per SM (see splitPlan).
const blocksPerSM = 4
