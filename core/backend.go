package core

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// BinaryOp selects the elementwise function of Backend.Binary.
type BinaryOp uint8

const (
	Add     BinaryOp = iota // a + b
	Sub                     // a - b
	Mul                     // a * b
	Div                     // a / b
	Maximum                 // max(a, b)
	Equal                   // 1 where a == b, else 0 (no gradient)
)

func (op BinaryOp) String() string {
	return [...]string{"add", "sub", "mul", "div", "maximum", "equal"}[op]
}

// UnaryOp selects the elementwise function of Backend.Unary and Backend.UnaryGrad.
type UnaryOp uint8

const (
	Neg       UnaryOp = iota // -x
	Exp                      // e^x
	Log                      // ln x
	Sqrt                     // √x
	Rsqrt                    // 1/√x
	Square                   // x²
	Abs                      // |x|
	ReLU                     // max(x, 0); gradient 0 at 0
	GELU                     // exact: x·Φ(x) = 0.5·x·(1+erf(x/√2))
	QuickGELU                // x·σ(QuickGELUCoef·x), CLIP's activation
	SiLU                     // x·σ(x)
	Sigmoid                  // σ(x) = 1/(1+e^-x)
	Tanh                     // tanh x
)

// QuickGELUCoef is the slope inside QuickGELU's sigmoid, x·σ(1.702·x): CLIP's fit of
// σ(a·x) to Φ(x). Every backend reads it from here (the CUDA kernels and the CPU
// assembly, which cannot import Go, repeat the literal and name this constant).
const QuickGELUCoef = 1.702

func (op UnaryOp) String() string {
	return [...]string{"neg", "exp", "log", "sqrt", "rsqrt", "square", "abs", "relu", "gelu",
		"quick_gelu", "silu", "sigmoid", "tanh"}[op]
}

// ReduceOp selects the function of Backend.Reduce.
type ReduceOp uint8

const (
	ReduceSum ReduceOp = iota
	ReduceMax
)

