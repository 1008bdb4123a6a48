//go:build cuda

package cuda

// Tests that need no GPU: device strings, the allocator's buckets, parameter packing
// against the C compiler's layout, and the host-side plans (cuBLAS calls, reduction
// and broadcast shapes) run through reference arithmetic.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core"
)

func TestParseDevice(t *testing.T) {
	for _, c := range []struct {
		spec     string
		ordinal  int
		prec     Precision
		err      string
		composed bool
	}{
		{"cuda:0?attention=composed&precision=tf32", 0, TF32, "", true},
		{"cuda:0?attention=fused", 0, FP32, "", false},
		{"cuda:0?attention=flash", 0, FP32, `attention "flash" is not supported`, false},
		{"cuda:0?profile=yes", 0, FP32, `profile "yes" is not supported (0 or 1)`, false},
		{"cuda", 0, FP32, "", false},
		{"cuda:0", 0, FP32, "", false},
		{"cuda:3", 3, FP32, "", false},
		{"cuda?precision=tf32", 0, TF32, "", false},
		{"cuda:1?precision=tf32", 1, TF32, "", false},
		{"cuda:1?precision=fp32", 1, FP32, "", false},
		{"cuda:0?precision=bf16", 0, BF16, "", false},
		{"cuda:x", 0, FP32, `"x" is not a device number`, false},
		{"cuda:-1", 0, FP32, "not a device number", false},
		{"gpu:0", 0, FP32, "want cuda or cuda:N", false},
		{"cuda:0?precision=fp16", 0, FP32, `precision "fp16" is not supported (fp32, tf32 or bf16)`, false},
		{"cuda:0?fast=1", 0, FP32, `unknown option "fast=1"`, false},
	} {
		t.Run(c.spec, func(t *testing.T) {
			ord, opt, err := ParseDevice(c.spec)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil || ord != c.ordinal || opt.Precision != c.prec || opt.ComposedAttention != c.composed {
				t.Fatalf("got (%d, %+v, %v), want (%d, %v, nil)", ord, opt, err, c.ordinal, c.prec)
			}
		})
	}
}

func TestBucket(t *testing.T) {
	prev := 0
	for n := 1; n < 1<<22; n += 1 + n/7 {
		c := bucket(n)
		if c < n {
			t.Fatalf("bucket(%d) = %d is too small", n, c)
		}
		if n > 256 && float64(c) > 1.125*float64(n) {
			t.Fatalf("bucket(%d) = %d wastes more than 12.5%%", n, c)
		}
		if c < prev {
			t.Fatalf("bucket(%d) = %d is below bucket of a smaller size (%d)", n, c, prev)
		}
		if bucket(c) != c {
			t.Fatalf("bucket(%d) = %d but bucket(%d) = %d: capacities must be fixed points", n, c, c, bucket(c))
		}
		prev = c
	}
}

// TestArgsLayout packs a parameter list of every kind and compares each offset with
// where the C compiler puts the same members (kd_param_layout in cudadl.c).
func TestArgsLayout(t *testing.T) {
	want := cParamLayout()
	a := newArgs().i32("op", 1).ptr("d", 2).ptr("a", 3).idx("ix", []int{1, 2}, []int{3}, nil).f32("f", 1.5).i64("n", -7).
		flag("acc", true).u64("seed", 9).f32("g", 2)
	if len(a.offs) != 9 {
		t.Fatalf("packed %d parameters, want 9", len(a.offs))
	}
	for i, off := range a.offs {
		if int(off) != want[i] {
			t.Errorf("parameter %d (%c) at offset %d, C puts it at %d", i, a.kinds[i], off, want[i])
		}
	}
	if got := int(a.offs[4] - a.offs[3]); got != want[9] {
		t.Errorf("Idx takes %d bytes, C's struct %d", got, want[9])
	}
	if string(a.kinds) != "ippxfliuf" {
		t.Errorf("kinds %q, want ippxfliuf", a.kinds)
	}
	// Values read back little-endian where they were put.
	if v := int64(leU64(a.buf[a.offs[5]:])); v != -7 {
		t.Errorf("long long reads back as %d", v)
	}
	if v := math.Float32frombits(uint32(leU64(a.buf[a.offs[4]:]))); v != 1.5 {
		t.Errorf("float reads back as %v", v)
	}
}

