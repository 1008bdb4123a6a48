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
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
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

func (*backend) Fill(dst *core.Tensor, v float32) {
	d := vals(dst, "Fill", "dst")
	for i := range d {
		d[i] = float64(v)
	}
}

func (*backend) Copy(dst, src *core.Tensor) {
	d, s := vals(dst, "Copy", "dst"), vals(src, "Copy", "src")
	sameSize("Copy", dst, src)
	copy(d, s)
}

func (*backend) Axpby(dst *core.Tensor, alpha float32, x *core.Tensor, beta float32) {
	d, xs := vals(dst, "Axpby", "dst"), vals(x, "Axpby", "x")
	sameSize("Axpby", dst, x)
	a, b := float64(alpha), float64(beta)
	for i := range d {
		if beta == 0 {
			d[i] = a * xs[i]
		} else {
			d[i] = a*xs[i] + b*d[i]
		}
	}
}

func (*backend) MatMul(dst, a, b *core.Tensor, transA, transB bool, alpha, beta float32) {
	const op = "MatMul"
	d, av, bv := vals(dst, op, "dst"), vals(a, op, "a"), vals(b, op, "b")
	if dst.Rank() < 2 || a.Rank() < 2 || b.Rank() < 2 {
		panic(fmt.Sprintf("ref: MatMul: operands need rank >= 2: dst %v, a %v, b %v", dst, a, b))
	}
	ds, as, bs := dst.Shape(), a.Shape(), b.Shape()
	m, n := ds[len(ds)-2], ds[len(ds)-1]
	am, ak := as[len(as)-2], as[len(as)-1]
	if transA {
		am, ak = ak, am
	}
	bk, bn := bs[len(bs)-2], bs[len(bs)-1]
	if transB {
		bk, bn = bn, bk
	}
	batch := ds[:len(ds)-2]
	aShared, bShared := a.Rank() == 2, b.Rank() == 2
	if am != m || bn != n || ak != bk ||
		(!aShared && !as[:len(as)-2].Equal(batch)) || (!bShared && !bs[:len(bs)-2].Equal(batch)) {
		panic(fmt.Sprintf("ref: MatMul: shapes do not fit: dst %v, a %v (trans %v), b %v (trans %v)",
			ds, as, transA, bs, transB))
	}
	k := ak
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	for bi := range batch.Size() {
		c := d[bi*m*n : (bi+1)*m*n]
		if beta == 0 {
			// Ignore dst's old contents even when they are NaN (0·NaN is NaN).
			clear(c)
		}
		if m == 0 || n == 0 {
			continue
		}
		if k == 0 {
			for i := range c {
				c[i] *= float64(beta)
			}
			continue
		}
		aOff, bOff := bi*m*k, bi*k*n
		if aShared {
			aOff = 0
		}
		if bShared {
			bOff = 0
		}
		ga := blas64.General{Rows: m, Cols: k, Stride: k, Data: av[aOff : aOff+m*k]}
		if transA {
			ga = blas64.General{Rows: k, Cols: m, Stride: m, Data: av[aOff : aOff+m*k]}
		}
		gb := blas64.General{Rows: k, Cols: n, Stride: n, Data: bv[bOff : bOff+k*n]}
		if transB {
			gb = blas64.General{Rows: n, Cols: k, Stride: k, Data: bv[bOff : bOff+k*n]}
		}
		gc := blas64.General{Rows: m, Cols: n, Stride: n, Data: c}
		blas64.Gemm(tA, tB, float64(alpha), ga, gb, float64(beta), gc)
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

func (*backend) Binary(op core.BinaryOp, dst, a, b *core.Tensor) {
	d, av, bv := vals(dst, "Binary", "dst"), vals(a, "Binary", "a"), vals(b, "Binary", "b")
	out, err := core.BroadcastShape(a.Shape(), b.Shape())
	if err != nil || !out.Equal(dst.Shape()) {
		panic(fmt.Sprintf("ref: Binary %v: dst %v is not the broadcast of a %v and b %v", op, dst, a, b))
	}
	sa, sb := core.BroadcastStrides(a.Shape(), out), core.BroadcastStrides(b.Shape(), out)
	for i := range d {
		x, y := av[offset(i, out, sa)], bv[offset(i, out, sb)]
		switch op {
		case core.Add:
			d[i] = x + y
		case core.Sub:
			d[i] = x - y
		case core.Mul:
			d[i] = x * y
		case core.Div:
			d[i] = x / y
		case core.Maximum:
			d[i] = math.Max(x, y)
		case core.Equal:
			d[i] = 0
			if x == y {
				d[i] = 1
			}
		default:
			panic(fmt.Sprintf("ref: Binary: unknown op %d", op))
		}
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func unary(op core.UnaryOp, x float64) float64 {
	switch op {
	case core.Neg:
		return -x
	case core.Exp:
		return math.Exp(x)
	case core.Log:
		return math.Log(x)
	case core.Sqrt:
		return math.Sqrt(x)
	case core.Rsqrt:
		return 1 / math.Sqrt(x)
	case core.Square:
		return x * x
	case core.Abs:
		return math.Abs(x)
	case core.ReLU:
		return math.Max(x, 0)
	case core.GELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	case core.QuickGELU:
		return x * sigmoid(core.QuickGELUCoef*x)
	case core.SiLU:
		return x * sigmoid(x)
	case core.Sigmoid:
		return sigmoid(x)
	case core.Tanh:
		return math.Tanh(x)
	}
	panic(fmt.Sprintf("ref: Unary: unknown op %d", op))
}

// derivative returns op'(x).
func derivative(op core.UnaryOp, x float64) float64 {
	switch op {
	case core.Neg:
		return -1
	case core.Exp:
		return math.Exp(x)
	case core.Log:
		return 1 / x
	case core.Sqrt:
		return 0.5 / math.Sqrt(x)
	case core.Rsqrt:
		return -0.5 / (x * math.Sqrt(x))
	case core.Square:
		return 2 * x
	case core.Abs:
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return 0
	case core.ReLU:
		if x > 0 {
			return 1
		}
		return 0
	case core.GELU:
		cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
		pdf := math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
		return cdf + x*pdf
	case core.QuickGELU:
		s := sigmoid(core.QuickGELUCoef * x)
		return s + core.QuickGELUCoef*x*s*(1-s)
	case core.SiLU:
		s := sigmoid(x)
		return s + x*s*(1-s)
	case core.Sigmoid:
		s := sigmoid(x)
		return s * (1 - s)
	case core.Tanh:
		t := math.Tanh(x)
		return 1 - t*t
	}
	panic(fmt.Sprintf("ref: UnaryGrad: unknown op %d", op))
}

func (*backend) Unary(op core.UnaryOp, dst, x *core.Tensor) {
	d, xs := vals(dst, "Unary", "dst"), vals(x, "Unary", "x")
	sameSize("Unary", dst, x)
	for i := range d {
		d[i] = unary(op, xs[i])
	}
}

func (*backend) UnaryGrad(op core.UnaryOp, dx, x, dy *core.Tensor, accumulate bool) {
	d, xs, g := vals(dx, "UnaryGrad", "dx"), vals(x, "UnaryGrad", "x"), vals(dy, "UnaryGrad", "dy")
	sameSize("UnaryGrad", dx, x)
	sameSize("UnaryGrad", dx, dy)
	for i := range d {
		v := derivative(op, xs[i]) * g[i]
		if accumulate {
			d[i] += v
		} else {
			d[i] = v
		}
	}
}

func (*backend) Reduce(op core.ReduceOp, dst, x *core.Tensor, accumulate bool) {
	d, xs := vals(dst, "Reduce", "dst"), vals(x, "Reduce", "x")
	if out, err := core.BroadcastShape(dst.Shape(), x.Shape()); err != nil || !out.Equal(x.Shape()) {
		panic(fmt.Sprintf("ref: Reduce: dst %v is not x %v with some axes reduced to 1", dst, x))
	}
	if op != core.ReduceSum && op != core.ReduceMax {
		panic(fmt.Sprintf("ref: Reduce: unknown op %d", op))
	}
	if accumulate && op != core.ReduceSum {
		panic("ref: Reduce: accumulate is only valid with ReduceSum")
	}
	acc := make([]float64, len(d))
	if op == core.ReduceMax {
		for i := range acc {
			acc[i] = math.Inf(-1)
		}
	}
	xShape := x.Shape()
	st := core.BroadcastStrides(dst.Shape(), xShape)
	for i, v := range xs {
		j := offset(i, xShape, st)
		if op == core.ReduceSum {
			acc[j] += v
		} else {
			acc[j] = math.Max(acc[j], v)
		}
	}
	for i := range d {
		if accumulate {
			d[i] += acc[i]
		} else {
			d[i] = acc[i]
		}
	}
}

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

// index converts the float-stored index at position i of idx to an int in [0, n).
func index(op string, idx []float64, i, n int) int {
	v := idx[i]
	if v != math.Trunc(v) || v < 0 || v >= float64(n) {
		panic(fmt.Sprintf("ref: %s: index %v at position %d is not an integer in [0, %d)", op, v, i, n))
	}
	return int(v)
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

// lastAxis returns the length of t's last axis, the row length of the softmax family.
func lastAxis(op string, t *core.Tensor) int {
	if t.Rank() == 0 {
		panic(fmt.Sprintf("ref: %s: %v has no last axis", op, t))
	}
	return t.Dim(t.Rank() - 1)
}

// rows calls fn once per row of length D.
func rows(total, D int, fn func(lo, hi int)) {
	if D == 0 {
		return
	}
	for lo := 0; lo < total; lo += D {
		fn(lo, lo+D)
	}
}

// logSumExp returns the row maximum and log Σ exp(r - max), kept apart so that
// x - max - logZ does not lose the low bits of a large max.
func logSumExp(r []float64) (mx, logZ float64) {
	mx = math.Inf(-1)
	for _, v := range r {
		mx = math.Max(mx, v)
	}
	s := 0.0
	for _, v := range r {
		s += math.Exp(v - mx)
	}
	return mx, math.Log(s)
}

func (*backend) Softmax(dst, x *core.Tensor) {
	d, xs := vals(dst, "Softmax", "dst"), vals(x, "Softmax", "x")
	sameShape("Softmax", dst, x)
	rows(len(d), lastAxis("Softmax", x), func(lo, hi int) {
		mx := math.Inf(-1)
		for _, v := range xs[lo:hi] {
			mx = math.Max(mx, v)
		}
		s := 0.0
		for i := lo; i < hi; i++ {
			d[i] = math.Exp(xs[i] - mx)
			s += d[i]
		}
		for i := lo; i < hi; i++ {
			d[i] /= s
		}
	})
}

func (*backend) SoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	d, ys, g := vals(dx, "SoftmaxGrad", "dx"), vals(y, "SoftmaxGrad", "y"), vals(dy, "SoftmaxGrad", "dy")
	sameShape("SoftmaxGrad", dx, y)
	sameShape("SoftmaxGrad", dx, dy)
	rows(len(d), lastAxis("SoftmaxGrad", y), func(lo, hi int) {
		dot := 0.0
		for i := lo; i < hi; i++ {
			dot += g[i] * ys[i]
		}
		for i := lo; i < hi; i++ {
			v := ys[i] * (g[i] - dot)
			if accumulate {
				d[i] += v
			} else {
				d[i] = v
			}
		}
	})
}

func (*backend) LogSoftmax(dst, x *core.Tensor) {
	d, xs := vals(dst, "LogSoftmax", "dst"), vals(x, "LogSoftmax", "x")
	sameShape("LogSoftmax", dst, x)
	rows(len(d), lastAxis("LogSoftmax", x), func(lo, hi int) {
		mx, logZ := logSumExp(xs[lo:hi])
		for i := lo; i < hi; i++ {
			d[i] = xs[i] - mx - logZ
		}
	})
}

func (*backend) LogSoftmaxGrad(dx, y, dy *core.Tensor, accumulate bool) {
	d, ys, g := vals(dx, "LogSoftmaxGrad", "dx"), vals(y, "LogSoftmaxGrad", "y"), vals(dy, "LogSoftmaxGrad", "dy")
	sameShape("LogSoftmaxGrad", dx, y)
	sameShape("LogSoftmaxGrad", dx, dy)
	rows(len(d), lastAxis("LogSoftmaxGrad", y), func(lo, hi int) {
		s := 0.0
		for i := lo; i < hi; i++ {
			s += g[i]
		}
		for i := lo; i < hi; i++ {
			v := g[i] - math.Exp(ys[i])*s
			if accumulate {
				d[i] += v
			} else {
				d[i] = v
			}
		}
	})
}

func (*backend) CrossEntropy(loss, dlogits, logits, labels *core.Tensor, smoothing float32) {
	const op = "CrossEntropy"
	l, x, lab := vals(loss, op, "loss"), vals(logits, op, "logits"), vals(labels, op, "labels")
	if logits.Rank() != 2 || len(l) != 1 || len(lab) != logits.Dim(0) {
		panic(fmt.Sprintf("ref: CrossEntropy: want logits [N,C], labels [N], loss [1]; got logits %v, labels %v, loss %v",
			logits, labels, loss))
	}
	var dl []float64
	if dlogits != nil {
		dl = vals(dlogits, op, "dlogits")
		sameShape(op, dlogits, logits)
	}
	N, C := logits.Dim(0), logits.Dim(1)
	s := float64(smoothing)
	total := 0.0
	for r := range N {
		y := index(op, lab, r, C)
		row := x[r*C : (r+1)*C]
		mx, logZ := logSumExp(row)
		for c := range C {
			q := s / float64(C)
			if c == y {
				q += 1 - s
			}
			logp := row[c] - mx - logZ
			total -= q * logp
			if dl != nil {
				dl[r*C+c] = (math.Exp(logp) - q) / float64(N)
			}
		}
	}
	l[0] = total / float64(N)
}

func (*backend) BCEWithLogits(loss, dlogits, logits, targets *core.Tensor) {
	const op = "BCEWithLogits"
	l, x, t := vals(loss, op, "loss"), vals(logits, op, "logits"), vals(targets, op, "targets")
	if len(l) != 1 {
		panic(fmt.Sprintf("ref: BCEWithLogits: loss %v must have one element", loss))
	}
	sameShape(op, logits, targets)
	var dl []float64
	if dlogits != nil {
		dl = vals(dlogits, op, "dlogits")
		sameShape(op, dlogits, logits)
	}
	n := float64(len(x))
	total := 0.0
	for i, v := range x {
		total += math.Max(v, 0) - v*t[i] + math.Log1p(math.Exp(-math.Abs(v)))
		if dl != nil {
			dl[i] = (sigmoid(v) - t[i]) / n
		}
	}
	l[0] = total / n
}

func (*backend) LayerNorm(dst, mean, rstd, x, gamma, beta *core.Tensor, eps float32) {
	const op = "LayerNorm"
	d, xs := vals(dst, op, "dst"), vals(x, op, "x")
	sameShape(op, dst, x)
	D := lastAxis(op, x)
	nrows := 0
	if D > 0 {
		nrows = len(xs) / D
	}
	var mu, rs, g, b []float64
	if mean != nil {
		mu = vals(mean, op, "mean")
	}
	if rstd != nil {
		rs = vals(rstd, op, "rstd")
	}
	if gamma != nil {
		g = vals(gamma, op, "gamma")
	}
	if beta != nil {
		b = vals(beta, op, "beta")
	}
	if (mu != nil && len(mu) != nrows) || (rs != nil && len(rs) != nrows) ||
		(g != nil && len(g) != D) || (b != nil && len(b) != D) {
		panic(fmt.Sprintf("ref: LayerNorm: x %v needs mean and rstd of %d and gamma and beta of %d; got %v, %v, %v, %v",
			x, nrows, D, mean, rstd, gamma, beta))
	}
	for r := range nrows {
		row := xs[r*D : (r+1)*D]
		m := 0.0
		for _, v := range row {
			m += v
		}
		m /= float64(D)
		vr := 0.0
		for _, v := range row {
			vr += (v - m) * (v - m)
		}
		vr /= float64(D)
		inv := 1 / math.Sqrt(vr+float64(eps))
		for j, v := range row {
			y := (v - m) * inv
			if g != nil {
				y *= g[j]
			}
			if b != nil {
				y += b[j]
			}
			d[r*D+j] = y
		}
		if mu != nil {
			mu[r] = m
		}
		if rs != nil {
			rs[r] = inv
		}
	}
}

func (*backend) LayerNormGrad(dx, dgamma, dbeta, dy, x, mean, rstd, gamma *core.Tensor, accumulate bool) {
	const op = "LayerNormGrad"
	d, g, xs := vals(dx, op, "dx"), vals(dy, op, "dy"), vals(x, op, "x")
	mu, rs := vals(mean, op, "mean"), vals(rstd, op, "rstd")
	sameShape(op, dx, x)
	sameShape(op, dy, x)
	D := lastAxis(op, x)
	nrows := 0
	if D > 0 {
		nrows = len(xs) / D
	}
	var gm, dg, db []float64
	if gamma != nil {
		gm = vals(gamma, op, "gamma")
	}
	if dgamma != nil {
		dg = vals(dgamma, op, "dgamma")
	}
	if dbeta != nil {
		db = vals(dbeta, op, "dbeta")
	}
	if len(mu) != nrows || len(rs) != nrows || (gm != nil && len(gm) != D) ||
		(dg != nil && len(dg) != D) || (db != nil && len(db) != D) {
		panic(fmt.Sprintf("ref: LayerNormGrad: x %v needs mean and rstd of %d and gamma, dgamma, dbeta of %d; got %v, %v, %v, %v, %v",
			x, nrows, D, mean, rstd, gamma, dgamma, dbeta))
	}
	xhat := make([]float64, D)
	gh := make([]float64, D)
	for r := range nrows {
		off := r * D
		meanG, meanGX := 0.0, 0.0
		for j := range D {
			xhat[j] = (xs[off+j] - mu[r]) * rs[r]
			gh[j] = g[off+j]
			if gm != nil {
				gh[j] *= gm[j]
			}
			meanG += gh[j]
			meanGX += gh[j] * xhat[j]
			if dg != nil {
				dg[j] += g[off+j] * xhat[j]
			}
			if db != nil {
				db[j] += g[off+j]
			}
		}
		meanG /= float64(D)
		meanGX /= float64(D)
		for j := range D {
			v := rs[r] * (gh[j] - meanG - xhat[j]*meanGX)
			if accumulate {
				d[off+j] += v
			} else {
				d[off+j] = v
			}
		}
	}
}

func (*backend) Dropout(dst, mask, x *core.Tensor, p float32, seed uint64) {
	const op = "Dropout"
	d, m, xs := vals(dst, op, "dst"), vals(mask, op, "mask"), vals(x, op, "x")
	sameSize(op, dst, x)
	sameSize(op, mask, x)
	if !(p >= 0 && p <= 1) {
		panic(fmt.Sprintf("ref: Dropout: probability %v is not in [0, 1]", p))
	}
	scale := 1 / (1 - float64(p))
	for i := range d {
		m[i] = 0
		if core.DropoutUniform(seed, i) >= p {
			m[i] = scale
		}
		d[i] = xs[i] * m[i]
	}
}

func (*backend) SumSquares(dst, x *core.Tensor, accumulate bool) {
	d, xs := vals(dst, "SumSquares", "dst"), vals(x, "SumSquares", "x")
	if len(d) != 1 {
		panic(fmt.Sprintf("ref: SumSquares: dst %v must have one element", dst))
	}
	s := 0.0
	for _, v := range xs {
		s += v * v
	}
	if accumulate {
		d[0] += s
	} else {
		d[0] = s
	}
}

func (*backend) ScaleBy(dst, s *core.Tensor, alpha float32) {
	d, sv := vals(dst, "ScaleBy", "dst"), vals(s, "ScaleBy", "s")
	if len(sv) != 1 {
		panic(fmt.Sprintf("ref: ScaleBy: scale %v must have one element", s))
	}
	f := sv[0] * float64(alpha)
	for i := range d {
		d[i] *= f
	}
}

func (*backend) SGDStep(param, grad, mom *core.Tensor, lr, momentum, weightDecay float32, nesterov, first bool) {
	const op = "SGDStep"
	p, g := vals(param, op, "param"), vals(grad, op, "grad")
	sameSize(op, param, grad)
	var mb []float64
	if momentum != 0 {
		mb = vals(mom, op, "mom")
		sameSize(op, param, mom)
	}
	lr64, mu, wd := float64(lr), float64(momentum), float64(weightDecay)
	for i := range p {
		gi := g[i] + wd*p[i]
		step := gi
		if mb != nil {
			if first {
				mb[i] = gi
			} else {
				mb[i] = mu*mb[i] + gi
			}
			step = mb[i]
			if nesterov {
				step = gi + mu*mb[i]
			}
		}
		p[i] -= lr64 * step
	}
}

func (*backend) AdamWStep(param, grad, m, v *core.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int) {
	const op = "AdamWStep"
	p, g, ms, vs := vals(param, op, "param"), vals(grad, op, "grad"), vals(m, op, "m"), vals(v, op, "v")
	sameSize(op, param, grad)
	sameSize(op, param, m)
	sameSize(op, param, v)
	if step < 1 {
		panic(fmt.Sprintf("ref: AdamWStep: step %d must be at least 1", step))
	}
	lr64, b1, b2, e, wd := float64(lr), float64(beta1), float64(beta2), float64(eps), float64(weightDecay)
	bc1 := 1 - math.Pow(b1, float64(step))
	bc2 := 1 - math.Pow(b2, float64(step))
	for i := range p {
		p[i] -= lr64 * wd * p[i]
		ms[i] = b1*ms[i] + (1-b1)*g[i]
		vs[i] = b2*vs[i] + (1-b2)*g[i]*g[i]
		p[i] -= lr64 * (ms[i] / bc1) / (math.Sqrt(vs[i]/bc2) + e)
	}
}