// Backend is a compute engine. Every op writes into a destination tensor allocated by
// the same backend; unless stated otherwise destinations must not alias inputs. All
// tensors are contiguous and row-major. Arithmetic is float32 (the reference backend
// computes in float64 and rounds at Download).
//
// Shapes are checked by the caller (core/autograd); a backend may panic on a mismatch.
type Backend interface {
	// Name identifies the backend ("cpu", "ref", "cuda:0").
	Name() string

	// Alloc returns a zero-filled float32 tensor. Backends pool storage, so an
	// Alloc after a Release of the same size costs no allocation.
	Alloc(shape Shape) *Tensor
	// Release hands t's storage back to the pool. Neither t nor any view of it may be
	// used afterwards.
	Release(t *Tensor)
	// Upload copies len(src) == dst.Size() host values into dst.
	Upload(dst *Tensor, src []float32)
	// Download copies src into dst (len(dst) == src.Size()), waiting for pending work.
	Download(dst []float32, src *Tensor)
	// Sync waits for all queued work and reports any asynchronous failure.
	Sync() error

	// Fill sets every element of dst to v.
	Fill(dst *Tensor, v float32)
	// Copy copies src into dst; the sizes must match, the shapes need not.
	Copy(dst, src *Tensor)
	// Axpby computes dst = alpha·x + beta·dst elementwise (same sizes). With beta = 0
	// dst's old contents are ignored, even NaN.
	Axpby(dst *Tensor, alpha float32, x *Tensor, beta float32)

	// MatMul computes dst = alpha·op(a)·op(b) + beta·dst where op transposes the last
	// two axes when the flag is set. a is [..., m, k] (or [..., k, m] transposed), b is
	// [..., k, n] (or [..., n, k]); dst is [..., m, n]. Leading (batch) axes of a and b
	// must either equal dst's or be absent, in which case that operand is shared by
	// every batch entry. With beta = 0 dst's old contents are ignored.
	MatMul(dst, a, b *Tensor, transA, transB bool, alpha, beta float32)

	// Binary computes dst = op(a, b) with NumPy broadcasting: shapes are aligned at the
	// right and size-1 axes stretch. dst has the broadcast shape.
	Binary(op BinaryOp, dst, a, b *Tensor)
	// Unary computes dst = op(x) elementwise. dst may alias x.
	Unary(op UnaryOp, dst, x *Tensor)
	// UnaryGrad computes dx = op'(x)·dy, or adds it into dx when accumulate is set.
	UnaryGrad(op UnaryOp, dx, x, dy *Tensor, accumulate bool)
	// Reduce reduces x over every axis where dst has size 1 and x does not; dst has
	// x's rank. dst = op over those axes, or dst += the sum when accumulate is set
	// (accumulate is only valid with ReduceSum). Reducing to a broadcast operand's shape
	// is how autograd undoes broadcasting.
	Reduce(op ReduceOp, dst, x *Tensor, accumulate bool)

	// Permute writes x with its axes reordered: dst axis i is x axis perm[i].
	Permute(dst, x *Tensor, perm []int)
	// CopyAlong copies the block src[..., srcOff:srcOff+n, ...] along axis into
	// dst[..., dstOff:dstOff+n, ...] (adding instead when accumulate is set). All other
	// axes must match. Slice, concatenation and their gradients are built from it.
	CopyAlong(dst, src *Tensor, axis, dstOff, srcOff, n int, accumulate bool)
	// Gather writes dst[..., i, ...] = x[..., idx[i], ...] along axis. idx holds
	// integral values stored as float32, one per dst position on that axis.
	Gather(dst, x, idx *Tensor, axis int)
	// ScatterAdd adds src[..., i, ...] into dst[..., idx[i], ...] along axis: the
	// gradient of Gather. Repeated indices accumulate.
	ScatterAdd(dst, src, idx *Tensor, axis int)

	// Softmax normalises over the last axis: dst = exp(x - max) / Σ exp(x - max).
	Softmax(dst, x *Tensor)
	// SoftmaxGrad computes dx (+)= y·(dy - Σ dy·y) over the last axis, y = Softmax(x).
	SoftmaxGrad(dx, y, dy *Tensor, accumulate bool)
	// LogSoftmax computes dst = x - max - log Σ exp(x - max) over the last axis.
	LogSoftmax(dst, x *Tensor)
	// LogSoftmaxGrad computes dx (+)= dy - exp(y)·Σ dy over the last axis, y = LogSoftmax(x).
	LogSoftmaxGrad(dx, y, dy *Tensor, accumulate bool)

	// CrossEntropy takes logits [N, C] and integral labels [N] and writes the mean
	// over rows of -Σ_c q_c·log softmax(logits)_c into loss [1], where q is the one-hot
	// label smoothed as q = (1-s)·onehot + s/C. It also writes dlogits [N, C], the
	// gradient of that mean loss: (softmax - q)/N.
	CrossEntropy(loss, dlogits, logits, labels *Tensor, smoothing float32)
	// BCEWithLogits takes logits and targets of equal shape [N, C] (targets in [0, 1])
	// and writes the mean over all N·C elements of
	// max(x,0) - x·t + log(1 + e^-|x|) into loss [1] and its gradient (σ(x) - t)/(N·C)
	// into dlogits.
	BCEWithLogits(loss, dlogits, logits, targets *Tensor)

	// LayerNorm normalises x [..., D] over its last axis: dst = (x-μ)·rstd·γ + β with
	// rstd = 1/√(var+eps), the biased variance. gamma and beta [D] may be nil (no
	// affine). mean and rstd [rows] receive the statistics for LayerNormGrad.
	LayerNorm(dst, mean, rstd, x, gamma, beta *Tensor, eps float32)
	// LayerNormGrad computes dx (+)= ∂L/∂x (accumulate applies to dx only) and adds
	// ∂L/∂γ and ∂L/∂β into dgamma and dbeta. dgamma and dbeta may be nil (frozen or no
	// affine); gamma may be nil (no affine).
	LayerNormGrad(dx, dgamma, dbeta, dy, x, mean, rstd, gamma *Tensor, accumulate bool)

	// Dropout zeroes each element with probability p and scales survivors by 1/(1-p):
	// dst = x·mask, mask ∈ {0, 1/(1-p)}, with element i kept iff DropoutUniform(seed, i) >= p.
	// The mask is written so the backward pass is a Binary Mul. dst may alias x.
	Dropout(dst, mask, x *Tensor, p float32, seed uint64)

	// SumSquares writes Σ x² into dst [1], or adds it when accumulate is set (for
	// global-norm gradient clipping across many tensors).
	SumSquares(dst, x *Tensor, accumulate bool)
	// ScaleBy multiplies every element of dst by the scalar held in s [1] times alpha,
	// so gradient clipping needs no host round-trip.
	ScaleBy(dst, s *Tensor, alpha float32)

	// SGDStep updates param in place from grad with heavy-ball momentum buffer mom
	// (nil when momentum == 0), PyTorch's semantics:
	//   g = grad + wd·param; mom = momentum·mom + g (the first step sets mom = g);
	//   step = g + momentum·mom if nesterov else mom; param -= lr·step.
	// first marks the first step for this parameter.
	SGDStep(param, grad, mom *Tensor, lr, momentum, weightDecay float32, nesterov, first bool)
	// AdamWStep updates param in place, PyTorch's AdamW with decoupled weight decay:
	//   param -= lr·wd·param; m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;
	//   param -= lr · (m/(1-β1^t)) / (√(v/(1-β2^t)) + eps), t = step (1-based).
	AdamWStep(param, grad, m, v *Tensor, lr, beta1, beta2, eps, weightDecay float32, step int)
}

