//go:build cuda

// Package cuda is kadapt's GPU backend: core.Backend on NVIDIA GPUs, built only with
// the `cuda` build tag so the default build stays pure Go.
//
// Products go through cuBLAS (strided-batched SGEMM, TF32 tensor cores on request);
// every other op is a kernel from kernels/kernels.cu, compiled at start-up by NVRTC
// (gorgonia.org/cu/nvrtc) for the GPU's exact architecture. The driver API and cuBLAS
// are reached through a thin cgo layer of our own rather than gorgonia.org/cu's root
// package, whose package init calls cuInit and exits the process when that fails: with
// our layer a binary built with -tags cuda still starts on a machine without a GPU and
// says what is missing. docs/cuda.md has the reasons at length.
//
// Memory comes from a size-bucketed caching allocator: Release returns a buffer to its
// bucket, so a steady-state training step makes no device allocation. All work is
// queued on one stream; Download and Sync wait for it.
package cuda

import (
	"embed"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"gorgonia.org/cu/nvrtc"

	"github.com/kadapt/kadapt/core"
)

//go:embed kernels/kernels.cu
var kernelSource embed.FS

var kernelNames = []string{"k_fill", "k_axpby", "k_binary", "k_unary", "k_unary_grad", "k_reduce", "k_permute",
	"k_copy_along", "k_gather", "k_scatter_add", "k_softmax", "k_softmax_grad", "k_cross_entropy", "k_bce",
	"k_layer_norm", "k_layer_norm_grad", "k_dropout", "k_sum_squares", "k_scale_by", "k_sgd", "k_adamw"}

func init() {
	core.RegisterBackend("cuda", func(device string) (core.Backend, error) { return Open(device) })
}

// storage is a device buffer.
type storage struct {
	ptr uintptr
	n   int // capacity in elements
}

func (s *storage) Len() int { return s.n }

// Backend is the CUDA backend.
type Backend struct {
	d      *device
	name   string
	mu     sync.Mutex
	pool   map[int][]*storage // free buffers by capacity
	inUse  int64              // bytes handed out
	cached int64              // bytes held in the pool
	peak   int64
	err    error // first asynchronous failure, reported by Sync
}

// Open parses "cuda", "cuda:N" and an optional "?precision=fp32|tf32".
func Open(spec string) (*Backend, error) {
	dev, query, _ := strings.Cut(spec, "?")
	ordinal := 0
	if _, n, ok := strings.Cut(dev, ":"); ok {
		v, err := strconv.Atoi(n)
		if err != nil {
			return nil, fmt.Errorf("cuda: device %q: want cuda or cuda:N", spec)
		}
		ordinal = v
	}
	d, err := openDevice(ordinal)
	if err != nil {
		return nil, err
	}
	src, _ := kernelSource.ReadFile("kernels/kernels.cu")
	ptx, err := compile(string(src), d.major, d.minor)
	if err != nil {
		return nil, err
	}
	if err := d.loadPTX(ptx); err != nil {
		return nil, err
	}
	b := &Backend{d: d, name: fmt.Sprintf("cuda:%d", ordinal), pool: map[int][]*storage{}}
	for _, kv := range strings.Split(query, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "precision" && v == "tf32":
			if err := d.setTF32(true); err != nil {
				return nil, err
			}
		case k == "precision" && v == "fp32":
		case k == "precision":
			return nil, fmt.Errorf("cuda: precision %q is not supported (fp32 or tf32; bf16 autocast is not implemented)", v)
		default:
			return nil, fmt.Errorf("cuda: unknown device option %q", kv)
		}
	}
	return b, nil
}

// compile turns the kernel source into PTX for compute capability major.minor.
func compile(src string, major, minor int) (string, error) {
	prog, err := nvrtc.CreateProgram(src, "kadapt_kernels.cu")
	if err != nil {
		return "", fmt.Errorf("cuda: nvrtc: %v", err)
	}
	defer prog.Destroy()
	arch := fmt.Sprintf("--gpu-architecture=compute_%d%d", major, minor)
	if err := prog.Compile(arch, "--use_fast_math=false", "-default-device"); err != nil {
		log, _ := prog.GetLog()
		return "", fmt.Errorf("cuda: compiling kernels for %s: %v\n%s", arch, err, log)
	}
	return prog.GetPTX()
}

func (b *Backend) Name() string { return b.name }

// PeakBytes is the most device memory the backend has held at once (in use plus
// cached), for `host bench`.
func (b *Backend) PeakBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
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

