// Package backendtest is the conformance suite for core.Backend implementations.
//
// Run drives every Backend method on seeded random inputs over odd and size-1 shapes,
// broadcasting, accumulate and beta paths, and compares each result after Download with
// the float64 reference backend (core/backend/ref) under per-op-family tolerances. A
// backend's own tests call it:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func() core.Backend { return cpu.New() }, backendtest.DefaultTolerances())
//	}
//
// Each case is a subtest named op/variant/shapes, so `go test -run 'Run/MatMul/TN'`
// narrows a failure down. Check runs the same cases and returns the failures instead
// of reporting them, for tools and for testing the suite itself.
package backendtest

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/ref"
)

// Tol accepts got when |got - want| <= Abs + Rel·|want|. NaN matches only NaN and an
// infinity only itself.
type Tol struct {
	Rel, Abs float64
}

func (t Tol) accepts(got, want float64) bool {
	switch {
	case math.IsNaN(want):
		return math.IsNaN(got)
	case math.IsInf(want, 0):
		return got == want
	}
	return math.Abs(got-want) <= t.Abs+t.Rel*math.Abs(want)
}

// forSum widens Abs by √n for a sum of n terms: rounding error in a plain float32 sum
// grows with its length, while a dropped or doubled term (the bug to catch) costs a
// whole input value of order one.
func (t Tol) forSum(n int) Tol {
	t.Abs *= math.Sqrt(float64(max(n, 1)))
	return t
}

// Tolerances holds one Tol per family of ops. Inputs are mostly in [-1, 1] (see each
// case), so Abs is roughly an absolute error on values of order one.
type Tolerances struct {
	Exact       Tol // data movement: Alloc, Upload/Download, Fill, Copy, Permute, CopyAlong, Gather
	Elementwise Tol // Axpby, Binary, ScaleBy, Dropout values, accumulating CopyAlong and ScatterAdd
	Unary       Tol // Unary and UnaryGrad (transcendental functions)
	MatMul      Tol
	Reduce      Tol // Reduce and SumSquares; Abs grows by √n for sums of n terms
	Softmax     Tol // Softmax, LogSoftmax and their gradients
	Loss        Tol // CrossEntropy and BCEWithLogits, loss and gradient
	LayerNorm   Tol // LayerNorm outputs and statistics, LayerNormGrad
	Optimizer   Tol // SGDStep and AdamWStep state after several steps
}

// DefaultTolerances fits a backend that stores and computes in float32 with ordinary
// (sequential, blocked or pairwise) accumulation.
func DefaultTolerances() Tolerances {
	return Tolerances{
		Exact:       Tol{},
		Elementwise: Tol{Rel: 1e-6, Abs: 1e-6},
		Unary:       Tol{Rel: 1e-5, Abs: 1e-6},
		MatMul:      Tol{Rel: 1e-5, Abs: 1e-5},
		Reduce:      Tol{Rel: 1e-5, Abs: 1e-5},
		Softmax:     Tol{Rel: 1e-5, Abs: 1e-6},
		Loss:        Tol{Rel: 1e-5, Abs: 1e-6},
		LayerNorm:   Tol{Rel: 1e-5, Abs: 1e-5},
		Optimizer:   Tol{Rel: 1e-5, Abs: 1e-6},
	}
}

// TF32Tolerances is DefaultTolerances with MatMul loosened for products whose inputs
// are rounded to TF32 (10 explicit mantissa bits) and accumulated in float32, as
// tensor cores do when TF32 math is enabled.
func TF32Tolerances() Tolerances {
	t := DefaultTolerances()
	t.MatMul = Tol{Rel: 8e-3, Abs: 8e-3}
	return t
}

// BF16Tolerances is DefaultTolerances with MatMul loosened for products whose inputs
// are rounded to bfloat16 (7 explicit mantissa bits) and accumulated in float32.
func BF16Tolerances() Tolerances {
	t := DefaultTolerances()
	t.MatMul = Tol{Rel: 5e-2, Abs: 5e-2}
	return t
}

// Failure is a conformance case whose results did not match ref.
type Failure struct {
	Case   string   // the subtest name, e.g. "MatMul/TN/plain/a[7,3]_b[7,5]"
	Errors []string // one line per mismatching output or panic
}

func (f Failure) String() string { return f.Case + ": " + strings.Join(f.Errors, "; ") }

// Run runs every conformance case as a subtest of t against a backend made once by
// newBackend, comparing with ref under tol.
func Run(t *testing.T, newBackend func() core.Backend, tol Tolerances) {
	t.Helper()
	be, r := newBackend(), ref.New()
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			for _, msg := range runCase(be, r, tol, c) {
				t.Error(msg)
			}
		})
	}
}

// Check runs the same cases as Run and returns the ones that failed, in order.
func Check(newBackend func() core.Backend, tol Tolerances) []Failure {
	be, r := newBackend(), ref.New()
	var out []Failure
	for _, c := range cases() {
		if errs := runCase(be, r, tol, c); len(errs) > 0 {
			out = append(out, Failure{Case: c.name, Errors: errs})
		}
	}
	return out
}

// testCase is one named comparison; fn drives both backends through env.
type testCase struct {
	name string
	fn   func(e *env)
}

// pair is one logical tensor held by both the backend under test (b) and ref (r),
// always with identical contents on input.
type pair struct{ b, r *core.Tensor }

type env struct {
	b, r core.Backend
	rng  *rand.Rand
	tol  Tolerances
	errs []string
	live []*pair
}