func leU64(b []byte) uint64 {
	var v uint64
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}

// emulateGemm computes g's column-major strided-batched product exactly as cuBLAS
// defines it, in float64, on flat buffers.
func emulateGemm(g gemmPlan, x, y, c []float64, alpha, beta float64) {
	at := func(buf []float64, base int64, ld int, trans bool, i, j int) float64 {
		// op(M)(i, j): M is stored column-major; op transposes.
		if trans {
			return buf[base+int64(j)+int64(i)*int64(ld)]
		}
		return buf[base+int64(i)+int64(j)*int64(ld)]
	}
	for p := 0; p < g.batch; p++ {
		for i := 0; i < g.m; i++ {
			for j := 0; j < g.n; j++ {
				s := 0.0
				for l := 0; l < g.k; l++ {
					s += at(x, int64(p)*g.strideX, g.ldx, g.transX, i, l) * at(y, int64(p)*g.strideY, g.ldy, g.transY, l, j)
				}
				o := int64(p)*g.strideC + int64(i) + int64(j)*int64(g.ldc)
				if beta == 0 {
					c[o] = alpha * s
				} else {
					c[o] = alpha*s + beta*c[o]
				}
			}
		}
	}
}

// rowMajorMatMul is the Backend contract written out directly.
func rowMajorMatMul(ds, as, bs core.Shape, a, b, d []float64, tA, tB bool, alpha, beta float64) {
	m, n := ds[len(ds)-2], ds[len(ds)-1]
	k := as[len(as)-1]
	if tA {
		k = as[len(as)-2]
	}
	batch := ds.Size() / max(m*n, 1)
	aMat, bMat := as[len(as)-2]*as[len(as)-1], bs[len(bs)-2]*bs[len(bs)-1]
	for p := 0; p < batch; p++ {
		ao, bo := 0, 0
		if as.Size() > aMat {
			ao = p * aMat
		}
		if bs.Size() > bMat {
			bo = p * bMat
		}
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				s := 0.0
				for l := 0; l < k; l++ {
					av := a[ao+i*k+l]
					if tA {
						av = a[ao+l*m+i]
					}
					bv := b[bo+l*n+j]
					if tB {
						bv = b[bo+j*k+l]
					}
					s += av * bv
				}
				o := p*m*n + i*n + j
				if beta == 0 {
					d[o] = alpha * s
				} else {
					d[o] = alpha*s + beta*d[o]
				}
			}
		}
	}
}

// TestPlanGemm runs each planned cuBLAS call through emulateGemm and compares with
// the row-major product the Backend promises: this is the C = A·B ⇔ Cᵀ = Bᵀ·Aᵀ swap,
// the leading dimensions and the zero strides of shared operands.
func TestPlanGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	dims := [][3]int{{1, 1, 1}, {3, 7, 5}, {17, 33, 1}, {1, 17, 3}, {5, 1, 7}, {4, 4, 4}}
	layouts := []struct {
		name    string
		a, b, d core.Shape
	}{
		{"plain", nil, nil, nil},
		{"batch[2]", core.Shape{2}, core.Shape{2}, core.Shape{2}},
		{"batch[2,3]", core.Shape{2, 3}, core.Shape{2, 3}, core.Shape{2, 3}},
		{"shared_a", nil, core.Shape{3}, core.Shape{3}},
		{"shared_b", core.Shape{1, 3}, nil, core.Shape{1, 3}},
		{"shared_a_ones", core.Shape{1, 1}, core.Shape{2, 3}, core.Shape{2, 3}},
	}
	for _, lay := range layouts {
		for _, dm := range dims {
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					m, k, n := dm[0], dm[1], dm[2]
					as := append(lay.a.Clone(), m, k)
					if tA {
						as = append(lay.a.Clone(), k, m)
					}
					bs := append(lay.b.Clone(), k, n)
					if tB {
						bs = append(lay.b.Clone(), n, k)
					}
					ds := append(lay.d.Clone(), m, n)
					name := fmt.Sprintf("%s/a%v_b%v/tA=%v,tB=%v", lay.name, as, bs, tA, tB)
					g, err := planGemm(ds, as, bs, tA, tB)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					a, b := randSlice(rng, as.Size()), randSlice(rng, bs.Size())
					d0 := randSlice(rng, ds.Size())
					alpha, beta := 0.5, 1.5
					want := append([]float64(nil), d0...)
					rowMajorMatMul(ds, as, bs, a, b, want, tA, tB, alpha, beta)
					got := append([]float64(nil), d0...)
					emulateGemm(g, b, a, got, alpha, beta)
					for i := range want {
						if math.Abs(got[i]-want[i]) > 1e-12 {
							t.Fatalf("%s: element %d: planned call gives %v, want %v (plan %+v)", name, i, got[i], want[i], g)
						}
					}
				}
			}
		}
	}
}