// UninitAllocator is implemented by backends that can hand out a tensor without
// Alloc's zero fill, for outputs the caller overwrites entirely before reading: on a
// GPU the fill is a full write pass over memory.
type UninitAllocator interface {
	AllocUninit(shape Shape) *Tensor
}

// AllocUninit is b.AllocUninit where b has it and b.Alloc otherwise. The contents are
// unspecified.
func AllocUninit(b Backend, shape Shape) *Tensor {
	if u, ok := b.(UninitAllocator); ok {
		return u.AllocUninit(shape)
	}
	return b.Alloc(shape)
}

// DeviceMemory is implemented by backends with memory of their own (cuda): what the
// device has free, for deciding whether a data set fits on it, and the backend's own
// peak use, for benchmarks.
type DeviceMemory interface {
	// MemoryInfo reports the device's free and total bytes as its driver sees them.
	MemoryInfo() (free, total int64, err error)
	PeakBytes() int64      // most bytes held at once: in tensors plus the allocator's cache
	PeakInUseBytes() int64 // most bytes in tensors at once
	ResetPeak()            // restart both peaks from what is held now
}

// DeferredIndexChecks is implemented by backends whose kernels check Gather and
// ScatterAdd indices and CrossEntropy labels themselves and report bad ones at the next
// Sync or Download. Callers then skip their own host-side check, which would download
// the indices and stall an asynchronous device in the middle of a training step.
type DeferredIndexChecks interface{ DefersIndexChecks() }

// FusedAttention is implemented by backends with a fused multi-head self-attention
// kernel. q, k, v and out are [N, L, H·D]: head h owns columns h·D to (h+1)·D, the
// layout the q, k and v projections produce, so no head permutes are needed. probs
// [N, H, L, L] receives softmax(q_h·k_hᵀ·scale + mask) (the causal mask is -inf
// above the diagonal) and is what the backward pass needs. autograd's
// MultiHeadAttention composes the same function from the basic ops on other backends,
// and where FusesAttention reports false (a device option, so that the two paths can
// be timed against each other).
type FusedAttention interface {
	FusesAttention() bool
	AttentionForward(out, probs, q, k, v *Tensor, heads int, causal bool, scale float32)
	// AttentionBackward writes (or with the matching accumulate flag adds) the
	// gradients; dq, dk or dv may be nil when not wanted.
	AttentionBackward(dq, dk, dv, dout, q, k, v, probs *Tensor, heads int, scale float32, accQ, accK, accV bool)
}