// runCase runs c with a generator seeded from its name, so a case sees the same data
// whether it runs alone or in the whole suite, and turns panics into failures.
func runCase(b, r core.Backend, tol Tolerances, c testCase) (errs []string) {
	h := fnv.New64a()
	h.Write([]byte(c.name))
	e := &env{b: b, r: r, tol: tol, rng: rand.New(rand.NewPCG(h.Sum64(), 0x6b61646170740a))}
	defer func() {
		if p := recover(); p != nil {
			e.failf("panic: %v\n%s", p, trimStack(debug.Stack()))
		}
		e.releaseAll()
		errs = e.errs
	}()
	c.fn(e)
	if err := b.Sync(); err != nil {
		e.failf("Sync: %v", err)
	}
	return
}

// trimStack keeps the frames nearest the panic; the rest is the test runner.
func trimStack(s []byte) string {
	lines := strings.Split(string(s), "\n")
	if len(lines) > 24 {
		lines = lines[:24]
	}
	return strings.Join(lines, "\n")
}

func (e *env) failf(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

// releaseAll hands every tensor of the case back; a panic here is reported, not fatal,
// so one broken case does not stop the suite.
func (e *env) releaseAll() {
	defer func() {
		if p := recover(); p != nil {
			e.failf("panic in Release: %v", p)
		}
	}()
	live := e.live
	e.live = nil
	for _, p := range live {
		e.b.Release(p.b)
		e.r.Release(p.r)
	}
}

// release hands p back before the case ends.
func (e *env) release(p *pair) {
	for i, q := range e.live {
		if q == p {
			e.live = append(e.live[:i], e.live[i+1:]...)
			break
		}
	}
	e.b.Release(p.b)
	e.r.Release(p.r)
}

func (e *env) alloc(shape core.Shape) *pair {
	p := &pair{b: e.b.Alloc(shape), r: e.r.Alloc(shape)}
	e.live = append(e.live, p)
	return p
}

func (e *env) upload(shape core.Shape, v []float32) *pair {
	p := e.alloc(shape)
	e.b.Upload(p.b, v)
	e.r.Upload(p.r, v)
	return p
}

// values draws n uniform values in [lo, hi).
func (e *env) values(n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*e.rng.Float64())
	}
	return v
}

func (e *env) uniform(shape core.Shape, lo, hi float64) *pair {
	return e.upload(shape, e.values(shape.Size(), lo, hi))
}

// nan makes a tensor that an op must overwrite without reading.
func (e *env) nan(shape core.Shape) *pair {
	v := make([]float32, shape.Size())
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return e.upload(shape, v)
}

// indices uploads n integral indices in [0, limit) with the second repeating the
// first, so accumulation over repeats is always exercised.
func (e *env) indices(n, limit int) *pair {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(e.rng.IntN(limit))
	}
	if n > 1 {
		v[1] = v[0]
	}
	return e.upload(core.Shape{n}, v)
}

// fromRef computes a tensor with ref alone (fn writes into dst) and uploads the
// float32-rounded result to both backends: inputs such as softmax outputs or
// layer-norm statistics that must be consistent with other inputs.
func (e *env) fromRef(shape core.Shape, fn func(r core.Backend, dst *core.Tensor)) *pair {
	tmp := e.r.Alloc(shape)
	defer e.r.Release(tmp)
	fn(e.r, tmp)
	v := make([]float32, shape.Size())
	e.r.Download(v, tmp)
	return e.upload(shape, v)
}

// do runs fn once on ref and once on the backend under test; t picks each pair's
// tensor on the side being run (nil stays nil).
func (e *env) do(fn func(be core.Backend, t func(*pair) *core.Tensor)) {
	fn(e.r, func(p *pair) *core.Tensor {
		if p == nil {
			return nil
		}
		return p.r
	})
	fn(e.b, func(p *pair) *core.Tensor {
		if p == nil {
			return nil
		}
		return p.b
	})
}

// check downloads both sides of p and records a failure naming what and the first few
// mismatching elements.
func (e *env) check(what string, p *pair, tol Tol) {
	got, want := e.download(p)
	e.compare(what, p.r.Shape(), got, want, tol)
}

func (e *env) download(p *pair) (got, want []float32) {
	got, want = make([]float32, p.b.Size()), make([]float32, p.r.Size())
	e.b.Download(got, p.b)
	e.r.Download(want, p.r)
	return got, want
}

func (e *env) compare(what string, shape core.Shape, got, want []float32, tol Tol) {
	bad := 0
	var ex []string
	for i := range want {
		if tol.accepts(float64(got[i]), float64(want[i])) {
			continue
		}
		bad++
		if len(ex) < 3 {
			ex = append(ex, fmt.Sprintf("at %v got %.9g want %.9g (diff %.3g)",
				unravel(i, shape), got[i], want[i], math.Abs(float64(got[i])-float64(want[i]))))
		}
	}
	if bad > 0 {
		e.failf("%s %v: %d of %d elements outside rel %g abs %g: %s",
			what, shape, bad, len(want), tol.Rel, tol.Abs, strings.Join(ex, ", "))
	}
}

// unravel turns a flat row-major index into a multi-index for messages.
func unravel(i int, shape core.Shape) []int {
	idx := make([]int, len(shape))
	for ax := len(shape) - 1; ax >= 0; ax-- {
		if shape[ax] > 0 {
			idx[ax] = i % shape[ax]
			i /= shape[ax]
		}
	}
	return idx
}