func (b *Backend) fail(err error) {
	if err != nil && b.err == nil {
		b.err = err
	}
}

func (b *Backend) Alloc(shape core.Shape) *core.Tensor {
	n := shape.Size()
	c := bucket(max(n, 1))
	b.mu.Lock()
	var s *storage
	if free := b.pool[c]; len(free) > 0 {
		s = free[len(free)-1]
		b.pool[c] = free[:len(free)-1]
		b.cached -= int64(4 * c)
	}
	b.mu.Unlock()
	b.fail(b.d.bind())
	if s == nil {
		p, err := b.d.alloc(4 * c)
		if err != nil {
			panic(fmt.Sprintf("cuda: allocating %d bytes: %v", 4*c, err))
		}
		s = &storage{ptr: p, n: c}
	}
	b.mu.Lock()
	b.inUse += int64(4 * c)
	b.peak = max(b.peak, b.inUse+b.cached)
	b.mu.Unlock()
	b.fail(b.d.zero(s.ptr, c))
	return core.NewTensor(b, s, shape, core.Float32)
}

func (b *Backend) Release(t *core.Tensor) {
	s := b.st(t)
	b.mu.Lock()
	b.pool[s.n] = append(b.pool[s.n], s)
	b.inUse -= int64(4 * s.n)
	b.cached += int64(4 * s.n)
	b.mu.Unlock()
}

func (b *Backend) st(t *core.Tensor) *storage {
	s, ok := t.Storage().(*storage)
	if !ok || t.Backend() != core.Backend(b) {
		panic(fmt.Sprintf("cuda: tensor %v belongs to backend %s", t.Shape(), t.Backend().Name()))
	}
	return s
}

func (b *Backend) p(t *core.Tensor) uintptr {
	if t == nil {
		return 0
	}
	return b.st(t).ptr
}

func (b *Backend) Upload(dst *core.Tensor, src []float32) {
	b.fail(b.d.bind())
	b.fail(b.d.upload(b.p(dst), src))
}

func (b *Backend) Download(dst []float32, src *core.Tensor) {
	b.fail(b.d.bind())
	if err := b.d.download(dst, b.p(src)); err != nil {
		panic(err)
	}
}

func (b *Backend) Sync() error {
	b.fail(b.d.bind())
	b.fail(b.d.sync())
	err := b.err
	b.err = nil
	return err
}

const threads = 256

func grid(n int) int { return max(1, min((n+threads-1)/threads, 65535)) }

func (b *Backend) run(name string, n int, a *args) {
	b.fail(b.d.bind())
	b.fail(b.d.launch(name, grid(n), threads, a))
}

// rows launches one block per row.
func (b *Backend) rows(name string, rows int, a *args) {
	b.fail(b.d.bind())
	b.fail(b.d.launch(name, rows, threads, a))
}

func (b *Backend) Fill(dst *core.Tensor, v float32) {
	n := dst.Size()
	b.run("k_fill", n, new(args).ptr(b.p(dst)).f32(v).i64(n))
}

func (b *Backend) Copy(dst, src *core.Tensor) {
	b.fail(b.d.bind())
	b.fail(b.d.copy(b.p(dst), b.p(src), src.Size()))
}

func (b *Backend) Axpby(dst *core.Tensor, alpha float32, x *core.Tensor, beta float32) {
	n := dst.Size()
	b.run("k_axpby", n, new(args).ptr(b.p(dst)).f32(alpha).ptr(b.p(x)).f32(beta).i64(n))
}

// MatMul maps row-major products onto column-major cuBLAS: C = A·B is Cᵀ = Bᵀ·Aᵀ, so
// B goes first. An operand without batch axes is shared through a zero stride.
func (b *Backend) MatMul(dst, a, bm *core.Tensor, transA, transB bool, alpha, beta float32) {
	ds, as, bs := dst.Shape(), a.Shape(), bm.Shape()
	m, n := ds[len(ds)-2], ds[len(ds)-1]
	k := as[len(as)-1]
	if transA {
		k = as[len(as)-2]
	}
	batch := ds.Size() / (m * n)
	stride := func(s core.Shape) int64 {
		if len(s) == 2 || s.Size() == s[len(s)-2]*s[len(s)-1] {
			return 0
		}
		return int64(s[len(s)-2] * s[len(s)-1])
	}
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	b.fail(b.d.bind())
	b.fail(b.d.gemm(transB, transA, n, m, k, alpha, b.p(bm), ldb, stride(bs), b.p(a), lda, stride(as),
		beta, b.p(dst), n, int64(m*n), batch))
}