// AttentionShapes checks the operands of a FusedAttention call, q, k, v and the
// others given (nil ones skipped) [N, L, H·D] and probs [N, H, L, L], and returns N, L
// and D. It panics naming the backend and op otherwise.
func AttentionShapes(backend, op string, probs *Tensor, heads int, qkv ...*Tensor) (n, l, d int) {
	s := qkv[0].Shape()
	if len(s) != 3 || heads <= 0 || s[2]%heads != 0 {
		panic(fmt.Sprintf("%s: %s: q %v with %d heads, want [N, L, H·D]", backend, op, s, heads))
	}
	for _, t := range qkv[1:] {
		if t != nil && !t.Shape().Equal(s) {
			panic(fmt.Sprintf("%s: %s: operand %v differs from q %v", backend, op, t.Shape(), s))
		}
	}
	n, l, d = s[0], s[1], s[2]/heads
	if !probs.Shape().Equal(Shape{n, heads, l, l}) {
		panic(fmt.Sprintf("%s: %s: probs %v, want [%d, %d, %d, %d]", backend, op, probs.Shape(), n, heads, l, l))
	}
	return n, l, d
}

// FusedEpilogues is implemented by backends with fused kernels for two sequences of
// a transformer block; autograd uses them where the backend has them and composes the
// same results from the basic ops elsewhere.
type FusedEpilogues interface {
	// BiasActivation adds bias [F] to every row of pre [..., F] in place and writes
	// op(pre) to dst: a linear layer's bias and activation in one pass.
	BiasActivation(op UnaryOp, dst, pre, bias *Tensor)
	// AddLayerNorm writes sum = x + r and LayerNorm(sum) into dst, mean and rstd as
	// LayerNorm does: a residual join and the next layer norm in one pass.
	AddLayerNorm(sum, dst, mean, rstd, x, r, gamma, beta *Tensor, eps float32)
}

// BiasedMatMul is implemented by backends whose matrix product adds a bias row as it
// writes its output, so that a linear layer's bias costs no pass of its own; autograd
// uses it where the backend has it and otherwise writes the bias first and accumulates
// the product onto it, which gives the same values.
type BiasedMatMul interface {
	// MatMulBias is MatMul with bias [n] added to every row of dst [..., m, n]:
	// dst = alpha·op(a)·op(b) + beta·dst + bias.
	MatMulBias(dst, a, b, bias *Tensor, transA, transB bool, alpha, beta float32)
}

// BroadcastShape returns the NumPy broadcast of a and b.
func BroadcastShape(a, b Shape) (Shape, error) {
	n := max(len(a), len(b))
	out := make(Shape, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// BroadcastStrides returns strides for reading a tensor of shape s as if it had the
// broadcast shape out: stride 0 on stretched or missing axes.
func BroadcastStrides(s, out Shape) []int {
	st := make([]int, len(out))
	src := s.Strides()
	off := len(out) - len(s)
	for i := range out {
		j := i - off
		if j >= 0 && s[j] != 1 {
			st[i] = src[j]
		}
	}
	return st
}

// DropoutUniform is the counter-based random number behind Dropout: a uniform value in
// [0, 1) derived from (seed, i) alone, so every backend draws the same mask.
func DropoutUniform(seed uint64, i int) float32 {
	z := seed + uint64(i)*0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	z ^= z >> 31
	return float32(z>>40) / (1 << 24)
}

var (
	registryMu sync.Mutex
	registry   = map[string]func(device string) (Backend, error){}
)

// RegisterBackend makes a backend constructible by name through OpenBackend. The CUDA
// backend registers itself only in binaries built with the `cuda` tag.
func RegisterBackend(name string, open func(device string) (Backend, error)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[name] = open
}

// OpenBackend opens a device such as "cpu", "cuda" or "cuda:1".
func OpenBackend(device string) (Backend, error) {
	// "cuda", "cuda:1" and "cuda:0?precision=tf32" all name the cuda backend.
	name := device
	for i, c := range device {
		if c == ':' || c == '?' {
			name = device[:i]
			break
		}
	}
	registryMu.Lock()
	open, ok := registry[name]
	registryMu.Unlock()
	if !ok {
		if name == "cuda" {
			return nil, fmt.Errorf("device %q: this binary was built without CUDA support (rebuild with `make cuda`, which sets -tags cuda)", device)
		}
		names := BackendNames()
		have := strings.Join(names, ", ")
		if !slices.Contains(names, "cuda") {
			have += " (and cuda in a -tags cuda build)"
		}
		return nil, fmt.Errorf("device %q: no such backend; this binary has %s", device, have)
	}
	return open(device)
}

// BackendNames lists the registered backends.
func BackendNames() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	var names []string
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