func TestPlanGemmRejects(t *testing.T) {
	for _, c := range []struct {
		ds, as, bs core.Shape
		tA, tB     bool
		err        string
	}{
		{core.Shape{3}, core.Shape{3, 2}, core.Shape{2, 1}, false, false, "at least two axes"},
		{core.Shape{3, 4}, core.Shape{3, 2}, core.Shape{3, 4}, false, false, "dimensions do not match"},
		{core.Shape{3, 4}, core.Shape{2, 3}, core.Shape{2, 4}, false, false, "dimensions do not match"},
		{core.Shape{2, 3, 4}, core.Shape{3, 3, 5}, core.Shape{5, 4}, false, false, "batch axes"},
		{core.Shape{2, 3, 4}, core.Shape{2, 3, 5}, core.Shape{4, 5, 4}, false, false, "batch axes"},
	} {
		_, err := planGemm(c.ds, c.as, c.bs, c.tA, c.tB)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("dst %v a %v b %v: error %v, want %q", c.ds, c.as, c.bs, err, c.err)
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.Float64()*2 - 1
	}
	return v
}

// refReduce sums (or maxes) x over the axes where ds is 1, straight from the shapes.
func refReduce(xs, ds core.Shape, x []float64, op core.ReduceOp) []float64 {
	out := make([]float64, ds.Size())
	if op == core.ReduceMax {
		for i := range out {
			out[i] = math.Inf(-1)
		}
	}
	st := core.BroadcastStrides(ds, xs)
	for i, v := range x {
		o, r := 0, i
		for ax := len(xs) - 1; ax >= 0; ax-- {
			o += (r % xs[ax]) * st[ax]
			r /= xs[ax]
		}
		if op == core.ReduceSum {
			out[o] += v
		} else {
			out[o] = math.Max(out[o], v)
		}
	}
	return out
}

// TestPlanReduce emulates the [A, R, K] kernels on every axis subset of several
// shapes and checks the classification on a few named cases.
func TestPlanReduce(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, xs := range []core.Shape{{17}, {3, 7}, {1, 5, 3}, {3, 1, 17}, {2, 3, 1, 7}, {2, 5, 3, 4}} {
		for mask := range 1 << len(xs) {
			ds := xs.Clone()
			for ax := range ds {
				if mask&(1<<ax) != 0 {
					ds[ax] = 1
				}
			}
			p, err := planReduce(xs, ds)
			if err != nil {
				t.Fatalf("%v->%v: %v", xs, ds, err)
			}
			x := randSlice(rng, xs.Size())
			want := refReduce(xs, ds, x, core.ReduceSum)
			if p.kind == reduceGeneric {
				continue // the generic kernel walks the shapes themselves
			}
			if p.A*p.R*p.K != xs.Size() {
				t.Fatalf("%v->%v: plan %+v does not cover x", xs, ds, p)
			}
			got := make([]float64, p.A*p.K)
			for a := 0; a < p.A; a++ {
				for r := 0; r < p.R; r++ {
					for k := 0; k < p.K; k++ {
						got[a*p.K+k] += x[(a*p.R+r)*p.K+k]
					}
				}
			}
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-12 {
					t.Fatalf("%v->%v: plan %+v gives %v at %d, want %v", xs, ds, p, got[i], i, want[i])
				}
			}
		}
	}
	for _, c := range []struct {
		xs, ds core.Shape
		kind   int
	}{
		{core.Shape{4, 768}, core.Shape{1, 768}, reduceCols},
		{core.Shape{8, 50, 768}, core.Shape{8, 1, 768}, reduceCols},
		{core.Shape{8, 50, 768}, core.Shape{8, 50, 1}, reduceRows},
		{core.Shape{8, 50, 768}, core.Shape{1, 1, 1}, reduceRows},
		{core.Shape{8, 50, 768}, core.Shape{1, 50, 1}, reduceGeneric},
		{core.Shape{8, 1, 768}, core.Shape{8, 1, 768}, reduceNone},
		{core.Shape{8, 1, 768}, core.Shape{1, 1, 768}, reduceCols},
	} {
		p, err := planReduce(c.xs, c.ds)
		if err != nil || p.kind != c.kind {
			t.Errorf("%v->%v: kind %d (%v), want %d", c.xs, c.ds, p.kind, err, c.kind)
		}
	}
	if _, err := planReduce(core.Shape{3, 4}, core.Shape{3, 2}); err == nil {
		t.Error("dst [3,2] from x [3,4] was accepted")
	}
}