func (b *Backend) Binary(op core.BinaryOp, dst, a, bt *core.Tensor) {
	out := dst.Shape()
	n := out.Size()
	b.run("k_binary", n, new(args).i32(int(op)).ptr(b.p(dst)).ptr(b.p(a)).ptr(b.p(bt)).
		idx(out, core.BroadcastStrides(a.Shape(), out), core.BroadcastStrides(bt.Shape(), out)).i64(n))
}

func (b *Backend) Unary(op core.UnaryOp, dst, x *core.Tensor) {
	n := dst.Size()
	b.run("k_unary", n, new(args).i32(int(op)).ptr(b.p(dst)).ptr(b.p(x)).i64(n))
}

func (b *Backend) UnaryGrad(op core.UnaryOp, dx, x, dy *core.Tensor, accumulate bool) {
	n := dx.Size()
	b.run("k_unary_grad", n, new(args).i32(int(op)).ptr(b.p(dx)).ptr(b.p(x)).ptr(b.p(dy)).i64(n).i32(int(boolInt(accumulate))))
}

func (b *Backend) Reduce(op core.ReduceOp, dst, x *core.Tensor, accumulate bool) {
	xs, ds := x.Shape(), dst.Shape()
	red := make([]int, len(xs))
	inner := 1
	for i := range xs {
		red[i] = 1
		if ds[i] == 1 && xs[i] != 1 {
			red[i] = xs[i]
			inner *= xs[i]
		}
	}
	n := ds.Size()
	b.run("k_reduce", n, new(args).i32(int(op)).ptr(b.p(dst)).ptr(b.p(x)).idx(ds, xs.Strides(), red).i64(n).i64(inner).i32(int(boolInt(accumulate))))
}

func (b *Backend) Permute(dst, x *core.Tensor, perm []int) {
	xst := x.Shape().Strides()
	st := make([]int, len(perm))
	for i, p := range perm {
		st[i] = xst[p]
	}
	n := dst.Size()
	b.run("k_permute", n, new(args).ptr(b.p(dst)).ptr(b.p(x)).idx(dst.Shape(), st, nil).i64(n))
}

func split(s core.Shape, axis int) (outer, inner int) {
	outer, inner = 1, 1
	for i := 0; i < axis; i++ {
		outer *= s[i]
	}
	for i := axis + 1; i < len(s); i++ {
		inner *= s[i]
	}
	return
}

func (b *Backend) CopyAlong(dst, src *core.Tensor, axis, dstOff, srcOff, n int, accumulate bool) {
	outer, inner := split(dst.Shape(), axis)
	b.run("k_copy_along", outer*n*inner, new(args).ptr(b.p(dst)).ptr(b.p(src)).i64(outer).i64(dst.Shape()[axis]).
		i64(src.Shape()[axis]).i64(dstOff).i64(srcOff).i64(n).i64(inner).i32(int(boolInt(accumulate))))
}

func (b *Backend) Gather(dst, x, idx *core.Tensor, axis int) {
	outer, inner := split(x.Shape(), axis)
	cnt := dst.Shape()[axis]
	b.run("k_gather", outer*cnt*inner, new(args).ptr(b.p(dst)).ptr(b.p(x)).ptr(b.p(idx)).i64(outer).i64(x.Shape()[axis]).i64(cnt).i64(inner))
}

func (b *Backend) ScatterAdd(dst, src, idx *core.Tensor, axis int) {
	outer, inner := split(dst.Shape(), axis)
	cnt := src.Shape()[axis]
	b.run("k_scatter_add", outer*cnt*inner, new(args).ptr(b.p(dst)).ptr(b.p(src)).ptr(b.p(idx)).i64(outer).i64(dst.Shape()[axis]).i64(cnt).i64(inner))
}

func lastAxis(t *core.Tensor) (rows, cols int) {
	s := t.Shape()
	cols = 1
	if len(s) > 0 {
		cols = s[len(s)-1]
	}
	return t.Size() / max(cols, 1), cols
}

func (b *Backend) softmax(mode int, dst, x *core.Tensor) {
	rows, cols := lastAxis(x)
	b.rows("k_softmax", rows, new(args).i32(mode).ptr(b.p(dst)).ptr(b.p(x)).i64(cols))
}

