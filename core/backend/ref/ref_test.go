package ref_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/ref"
	"github.com/kadapt/kadapt/core/testutil"
	"gonum.org/v1/gonum/mat"
)

// upload allocates a ref tensor of the given shape holding v exactly.
func upload(b core.Backend, shape core.Shape, v []float64) *core.Tensor {
	t := b.Alloc(shape)
	ref.UploadFloat64(t, v)
	return t
}

func randn(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

func uniform(rng *rand.Rand, n int, lo, hi float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float64()
	}
	return v
}

func TestRegistered(t *testing.T) {
	b, err := core.OpenBackend("ref")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "ref" {
		t.Errorf("Name() = %q, want ref", b.Name())
	}
	if err := b.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
}

func TestPool(t *testing.T) {
	b := ref.New()
	x := b.Alloc(core.Shape{3, 4})
	if got := ref.Float64s(x); !allEqual(got, 0) || len(got) != 12 {
		t.Fatalf("fresh Alloc = %v, want 12 zeros", got)
	}
	b.Fill(x, 7)
	st := x.Storage()
	b.Release(x)
	y := b.Alloc(core.Shape{2, 6})
	if y.Storage() != st {
		t.Error("Alloc after Release of the same size did not reuse the storage")
	}
	if got := ref.Float64s(y); !allEqual(got, 0) {
		t.Errorf("reused storage not zero-filled: %v", got)
	}
	if z := b.Alloc(core.Shape{5}); z.Storage() == st {
		t.Error("Alloc of another size reused a live buffer")
	}
	b.Release(y)
	testutil.MustPanic(t, "already released", func() { b.Release(y) })
	testutil.MustPanic(t, "after Release", func() { b.Fill(y, 1) })
	testutil.MustPanic(t, "negative dimension", func() { b.Alloc(core.Shape{2, -1}) })
}

func allEqual(v []float64, c float64) bool {
	for _, x := range v {
		if x != c {
			return false
		}
	}
	return true
}

func TestUploadDownload(t *testing.T) {
	b := ref.New()
	x := upload(b, core.Shape{3}, []float64{1.0 / 3, math.Pi, -1e-50})
	got := make([]float32, 3)
	b.Download(got, x)
	want := []float32{float32(1.0 / 3), float32(math.Pi), float32(-1e-50)}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("Download[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	b.Upload(x, []float32{0.1, -2, 3.5})
	if f := ref.Float64s(x); f[0] != float64(float32(0.1)) || f[1] != -2 || f[2] != 3.5 {
		t.Errorf("Upload widened to %v", f)
	}
	testutil.MustPanic(t, "Upload", func() { b.Upload(x, []float32{1}) })
}

func TestFillCopyAxpby(t *testing.T) {
	b := ref.New()
	x := upload(b, core.Shape{2, 2}, []float64{1, 2, 3, 4})
	d := b.Alloc(core.Shape{4})
	b.Copy(d, x)
	testutil.AllClose(t, "Copy", ref.Float64s(d), []float64{1, 2, 3, 4}, 0, 0)
	b.Fill(d, float32(math.NaN()))
	b.Axpby(d, 2, x, 0) // beta 0 must ignore the NaNs
	testutil.AllClose(t, "Axpby beta=0", ref.Float64s(d), []float64{2, 4, 6, 8}, 0, 0)
	b.Axpby(d, -1, x, 0.5)
	testutil.AllClose(t, "Axpby", ref.Float64s(d), []float64{0, 0, 0, 0}, 0, 0)
	b.Fill(d, -1.5)
	testutil.AllClose(t, "Fill", ref.Float64s(d), []float64{-1.5, -1.5, -1.5, -1.5}, 0, 0)
}

// TestMatMul checks every transpose flag and batch layout against gonum's mat.Dense
// product, one batch entry at a time.
func TestMatMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const m, k, n = 3, 5, 4
	layouts := []struct {
		name       string
		aB, bB, dB core.Shape
	}{
		{"plain", nil, nil, nil},
		{"batched", core.Shape{2}, core.Shape{2}, core.Shape{2}},
		{"batched2", core.Shape{2, 3}, core.Shape{2, 3}, core.Shape{2, 3}},
		{"shared_a", nil, core.Shape{3}, core.Shape{3}},
		{"shared_b", core.Shape{2, 2}, nil, core.Shape{2, 2}},
	}
	for _, lay := range layouts {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {-0.5, 1.5}} {
					name := fmt.Sprintf("%s/tA=%v/tB=%v/alpha=%v/beta=%v", lay.name, tA, tB, ab[0], ab[1])
					t.Run(name, func(t *testing.T) {
						b := ref.New()
						aShape := append(lay.aB.Clone(), m, k)
						if tA {
							aShape = append(lay.aB.Clone(), k, m)
						}
						bShape := append(lay.bB.Clone(), k, n)
						if tB {
							bShape = append(lay.bB.Clone(), n, k)
						}
						dShape := append(lay.dB.Clone(), m, n)
						av, bv, cv := randn(rng, aShape.Size()), randn(rng, bShape.Size()), randn(rng, dShape.Size())
						if ab[1] == 0 {
							for i := range cv {
								cv[i] = math.NaN()
							}
						}
						a, bt, d := upload(b, aShape, av), upload(b, bShape, bv), upload(b, dShape, cv)
						b.MatMul(d, a, bt, tA, tB, ab[0], ab[1])
						got := ref.Float64s(d)
						for bi := range lay.dB.Size() {
							ai, bj := bi, bi
							if lay.aB == nil {
								ai = 0
							}
							if lay.bB == nil {
								bj = 0
							}
							A := mat.NewDense(aShape[len(aShape)-2], aShape[len(aShape)-1], av[ai*m*k:(ai+1)*m*k])
							B := mat.NewDense(bShape[len(bShape)-2], bShape[len(bShape)-1], bv[bj*k*n:(bj+1)*k*n])
							var opA, opB mat.Matrix = A, B
							if tA {
								opA = A.T()
							}
							if tB {
								opB = B.T()
							}
							var P mat.Dense
							P.Mul(opA, opB)
							want := make([]float64, m*n)
							for i := range m {
								for j := range n {
									want[i*n+j] = float64(ab[0]) * P.At(i, j)
									if ab[1] != 0 {
										want[i*n+j] += float64(ab[1]) * cv[bi*m*n+i*n+j]
									}
								}
							}
							testutil.AllClose(t, fmt.Sprintf("batch %d", bi), got[bi*m*n:(bi+1)*m*n], want, 1e-12, 1e-12)
						}
					})
				}
			}
		}
	}
}