// TestSuffixLen checks the Binary fast path's claim: where suffixLen accepts an
// operand, reading it at i mod n is what the broadcast strides read.
func TestSuffixLen(t *testing.T) {
	pairs := [][2]core.Shape{
		{{7}, {7}}, {{3, 1}, {1, 5}}, {{2, 3, 17}, {17}}, {{1}, {3, 17}}, {{2, 1, 3}, {2, 5, 1}},
		{{}, {3}}, {{33}, {}}, {{129, 257}, {257}}, {{129, 1}, {1, 257}}, {{1, 1, 4}, {3, 2, 4}}, {{2, 4}, {3, 2, 4}},
	}
	accepted := 0
	for _, pr := range pairs {
		out, err := core.BroadcastShape(pr[0], pr[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range pr {
			n, ok := suffixLen(s, out)
			if !ok {
				continue
			}
			accepted++
			st := core.BroadcastStrides(s, out)
			for i := 0; i < out.Size(); i++ {
				o, r := 0, i
				for ax := len(out) - 1; ax >= 0; ax-- {
					o += (r % out[ax]) * st[ax]
					r /= out[ax]
				}
				if o != i%max(n, 1) {
					t.Fatalf("operand %v of %v: element %d reads %d by strides, %d by i mod %d", s, out, i, o, i%n, n)
				}
			}
		}
	}
	if accepted < 12 {
		t.Fatalf("only %d operands took the fast path; equal shapes, rows and scalars should", accepted)
	}
	if _, ok := suffixLen(core.Shape{129, 1}, core.Shape{129, 257}); ok {
		t.Error("a column broadcast was taken for a suffix")
	}
}

func TestSplitPlan(t *testing.T) {
	for _, c := range []struct{ r, have, target, minChunk int }{
		{1 << 20, 1, 528, 1024}, {100, 1, 528, 1024}, {12800, 24, 528, 64}, {5, 3, 528, 64},
		{1 << 30, 1, 1 << 20, 1}, {1000, 1000, 528, 64},
	} {
		s, chunk := splitPlan(c.r, c.have, c.target, c.minChunk)
		if s < 1 || s > maxGridYZ || s*chunk < c.r || (s-1)*chunk >= c.r {
			t.Errorf("%+v: %d splits of %d do not tile %d exactly", c, s, chunk, c.r)
		}
		if s > 1 && chunk < c.minChunk {
			t.Errorf("%+v: chunk %d below the minimum %d", c, chunk, c.minChunk)
		}
		if c.have >= c.target && s != 1 {
			t.Errorf("%+v: split %d ways with enough blocks already", c, s)
		}
	}
}

func TestStatusError(t *testing.T) {
	if statusError(0) != nil {
		t.Fatal("status 0 is an error")
	}
	err := statusError(1 | 4)
	if err == nil || !strings.Contains(err.Error(), "Gather") || !strings.Contains(err.Error(), "CrossEntropy") ||
		strings.Contains(err.Error(), "ScatterAdd") {
		t.Fatalf("status 5 reads %v", err)
	}
}