func (b *Backend) softmaxGrad(mode int, dx, y, dy *core.Tensor, accumulate bool) {
	rows, cols := lastAxis(y)
	b.rows("k_softmax_grad", rows, new(args).i32(mode).ptr(b.p(dx)).ptr(b.p(y)).ptr(b.p(dy)).i64(cols).i32(int(boolInt(accumulate))))
}

func (b *Backend) Softmax(dst, x *core.Tensor)    { b.softmax(0, dst, x) }
func (b *Backend) LogSoftmax(dst, x *core.Tensor) { b.softmax(1, dst, x) }
func (b *Backend) SoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	b.softmaxGrad(0, dx, y, dy, accumulate)
}
func (b *Backend) LogSoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	b.softmaxGrad(1, dx, y, dy, accumulate)
}

func (b *Backend) CrossEntropy(loss, dlogits, logits, labels *core.Tensor, smoothing float32) {
	rows, cols := lastAxis(logits)
	b.Fill(loss, 0)
	b.rows("k_cross_entropy", rows, new(args).ptr(b.p(loss)).ptr(b.p(dlogits)).ptr(b.p(logits)).ptr(b.p(labels)).
		i64(cols).f32(smoothing).f32(1/float32(rows)))
}

func (b *Backend) BCEWithLogits(loss, dlogits, logits, targets *core.Tensor) {
	n := logits.Size()
	b.Fill(loss, 0)
	b.run("k_bce", n, new(args).ptr(b.p(loss)).ptr(b.p(dlogits)).ptr(b.p(logits)).ptr(b.p(targets)).i64(n).f32(1/float32(n)))
}

func (b *Backend) LayerNorm(dst, mean, rstd, x, gamma, beta *core.Tensor, eps float32) {
	rows, cols := lastAxis(x)
	b.rows("k_layer_norm", rows, new(args).ptr(b.p(dst)).ptr(b.p(mean)).ptr(b.p(rstd)).ptr(b.p(x)).ptr(b.p(gamma)).
		ptr(b.p(beta)).i64(cols).f32(eps))
}

func (b *Backend) LayerNormGrad(dx, dgamma, dbeta, dy, x, mean, rstd, gamma *core.Tensor, accumulate bool) {
	rows, cols := lastAxis(x)
	b.rows("k_layer_norm_grad", rows, new(args).ptr(b.p(dx)).ptr(b.p(dgamma)).ptr(b.p(dbeta)).ptr(b.p(dy)).ptr(b.p(x)).
		ptr(b.p(mean)).ptr(b.p(rstd)).ptr(b.p(gamma)).i64(cols).i32(int(boolInt(accumulate))))
}

func (b *Backend) Dropout(dst, mask, x *core.Tensor, p float32, seed uint64) {
	n := x.Size()
	b.run("k_dropout", n, new(args).ptr(b.p(dst)).ptr(b.p(mask)).ptr(b.p(x)).f32(p).u64(seed).i64(n))
}

func (b *Backend) SumSquares(dst, x *core.Tensor, accumulate bool) {
	if !accumulate {
		b.Fill(dst, 0)
	}
	n := x.Size()
	b.run("k_sum_squares", n, new(args).ptr(b.p(dst)).ptr(b.p(x)).i64(n))
}

func (b *Backend) ScaleBy(dst, s *core.Tensor, alpha float32) {
	n := dst.Size()
	b.run("k_scale_by", n, new(args).ptr(b.p(dst)).ptr(b.p(s)).f32(alpha).i64(n))
}

func (b *Backend) SGDStep(param, grad, mom *core.Tensor, lr, momentum, weightDecay float32, nesterov, first bool) {
	n := param.Size()
	b.run("k_sgd", n, new(args).ptr(b.p(param)).ptr(b.p(grad)).ptr(b.p(mom)).f32(lr).f32(momentum).f32(weightDecay).
		i32(int(boolInt(nesterov))).i32(int(boolInt(first))).i64(n))
}

func (b *Backend) AdamWStep(param, grad, m, v *core.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int) {
	n := param.Size()
	bc1 := 1 - float32(pow(float64(beta1), step))
	bc2 := 1 - float32(pow(float64(beta2), step))
	b.run("k_adamw", n, new(args).ptr(b.p(param)).ptr(b.p(grad)).ptr(b.p(m)).ptr(b.p(v)).f32(lr).f32(beta1).f32(beta2).
		f32(eps).f32(weightDecay).f32(bc1).f32(bc2).i64(n))
}

func pow(x float64, n int) float64 {
	r := 1.0
	for i := 0; i < n; i++ {
		r *= x
	}
	return r
}