func TestMatMulShapeMismatch(t *testing.T) {
	b := ref.New()
	testutil.MustPanic(t, "MatMul", func() {
		b.MatMul(b.Alloc(core.Shape{2, 3}), b.Alloc(core.Shape{2, 4}), b.Alloc(core.Shape{5, 3}), false, false, 1, 0)
	})
	testutil.MustPanic(t, "MatMul", func() {
		b.MatMul(b.Alloc(core.Shape{2, 2, 3}), b.Alloc(core.Shape{3, 2, 4}), b.Alloc(core.Shape{4, 3}), false, false, 1, 0)
	})
}

func TestBinary(t *testing.T) {
	tests := []struct {
		op     core.BinaryOp
		aShape core.Shape
		a      []float64
		bShape core.Shape
		b      []float64
		dShape core.Shape
		want   []float64
	}{
		{core.Add, core.Shape{2, 1}, []float64{1, 2}, core.Shape{3}, []float64{10, 20, 30},
			core.Shape{2, 3}, []float64{11, 21, 31, 12, 22, 32}},
		{core.Sub, core.Shape{3}, []float64{1, 2, 3}, core.Shape{}, []float64{0.5},
			core.Shape{3}, []float64{0.5, 1.5, 2.5}},
		{core.Mul, core.Shape{1, 2, 1}, []float64{2, 3}, core.Shape{2, 1, 2}, []float64{1, 10, 100, 1000},
			core.Shape{2, 2, 2}, []float64{2, 20, 3, 30, 200, 2000, 300, 3000}},
		{core.Div, core.Shape{2, 2}, []float64{1, 2, 3, 4}, core.Shape{2, 1}, []float64{2, 4},
			core.Shape{2, 2}, []float64{0.5, 1, 0.75, 1}},
		{core.Maximum, core.Shape{4}, []float64{-1, 5, 2, 0}, core.Shape{4}, []float64{0, 3, 2, -7},
			core.Shape{4}, []float64{0, 5, 2, 0}},
		{core.Equal, core.Shape{2, 2}, []float64{1, 2, 3, 4}, core.Shape{2}, []float64{1, 4},
			core.Shape{2, 2}, []float64{1, 0, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%v_%v", tt.op, tt.aShape, tt.bShape), func(t *testing.T) {
			b := ref.New()
			d := b.Alloc(tt.dShape)
			b.Binary(tt.op, d, upload(b, tt.aShape, tt.a), upload(b, tt.bShape, tt.b))
			testutil.AllClose(t, "dst", ref.Float64s(d), tt.want, 0, 0)
		})
	}
	b := ref.New()
	testutil.MustPanic(t, "broadcast", func() {
		b.Binary(core.Add, b.Alloc(core.Shape{3}), b.Alloc(core.Shape{3}), b.Alloc(core.Shape{2}))
	})
}

