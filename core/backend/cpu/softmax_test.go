package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/testutil"
)

func softmax64(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v)
	}
	out := make([]float64, len(x))
	var s float64
	for i, v := range x {
		out[i] = math.Exp(v - m)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

// rowsOf applies f to each row of length cols.
func rowsOf(x []float64, cols int, f func([]float64) []float64) []float64 {
	var out []float64
	for r := 0; r+cols <= len(x); r += cols {
		out = append(out, f(x[r:r+cols])...)
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func TestSoftmaxAndGrad(t *testing.T) {
	const rows, cols = 3, 7
	rng := rand.New(rand.NewPCG(6, 6))
	xs := randn(rng, rows*cols)
	xs[3] = 40 // large enough that an unshifted exp would lose precision
	dys := randn(rng, rows*cols)
	b := New()
	s := core.Shape{rows, cols}
	x, dy := upload(b, s, xs), upload(b, s, dys)
	for _, log := range []bool{false, true} {
		f := softmax64
		if log {
			f = func(x []float64) []float64 {
				p := softmax64(x)
				for i := range p {
					p[i] = math.Log(p[i])
				}
				return p
			}
		}
		y, dx := b.Alloc(s), b.Alloc(s)
		if log {
			b.LogSoftmax(y, x)
		} else {
			b.Softmax(y, x)
		}
		closeTo(t, "forward", download(b, y), rowsOf(f64(xs), cols, f), 1e-7, 1e-6)
		// The gradient of L = Σ dy·f(x) is what the backward op must produce.
		loss := func(x []float64) float64 { return dot(f64(dys), rowsOf(x, cols, f)) }
		want := testutil.CentralDiff(loss, f64(xs), 1e-6, nil)
		if log {
			b.LogSoftmaxGrad(dx, y, dy, false)
		} else {
			b.SoftmaxGrad(dx, y, dy, false)
		}
		closeTo(t, "backward", download(b, dx), want, 1e-5, 1e-4)
		if log {
			b.LogSoftmaxGrad(dx, y, dy, true)
		} else {
			b.SoftmaxGrad(dx, y, dy, true)
		}
		for i := range want {
			want[i] *= 2
		}
		closeTo(t, "backward accumulated", download(b, dx), want, 1e-5, 1e-4)
	}
}

// TestCrossEntropy checks one hand-computed row and then the general case against
// the definition and finite differences.
func TestCrossEntropy(t *testing.T) {
	b := New()
	// logits [0, ln 3]: softmax = [1/4, 3/4]; label 1: loss = -ln(3/4).
	loss, dl := b.Alloc(core.Shape{1}), b.Alloc(core.Shape{1, 2})
	b.CrossEntropy(loss, dl, upload(b, core.Shape{1, 2}, []float32{0, float32(math.Log(3))}), upload(b, core.Shape{1}, []float32{1}), 0)
	closeTo(t, "loss", download(b, loss), []float64{-math.Log(0.75)}, 0, 1e-6)
	closeTo(t, "dlogits", download(b, dl), []float64{0.25, -0.25}, 1e-7, 1e-6)

	const n, c = 5, 4
	rng := rand.New(rand.NewPCG(7, 7))
	xs := randn(rng, n*c)
	labels := []float32{3, 0, 1, 1, 2}
	for _, smoothing := range []float32{0, 0.1} {
		ce := func(x []float64) float64 {
			var total float64
			for r := 0; r < n; r++ {
				p := softmax64(x[r*c : (r+1)*c])
				for j := range p {
					q := float64(smoothing) / c
					if j == int(labels[r]) {
						q += 1 - float64(smoothing)
					}
					total -= q * math.Log(p[j])
				}
			}
			return total / n
		}
		loss, dl := b.Alloc(core.Shape{1}), b.Alloc(core.Shape{n, c})
		x := upload(b, core.Shape{n, c}, xs)
		b.CrossEntropy(loss, dl, x, upload(b, core.Shape{n}, labels), smoothing)
		closeTo(t, "loss", download(b, loss), []float64{ce(f64(xs))}, 0, 1e-6)
		closeTo(t, "dlogits", download(b, dl), testutil.CentralDiff(ce, f64(xs), 1e-6, nil), 1e-6, 1e-4)
		b.CrossEntropy(loss, nil, x, upload(b, core.Shape{n}, labels), smoothing) // no gradient wanted
		closeTo(t, "loss without dlogits", download(b, loss), []float64{ce(f64(xs))}, 0, 1e-6)
	}
}

func TestBCEWithLogits(t *testing.T) {
	b := New()
	const n, c = 3, 5
	rng := rand.New(rand.NewPCG(8, 8))
	xs := randn(rng, n*c)
	xs[0] = 30 // log(1+e^-30) must not round to a wrong value, nor overflow
	xs[1] = -30
	ts := make([]float32, n*c)
	for i := range ts {
		ts[i] = float32(i%3) / 2
	}
	bce := func(x []float64) float64 {
		var s float64
		for i, v := range x {
			// The textbook form -t·log σ(x) - (1-t)·log(1-σ(x)), in float64, with
			// 1-σ(x) written as σ(-x) = 1/(1+e^x) so that it does not cancel.
			p, q := 1/(1+math.Exp(-v)), 1/(1+math.Exp(v))
			s -= float64(ts[i])*math.Log(p) + (1-float64(ts[i]))*math.Log(q)
		}
		return s / float64(len(x))
	}
	loss, dl := b.Alloc(core.Shape{1}), b.Alloc(core.Shape{n, c})
	b.BCEWithLogits(loss, dl, upload(b, core.Shape{n, c}, xs), upload(b, core.Shape{n, c}, ts))
	closeTo(t, "loss", download(b, loss), []float64{bce(f64(xs))}, 0, 1e-6)
	closeTo(t, "dlogits", download(b, dl), testutil.CentralDiff(bce, f64(xs), 1e-6, nil), 1e-6, 1e-4)
}

func layerNorm64(x, gamma, beta []float64, eps float64) []float64 {
	n := float64(len(x))
	var mu, v float64
	for _, e := range x {
		mu += e / n
	}
	for _, e := range x {
		v += (e - mu) * (e - mu) / n
	}
	out := make([]float64, len(x))
	for i, e := range x {
		out[i] = (e - mu) / math.Sqrt(v+eps)
		if gamma != nil {
			out[i] *= gamma[i]
		}
		if beta != nil {
			out[i] += beta[i]
		}
	}
	return out
}

func TestLayerNorm(t *testing.T) {
	const rows, cols, eps = 4, 6, 1e-5
	rng := rand.New(rand.NewPCG(9, 9))
	xs, gs, bs, dys := randn(rng, rows*cols), randn(rng, cols), randn(rng, cols), randn(rng, rows*cols)
	for i := 0; i < cols; i++ {
		xs[i] += 1000 // a large mean: the naive one-pass variance would cancel
	}
	b := New()
	s := core.Shape{rows, cols}
	for _, affine := range []bool{true, false} {
		var gamma, beta *core.Tensor
		var g64, b64 []float64
		if affine {
			gamma, beta = upload(b, core.Shape{cols}, gs), upload(b, core.Shape{cols}, bs)
			g64, b64 = f64(gs), f64(bs)
		}
		x, dst, mean, rstd := upload(b, s, xs), b.Alloc(s), b.Alloc(core.Shape{rows}), b.Alloc(core.Shape{rows})
		b.LayerNorm(dst, mean, rstd, x, gamma, beta, eps)
		ln := func(x, g, be []float64) []float64 {
			return rowsOf(x, cols, func(r []float64) []float64 { return layerNorm64(r, g, be, eps) })
		}
		closeTo(t, "LayerNorm", download(b, dst), ln(f64(xs), g64, b64), 1e-5, 1e-5)
		for r := 0; r < rows; r++ {
			row := f64(xs[r*cols : (r+1)*cols])
			var mu float64
			for _, v := range row {
				mu += v / cols
			}
			closeTo(t, "mean", download(b, mean)[r:r+1], []float64{mu}, 0, 1e-7)
		}

		// Gradients of L = Σ dy·LN(x; γ, β) by finite differences.
		dyf := f64(dys)
		wantDx := testutil.CentralDiff(func(x []float64) float64 { return dot(dyf, ln(x, g64, b64)) }, f64(xs), 1e-6, nil)
		dx := b.Alloc(s)
		b.Fill(dx, 1)
		var dgamma, dbeta *core.Tensor
		if affine {
			dgamma, dbeta = upload(b, core.Shape{cols}, make([]float32, cols)), b.Alloc(core.Shape{cols})
			b.Fill(dgamma, 0.5)
		}
		b.LayerNormGrad(dx, dgamma, dbeta, upload(b, s, dys), x, mean, rstd, gamma, true)
		for i := range wantDx {
			wantDx[i]++
		}
		closeTo(t, "dx accumulated", download(b, dx), wantDx, 2e-4, 2e-4)
		if affine {
			wantDg := testutil.CentralDiff(func(g []float64) float64 { return dot(dyf, ln(f64(xs), g, b64)) }, f64(gs), 1e-6, nil)
			for i := range wantDg {
				wantDg[i] += 0.5
			}
			wantDb := testutil.CentralDiff(func(be []float64) float64 { return dot(dyf, ln(f64(xs), g64, be)) }, f64(bs), 1e-6, nil)
			closeTo(t, "dgamma", download(b, dgamma), wantDg, 1e-4, 1e-4)
			closeTo(t, "dbeta", download(b, dbeta), wantDb, 1e-5, 1e-5)
		}
	}
}

// TestExpShifted checks the AVX2 exponential against math.Exp bit for bit: over its
// whole range at fine spacing, at random points, across the [-708, 709] edges it hands
// back to math.Exp, and at NaN and the infinities, with a tail past the last four.
func TestExpShifted(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU")
	}
	rng := rand.New(rand.NewPCG(31, 32))
	var xs []float32
	for v := -760.0; v <= 760; v += 0.0137 {
		xs = append(xs, float32(v))
	}
	for range 200000 {
		xs = append(xs, float32(rng.NormFloat64()*30))
	}
	inf := float32(math.Inf(1))
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 1e-30, -708.1, -707.9, 708.9, 709.1, float32(math.NaN()), inf, -inf, 3)
	for _, shift := range []float64{0, 2.5, -100} {
		e := make([]float64, len(xs))
		expShifted(e, xs, shift)
		for i, x := range xs {
			want := math.Exp(float64(x) - shift)
			if math.Float64bits(e[i]) != math.Float64bits(want) && !(math.IsNaN(e[i]) && math.IsNaN(want)) {
				t.Fatalf("exp(%v - %v) = %v (%#x), math.Exp gives %v (%#x)", x, shift, e[i], math.Float64bits(e[i]), want, math.Float64bits(want))
			}
		}
	}
}