func TestUnary(t *testing.T) {
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	tests := []struct {
		op   core.UnaryOp
		x    []float64
		want []float64
	}{
		{core.Neg, []float64{1.5, -2}, []float64{-1.5, 2}},
		{core.Exp, []float64{0, 1}, []float64{1, math.E}},
		{core.Log, []float64{1, math.E}, []float64{0, 1}},
		{core.Sqrt, []float64{4, 2}, []float64{2, math.Sqrt2}},
		{core.Rsqrt, []float64{4, 0.25}, []float64{0.5, 2}},
		{core.Square, []float64{-3, 0.5}, []float64{9, 0.25}},
		{core.Abs, []float64{-3, 2}, []float64{3, 2}},
		{core.ReLU, []float64{-3, 2, 0}, []float64{0, 2, 0}},
		// Φ(1) = 0.8413447460685429 (standard normal CDF).
		{core.GELU, []float64{1, -1, 0}, []float64{0.8413447460685429, -0.15865525393145707, 0}},
		{core.QuickGELU, []float64{1, -2}, []float64{sig(1.702), -2 * sig(-3.404)}},
		{core.SiLU, []float64{2, -1}, []float64{2 * sig(2), -sig(-1)}},
		{core.Sigmoid, []float64{0, math.Log(3)}, []float64{0.5, 0.75}},
		{core.Tanh, []float64{0, math.Log(2)}, []float64{0, 0.6}},
	}
	for _, tt := range tests {
		t.Run(tt.op.String(), func(t *testing.T) {
			b := ref.New()
			x := upload(b, core.Shape{len(tt.x)}, tt.x)
			d := b.Alloc(x.Shape())
			b.Unary(tt.op, d, x)
			testutil.AllClose(t, "dst", ref.Float64s(d), tt.want, 1e-15, 1e-15)
			b.Unary(tt.op, x, x) // dst may alias x
			testutil.AllClose(t, "aliased dst", ref.Float64s(x), tt.want, 1e-15, 1e-15)
		})
	}
}

// TestUnaryGrad compares UnaryGrad with central differences of Unary.
func TestUnaryGrad(t *testing.T) {
	ops := []core.UnaryOp{core.Neg, core.Exp, core.Log, core.Sqrt, core.Rsqrt, core.Square, core.Abs,
		core.ReLU, core.GELU, core.QuickGELU, core.SiLU, core.Sigmoid, core.Tanh}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, op := range ops {
		t.Run(op.String(), func(t *testing.T) {
			b := ref.New()
			xs := uniform(rng, 9, -3, 3)
			if op == core.Log || op == core.Sqrt || op == core.Rsqrt {
				xs = uniform(rng, 9, 0.2, 3)
			}
			dys := randn(rng, 9)
			const h = 1e-6
			want := make([]float64, len(xs))
			for i, x := range xs {
				p, m := upload(b, core.Shape{2}, []float64{x + h, x - h}), b.Alloc(core.Shape{2})
				b.Unary(op, m, p)
				f := ref.Float64s(m)
				want[i] = (f[0] - f[1]) / (2 * h) * dys[i]
			}
			x, dy := upload(b, core.Shape{3, 3}, xs), upload(b, core.Shape{3, 3}, dys)
			dx := b.Alloc(x.Shape())
			b.Fill(dx, float32(math.NaN()))
			b.UnaryGrad(op, dx, x, dy, false)
			testutil.AllClose(t, "dx", ref.Float64s(dx), want, 1e-7, 1e-7)
			b.UnaryGrad(op, dx, x, dy, true)
			for i := range want {
				want[i] *= 2
			}
			testutil.AllClose(t, "accumulated dx", ref.Float64s(dx), want, 1e-7, 1e-7)
		})
	}
}

// TestReduce checks every subset of axes of a [2,3,4] tensor against explicit loops.
func TestReduce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const I, J, K = 2, 3, 4
	xs := randn(rng, I*J*K)
	for mask := range 8 {
		ri, rj, rk := mask&1 != 0, mask&2 != 0, mask&4 != 0
		dShape := core.Shape{I, J, K}
		if ri {
			dShape[0] = 1
		}
		if rj {
			dShape[1] = 1
		}
		if rk {
			dShape[2] = 1
		}
		sum := make([]float64, dShape.Size())
		mx := make([]float64, dShape.Size())
		for i := range mx {
			mx[i] = math.Inf(-1)
		}
		for i := range I {
			for j := range J {
				for k := range K {
					di, dj, dk := i, j, k
					if ri {
						di = 0
					}
					if rj {
						dj = 0
					}
					if rk {
						dk = 0
					}
					o := (di*dShape[1]+dj)*dShape[2] + dk
					v := xs[(i*J+j)*K+k]
					sum[o] += v
					mx[o] = math.Max(mx[o], v)
				}
			}
		}
		t.Run(fmt.Sprint(dShape), func(t *testing.T) {
			b := ref.New()
			x := upload(b, core.Shape{I, J, K}, xs)
			d := b.Alloc(dShape)
			b.Fill(d, float32(math.NaN()))
			b.Reduce(core.ReduceSum, d, x, false)
			testutil.AllClose(t, "sum", ref.Float64s(d), sum, 1e-14, 1e-14)
			b.Reduce(core.ReduceSum, d, x, true)
			twice := make([]float64, len(sum))
			for i := range sum {
				twice[i] = 2 * sum[i]
			}
			testutil.AllClose(t, "accumulated sum", ref.Float64s(d), twice, 1e-14, 1e-14)
			b.Reduce(core.ReduceMax, d, x, false)
			testutil.AllClose(t, "max", ref.Float64s(d), mx, 0, 0)
		})
	}
	b := ref.New()
	testutil.MustPanic(t, "accumulate", func() {
		b.Reduce(core.ReduceMax, b.Alloc(core.Shape{1}), b.Alloc(core.Shape{3}), true)
	})
	testutil.MustPanic(t, "Reduce", func() {
		b.Reduce(core.ReduceSum, b.Alloc(core.Shape{2}), b.Alloc(core.Shape{3}), false)
	})
}

func TestPermute(t *testing.T) {
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	xShape := core.Shape{2, 3, 4}
	xs := make([]float64, xShape.Size())
	for i := range xs {
		xs[i] = float64(i)
	}
	for _, perm := range perms {
		t.Run(fmt.Sprint(perm), func(t *testing.T) {
			b := ref.New()
			dShape := core.Shape{xShape[perm[0]], xShape[perm[1]], xShape[perm[2]]}
			d := b.Alloc(dShape)
			b.Permute(d, upload(b, xShape, xs), perm)
			got := ref.Float64s(d)
			for i := range 2 {
				for j := range 3 {
					for k := range 4 {
						src := [3]int{i, j, k}
						di := (src[perm[0]]*dShape[1]+src[perm[1]])*dShape[2] + src[perm[2]]
						if want := xs[(i*3+j)*4+k]; got[di] != want {
							t.Fatalf("x[%d,%d,%d] landed as %v, want %v", i, j, k, got[di], want)
						}
					}
				}
			}
		})
	}
	b := ref.New()
	testutil.MustPanic(t, "perm", func() { b.Permute(b.Alloc(core.Shape{2, 2}), b.Alloc(core.Shape{2, 2}), []int{0, 0}) })
}

func TestCopyAlong(t *testing.T) {
	// src [2,3,2] holds 1..12; dst [2,4,2] starts at 100+i.
	src := make([]float64, 12)
	for i := range src {
		src[i] = float64(i + 1)
	}
	dst0 := make([]float64, 16)
	for i := range dst0 {
		dst0[i] = float64(100 + i)
	}
	tests := []struct {
		name       string
		accumulate bool
		want       []float64
	}{
		// src[:, 1:3, :] into dst[:, 2:4, :].
		{"copy", false, []float64{100, 101, 102, 103, 3, 4, 5, 6, 108, 109, 110, 111, 9, 10, 11, 12}},
		{"accumulate", true, []float64{100, 101, 102, 103, 107, 109, 111, 113, 108, 109, 110, 111, 121, 123, 125, 127}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ref.New()
			d := upload(b, core.Shape{2, 4, 2}, dst0)
			b.CopyAlong(d, upload(b, core.Shape{2, 3, 2}, src), 1, 2, 1, 2, tt.accumulate)
			testutil.AllClose(t, "dst", ref.Float64s(d), tt.want, 0, 0)
		})
	}
	t.Run("axis0", func(t *testing.T) {
		b := ref.New()
		d := b.Alloc(core.Shape{3, 2})
		b.CopyAlong(d, upload(b, core.Shape{2, 2}, []float64{1, 2, 3, 4}), 0, 1, 0, 2, false)
		testutil.AllClose(t, "dst", ref.Float64s(d), []float64{0, 0, 1, 2, 3, 4}, 0, 0)
	})
	t.Run("lastaxis", func(t *testing.T) {
		b := ref.New()
		d := b.Alloc(core.Shape{2, 3})
		b.CopyAlong(d, upload(b, core.Shape{2, 2}, []float64{1, 2, 3, 4}), 1, 0, 1, 1, false)
		testutil.AllClose(t, "dst", ref.Float64s(d), []float64{2, 0, 0, 4, 0, 0}, 0, 0)
	})
	b := ref.New()
	testutil.MustPanic(t, "does not fit", func() {
		b.CopyAlong(b.Alloc(core.Shape{2, 3}), b.Alloc(core.Shape{2, 3}), 1, 2, 0, 2, false)
	})
}

func TestGatherScatterAdd(t *testing.T) {
	b := ref.New()
	x := upload(b, core.Shape{2, 3}, []float64{1, 2, 3, 4, 5, 6})
	idx := upload(b, core.Shape{4}, []float64{2, 0, 2, 1})
	d := b.Alloc(core.Shape{2, 4})
	b.Gather(d, x, idx, 1)
	testutil.AllClose(t, "Gather axis 1", ref.Float64s(d), []float64{3, 1, 3, 2, 6, 4, 6, 5}, 0, 0)

	rows := b.Alloc(core.Shape{3, 3})
	b.Gather(rows, x, upload(b, core.Shape{3}, []float64{1, 1, 0}), 0)
	testutil.AllClose(t, "Gather axis 0", ref.Float64s(rows), []float64{4, 5, 6, 4, 5, 6, 1, 2, 3}, 0, 0)

	s := upload(b, core.Shape{2, 3}, []float64{10, 10, 10, 10, 10, 10})
	b.ScatterAdd(s, d, idx, 1)
	// Column 2 receives positions 0 and 2, column 0 position 1, column 1 position 3.
	testutil.AllClose(t, "ScatterAdd", ref.Float64s(s), []float64{11, 12, 16, 14, 15, 22}, 0, 0)

	// Gather and ScatterAdd are adjoint: <Gather(x), y> = <x, ScatterAdd(y)>.
	rng := rand.New(rand.NewPCG(7, 8))
	xv, yv := randn(rng, 3*5*2), randn(rng, 3*6*2)
	iv := []float64{4, 0, 4, 4, 2, 1}
	g := b.Alloc(core.Shape{3, 6, 2})
	b.Gather(g, upload(b, core.Shape{3, 5, 2}, xv), upload(b, core.Shape{6}, iv), 1)
	sc := b.Alloc(core.Shape{3, 5, 2})
	b.ScatterAdd(sc, upload(b, core.Shape{3, 6, 2}, yv), upload(b, core.Shape{6}, iv), 1)
	lhs, rhs := dot(ref.Float64s(g), yv), dot(xv, ref.Float64s(sc))
	if math.Abs(lhs-rhs) > 1e-12 {
		t.Errorf("<Gather x, y> = %v, <x, ScatterAdd y> = %v", lhs, rhs)
	}

	testutil.MustPanic(t, "index 3", func() { b.Gather(d, x, upload(b, core.Shape{4}, []float64{0, 3, 1, 1}), 1) })
	testutil.MustPanic(t, "index 0.5", func() { b.ScatterAdd(s, d, upload(b, core.Shape{4}, []float64{0, 0.5, 1, 1}), 1) })
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// fdGrad returns the central-difference gradient of f at x.
func fdGrad(x []float64, f func([]float64) float64) []float64 {
	const h = 1e-6
	g := make([]float64, len(x))
	p := append([]float64(nil), x...)
	for i := range x {
		p[i] = x[i] + h
		fp := f(p)
		p[i] = x[i] - h
		fm := f(p)
		p[i] = x[i]
		g[i] = (fp - fm) / (2 * h)
	}
	return g
}

func TestSoftmaxFamily(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const R, D = 3, 5
	shape := core.Shape{R, D}
	for _, scale := range []float64{1, 300} {
		t.Run(fmt.Sprintf("scale=%v", scale), func(t *testing.T) {
			b := ref.New()
			xs := randn(rng, R*D)
			for i := range xs {
				xs[i] *= scale
			}
			wantSm, wantLsm := make([]float64, R*D), make([]float64, R*D)
			for r := range R {
				row := xs[r*D : (r+1)*D]
				mx := math.Inf(-1)
				for _, v := range row {
					mx = math.Max(mx, v)
				}
				z := 0.0
				for _, v := range row {
					z += math.Exp(v - mx)
				}
				for j, v := range row {
					wantSm[r*D+j] = math.Exp(v-mx) / z
					wantLsm[r*D+j] = v - mx - math.Log(z)
				}
			}
			x := upload(b, shape, xs)
			sm, lsm := b.Alloc(shape), b.Alloc(shape)
			b.Softmax(sm, x)
			b.LogSoftmax(lsm, x)
			testutil.AllClose(t, "softmax", ref.Float64s(sm), wantSm, 1e-14, 1e-14)
			testutil.AllClose(t, "logsoftmax", ref.Float64s(lsm), wantLsm, 1e-14, 1e-14)
			for r := range R {
				if s := sumOf(ref.Float64s(sm)[r*D : (r+1)*D]); math.Abs(s-1) > 1e-14 {
					t.Errorf("row %d sums to %v", r, s)
				}
			}
		})
	}
	t.Run("grads", func(t *testing.T) {
		b := ref.New()
		xs, dys := randn(rng, R*D), randn(rng, R*D)
		dy := upload(b, shape, dys)
		for _, log := range []bool{false, true} {
			fwd := func(v []float64) float64 {
				y := b.Alloc(shape)
				if log {
					b.LogSoftmax(y, upload(b, shape, v))
				} else {
					b.Softmax(y, upload(b, shape, v))
				}
				return dot(ref.Float64s(y), dys)
			}
			want := fdGrad(xs, fwd)
			y, dx := b.Alloc(shape), b.Alloc(shape)
			if log {
				b.LogSoftmax(y, upload(b, shape, xs))
				b.LogSoftmaxGrad(dx, y, dy, false)
			} else {
				b.Softmax(y, upload(b, shape, xs))
				b.SoftmaxGrad(dx, y, dy, false)
			}
			testutil.AllClose(t, fmt.Sprintf("log=%v dx", log), ref.Float64s(dx), want, 1e-8, 1e-8)
			if log {
				b.LogSoftmaxGrad(dx, y, dy, true)
			} else {
				b.SoftmaxGrad(dx, y, dy, true)
			}
			for i := range want {
				want[i] *= 2
			}
			testutil.AllClose(t, fmt.Sprintf("log=%v accumulated dx", log), ref.Float64s(dx), want, 1e-8, 1e-8)
		}
	})
}

func sumOf(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

func TestCrossEntropy(t *testing.T) {
	t.Run("uniform logits give log C", func(t *testing.T) {
		b := ref.New()
		for _, s := range []float32{0, 0.3} {
			loss, dl := b.Alloc(core.Shape{1}), b.Alloc(core.Shape{2, 4})
			b.CrossEntropy(loss, dl, upload(b, core.Shape{2, 4}, []float64{7, 7, 7, 7, -1, -1, -1, -1}),
				upload(b, core.Shape{2}, []float64{3, 0}), s)
			testutil.AllClose(t, "loss", ref.Float64s(loss), []float64{math.Log(4)}, 1e-15, 1e-15)
			// (1/C - q)/N: the label column gets (0.25 - (1-s) - s/4)/2.
			q := float64(s) / 4
			lab := (0.25 - (1 - float64(s)) - q) / 2
			oth := (0.25 - q) / 2
			testutil.AllClose(t, "dlogits", ref.Float64s(dl), []float64{oth, oth, oth, lab, lab, oth, oth, oth}, 1e-15, 1e-15)
		}
	})
	rng := rand.New(rand.NewPCG(11, 12))
	const N, C = 4, 6
	labels := []float64{5, 0, 2, 2}
	for _, s := range []float32{0, 0.1} {
		t.Run(fmt.Sprintf("smoothing=%v", s), func(t *testing.T) {
			b := ref.New()
			xs := randn(rng, N*C)
			lossOf := func(v []float64) float64 {
				loss := b.Alloc(core.Shape{1})
				b.CrossEntropy(loss, b.Alloc(core.Shape{N, C}), upload(b, core.Shape{N, C}, v),
					upload(b, core.Shape{N}, labels), s)
				return ref.Float64s(loss)[0]
			}
			// Hand formula: mean over rows of (1-s)·(-log p_y) + s·mean_c(-log p_c).
			want := 0.0
			for r := range N {
				row := xs[r*C : (r+1)*C]
				z := 0.0
				for _, v := range row {
					z += math.Exp(v)
				}
				nll := -math.Log(math.Exp(row[int(labels[r])]) / z)
				smooth := 0.0
				for _, v := range row {
					smooth += -math.Log(math.Exp(v)/z) / C
				}
				want += ((1-float64(s))*nll + float64(s)*smooth) / N
			}
			testutil.AllClose(t, "loss", []float64{lossOf(xs)}, []float64{want}, 1e-14, 1e-14)
			loss, dl := b.Alloc(core.Shape{1}), b.Alloc(core.Shape{N, C})
			b.CrossEntropy(loss, dl, upload(b, core.Shape{N, C}, xs), upload(b, core.Shape{N}, labels), s)
			testutil.AllClose(t, "dlogits", ref.Float64s(dl), fdGrad(xs, lossOf), 1e-8, 1e-8)
		})
	}
	b := ref.New()
	testutil.MustPanic(t, "index 6", func() {
		b.CrossEntropy(b.Alloc(core.Shape{1}), b.Alloc(core.Shape{1, 6}), b.Alloc(core.Shape{1, 6}),
			upload(b, core.Shape{1}, []float64{6}), 0)
	})
}

func TestBCEWithLogits(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const N, C = 3, 4
	b := ref.New()
	xs := uniform(rng, N*C, -4, 4)
	ts := uniform(rng, N*C, 0, 1)
	ts[0], ts[1] = 0, 1
	lossOf := func(v []float64) float64 {
		loss := b.Alloc(core.Shape{1})
		b.BCEWithLogits(loss, b.Alloc(core.Shape{N, C}), upload(b, core.Shape{N, C}, v), upload(b, core.Shape{N, C}, ts))
		return ref.Float64s(loss)[0]
	}
	// The textbook form -[t·log σ(x) + (1-t)·log(1-σ(x))] is fine for moderate x.
	want := 0.0
	for i, x := range xs {
		s := 1 / (1 + math.Exp(-x))
		want -= (ts[i]*math.Log(s) + (1-ts[i])*math.Log(1-s)) / (N * C)
	}
	testutil.AllClose(t, "loss", []float64{lossOf(xs)}, []float64{want}, 1e-14, 1e-14)
	loss, dl := b.Alloc(core.Shape{1}), b.Alloc(core.Shape{N, C})
	b.BCEWithLogits(loss, dl, upload(b, core.Shape{N, C}, xs), upload(b, core.Shape{N, C}, ts))
	testutil.AllClose(t, "dlogits", ref.Float64s(dl), fdGrad(xs, lossOf), 1e-8, 1e-8)

	// Large logits, where the textbook form overflows: loss ≈ |x| when the sign is wrong
	// and ≈ e^-|x| when it is right.
	dl = b.Alloc(core.Shape{1, 4})
	b.BCEWithLogits(loss, dl, upload(b, core.Shape{1, 4}, []float64{100, -100, 100, -100}),
		upload(b, core.Shape{1, 4}, []float64{1, 0, 0, 1}))
	testutil.AllClose(t, "large-logit loss", ref.Float64s(loss), []float64{(2*math.Exp(-100) + 200) / 4}, 1e-15, 1e-15)
	testutil.AllClose(t, "large-logit dlogits", ref.Float64s(dl), []float64{0, 0, 0.25, -0.25}, 1e-15, 1e-15)
}

func TestLayerNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const R, D = 3, 5
	const eps = 1e-5
	shape := core.Shape{R, D}
	xs := randn(rng, R*D)
	for i := range xs {
		xs[i] += 3
	}
	gs, bs := randn(rng, D), randn(rng, D)
	for _, affine := range []bool{true, false} {
		t.Run(fmt.Sprintf("affine=%v", affine), func(t *testing.T) {
			b := ref.New()
			var gamma, beta *core.Tensor
			if affine {
				gamma, beta = upload(b, core.Shape{D}, gs), upload(b, core.Shape{D}, bs)
			}
			want := make([]float64, R*D)
			wantMean, wantRstd := make([]float64, R), make([]float64, R)
			for r := range R {
				row := xs[r*D : (r+1)*D]
				mu := sumOf(row) / D
				sq := 0.0
				for _, v := range row {
					sq += v * v
				}
				vr := sq/D - mu*mu // E[x²] - μ², fine in float64 at this scale
				wantMean[r], wantRstd[r] = mu, 1/math.Sqrt(vr+float64(float32(eps)))
				for j, v := range row {
					want[r*D+j] = (v - mu) * wantRstd[r]
					if affine {
						want[r*D+j] = want[r*D+j]*gs[j] + bs[j]
					}
				}
			}
			x := upload(b, shape, xs)
			y, mean, rstd := b.Alloc(shape), b.Alloc(core.Shape{R}), b.Alloc(core.Shape{R})
			b.LayerNorm(y, mean, rstd, x, gamma, beta, eps)
			testutil.AllClose(t, "dst", ref.Float64s(y), want, 1e-12, 1e-12)
			testutil.AllClose(t, "mean", ref.Float64s(mean), wantMean, 1e-14, 1e-14)
			testutil.AllClose(t, "rstd", ref.Float64s(rstd), wantRstd, 1e-12, 1e-12)

			// Gradients of L = Σ dy·LayerNorm(x; γ, β) by central differences.
			dys := randn(rng, R*D)
			lossOf := func(xv, gv, bv []float64) float64 {
				var g, bb *core.Tensor
				if affine {
					g, bb = upload(b, core.Shape{D}, gv), upload(b, core.Shape{D}, bv)
				}
				out := b.Alloc(shape)
				b.LayerNorm(out, b.Alloc(core.Shape{R}), b.Alloc(core.Shape{R}), upload(b, shape, xv), g, bb, eps)
				return dot(ref.Float64s(out), dys)
			}
			wantDx := fdGrad(xs, func(v []float64) float64 { return lossOf(v, gs, bs) })
			dx := b.Alloc(shape)
			b.Fill(dx, 1)
			var dgamma, dbeta *core.Tensor
			if affine {
				dgamma, dbeta = b.Alloc(core.Shape{D}), b.Alloc(core.Shape{D})
				b.Fill(dgamma, 0.5) // grads add into what is there
			}
			dy := upload(b, shape, dys)
			b.LayerNormGrad(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, false)
			testutil.AllClose(t, "dx", ref.Float64s(dx), wantDx, 1e-7, 1e-7)
			b.LayerNormGrad(dx, nil, nil, dy, x, mean, rstd, gamma, true)
			for i := range wantDx {
				wantDx[i] *= 2
			}
			testutil.AllClose(t, "accumulated dx", ref.Float64s(dx), wantDx, 1e-7, 1e-7)
			if affine {
				wantDg := fdGrad(gs, func(v []float64) float64 { return lossOf(xs, v, bs) })
				for i := range wantDg {
					wantDg[i] += 0.5
				}
				testutil.AllClose(t, "dgamma", ref.Float64s(dgamma), wantDg, 1e-7, 1e-7)
				testutil.AllClose(t, "dbeta", ref.Float64s(dbeta), fdGrad(bs, func(v []float64) float64 { return lossOf(xs, gs, v) }), 1e-7, 1e-7)
			}
		})
	}
}

func TestDropout(t *testing.T) {
	const n = 200000
	for _, p := range []float32{0, 0.3, 0.9} {
		t.Run(fmt.Sprintf("p=%v", p), func(t *testing.T) {
			b := ref.New()
			ones := make([]float64, n)
			for i := range ones {
				ones[i] = 1
			}
			x := upload(b, core.Shape{n}, ones)
			mask := b.Alloc(core.Shape{n})
			b.Dropout(x, mask, x, p, 42) // dst aliases x
			scale := 1 / (1 - float64(p))
			m, d := ref.Float64s(mask), ref.Float64s(x)
			kept := 0
			for i := range m {
				keep := core.DropoutUniform(42, i) >= p
				if (keep && m[i] != scale) || (!keep && m[i] != 0) || d[i] != m[i] {
					t.Fatalf("element %d: mask %v dst %v, keep %v scale %v", i, m[i], d[i], keep, scale)
				}
				if keep {
					kept++
				}
			}
			// Kept count is Binomial(n, 1-p): allow five standard deviations.
			q := 1 - float64(p)
			if sd := math.Sqrt(n * q * (1 - q)); math.Abs(float64(kept)-n*q) > 5*sd+0.5 {
				t.Errorf("kept %d of %d, expected %v ± %v", kept, n, n*q, 5*sd)
			}
			if mean := sumOf(d) / n; math.Abs(mean-1) > 5*math.Sqrt(float64(p)/q/n)+1e-12 {
				t.Errorf("mean after dropout = %v, want ≈ 1 (inverted dropout preserves the mean)", mean)
			}
		})
	}
}

func TestSumSquaresScaleBy(t *testing.T) {
	b := ref.New()
	x := upload(b, core.Shape{2, 2}, []float64{1, -2, 3, 0.5})
	s := b.Alloc(core.Shape{1})
	b.Fill(s, float32(math.NaN()))
	b.SumSquares(s, x, false)
	testutil.AllClose(t, "SumSquares", ref.Float64s(s), []float64{14.25}, 0, 0)
	b.SumSquares(s, x, true)
	testutil.AllClose(t, "accumulated SumSquares", ref.Float64s(s), []float64{28.5}, 0, 0)
	b.ScaleBy(x, upload(b, core.Shape{1}, []float64{4}), -0.5)
	testutil.AllClose(t, "ScaleBy", ref.Float64s(x), []float64{-2, 4, -6, -1}, 0, 0)
}

func TestSGDStep(t *testing.T) {
	// lr, momentum, weight decay and data are dyadic so the expected values are exact.
	grad := []float64{0.5, -1}
	tests := []struct {
		name     string
		momentum float32
		wd       float32
		nesterov bool
		want     [2][]float64 // param after step 1 and step 2
		wantMom  [2][]float64
	}{
		{"plain", 0, 0, false,
			[2][]float64{{0.9375, 2.125}, {0.875, 2.25}}, [2][]float64{}},
		{"momentum", 0.5, 0.25, false,
			// g1 = [0.75,-0.5]; g2 = grad + 0.25·p1 = [0.7265625,-0.484375];
			// mom2 = 0.5·g1 + g2 = [1.1015625,-0.734375].
			[2][]float64{{0.90625, 2.0625}, {0.7685546875, 2.154296875}},
			[2][]float64{{0.75, -0.5}, {1.1015625, -0.734375}}},
		{"nesterov", 0.5, 0.25, true,
			// step1 = g1 + 0.5·g1; p1 = [0.859375, 2.09375]; g2 = [0.71484375,-0.4765625];
			// mom2 = [1.08984375,-0.7265625]; step2 = g2 + 0.5·mom2.
			[2][]float64{{0.859375, 2.09375}, {0.859375 - 0.125*(0.71484375+0.5*1.08984375), 2.09375 - 0.125*(-0.4765625-0.5*0.7265625)}},
			[2][]float64{{0.75, -0.5}, {1.08984375, -0.7265625}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ref.New()
			p, g := upload(b, core.Shape{2}, []float64{1, 2}), upload(b, core.Shape{2}, grad)
			var mom *core.Tensor
			if tt.momentum != 0 {
				mom = b.Alloc(core.Shape{2})
				b.Fill(mom, float32(math.NaN())) // the first step must not read it
			}
			for step := range 2 {
				b.SGDStep(p, g, mom, 0.125, tt.momentum, tt.wd, tt.nesterov, step == 0)
				testutil.AllClose(t, fmt.Sprintf("param after step %d", step+1), ref.Float64s(p), tt.want[step], 0, 0)
				if mom != nil {
					testutil.AllClose(t, fmt.Sprintf("mom after step %d", step+1), ref.Float64s(mom), tt.wantMom[step], 0, 0)
				}
			}
		})
	}
}

func TestAdamWStep(t *testing.T) {
	b := ref.New()
	p := upload(b, core.Shape{2}, []float64{1, -2})
	g := upload(b, core.Shape{2}, []float64{0.5, -1})
	m, v := b.Alloc(core.Shape{2}), b.Alloc(core.Shape{2})
	// lr 0.125, β1 0.5, β2 0.75, eps 0.0625, wd 0.25. Step 1: decay multiplies p by
	// 1 - 0.03125; m = [0.25,-0.5], v = [0.0625,0.25]; m̂ = [0.5,-1], v̂ = [0.25,1];
	// update = 0.125·m̂/(√v̂ + 0.0625) = [1/9, -2/17].
	b.AdamWStep(p, g, m, v, 0.125, 0.5, 0.75, 0.0625, 0.25, 1)
	testutil.AllClose(t, "param", ref.Float64s(p), []float64{0.96875 - 1.0/9, -1.9375 + 2.0/17}, 1e-15, 1e-15)
	testutil.AllClose(t, "m", ref.Float64s(m), []float64{0.25, -0.5}, 0, 0)
	testutil.AllClose(t, "v", ref.Float64s(v), []float64{0.0625, 0.25}, 0, 0)
	// Step 2 with the same gradient: m = [0.375,-0.75], v = [0.109375,0.4375];
	// bias corrections 0.75 and 0.4375 give m̂ = [0.5,-1], v̂ = [0.25,1] again.
	p1 := ref.Float64s(p)
	b.AdamWStep(p, g, m, v, 0.125, 0.5, 0.75, 0.0625, 0.25, 2)
	testutil.AllClose(t, "param step 2", ref.Float64s(p), []float64{p1[0]*0.96875 - 1.0/9, p1[1]*0.96875 + 2.0/17}, 1e-15, 1e-15)
	testutil.AllClose(t, "m step 2", ref.Float64s(m), []float64{0.375, -0.75}, 0, 0)
	testutil.AllClose(t, "v step 2", ref.Float64s(v), []float64{0.109375, 0.4375}, 0, 0)
	testutil.MustPanic(t, "step 0", func() { b.AdamWStep(p, g, m, v, 0.1, 0.9, 0.999, 1e-8, 0, 0) })
}
