package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// runAttention runs autograd's MultiHeadAttention on be, forward and backward for an
// output gradient g, with q, k and v as parameters.
func runAttention(be *Backend, q, k, v, g []float32, shape core.Shape, heads int, causal bool, scale float32) (tp *autograd.Tape, out, pq, pk, pv *autograd.Var) {
	tp = autograd.NewTape(be)
	param := func(x []float32) *autograd.Var {
		p := autograd.NewParam(be, "x", shape)
		be.Upload(p.Value, x)
		return p
	}
	pq, pk, pv = param(q), param(k), param(v)
	out = tp.MultiHeadAttention(pq, pk, pv, heads, causal, scale)
	tp.Backward(tp.Sum(tp.Mul(out, tp.Input(g, shape...)), nil, false))
	return tp, out, pq, pk, pv
}

// composedAttention runs autograd's composed multi-head attention (head permutes,
// Attention, permute back) on a CPU backend with the fused path off: the output and
// the gradients of q, k and v for an output gradient g.
func composedAttention(t *testing.T, q, k, v, g []float32, shape core.Shape, heads int, causal bool, scale float32) (out, dq, dk, dv []float32) {
	t.Helper()
	be := newBackend()
	be.composedAttention = true
	if be.FusesAttention() {
		t.Fatal("attention=composed still fuses")
	}
	_, o, pq, pk, pv := runAttention(be, q, k, v, g, shape, heads, causal, scale)
	return download(be, o.Value), download(be, pq.Grad), download(be, pk.Grad), download(be, pv.Grad)
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
			t.Fatalf("%s[%d] = %v fused, %v composed", what, i, got[i], want[i])
		}
	}
}

// TestFusedAttentionMatchesComposed holds AttentionForward and AttentionBackward to
// the composed path bit for bit, on odd lengths and head sizes, causal or not, with
// gradients written fresh, added to existing values, or not wanted; and then autograd
// on the fused path (the default) to autograd on the composed one.
func TestFusedAttentionMatchesComposed(t *testing.T) {
	if !newBackend().FusesAttention() {
		t.Skip("no gemm kernel on this CPU: attention is composed")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, c := range []struct {
		n, l, heads, d         int
		causal                 bool
		accQ, accK, accV, noDK bool
	}{
		{2, 7, 3, 5, false, false, true, false, false},
		{1, 50, 2, 64, false, true, false, false, true},
		{2, 13, 2, 8, true, false, false, true, false},
		{1, 33, 1, 3, true, true, true, true, false},
		{3, 50, 12, 64, false, false, false, false, false}, // ViT-B/32's heads
	} {
		t.Run(fmt.Sprintf("n%d_l%d_h%d_d%d_causal%v", c.n, c.l, c.heads, c.d, c.causal), func(t *testing.T) {
			shape := core.Shape{c.n, c.l, c.heads * c.d}
			size := shape.Size()
			q, k, v, g := randn(rng, size), randn(rng, size), randn(rng, size), randn(rng, size)
			scale := float32(1 / math.Sqrt(float64(c.d)))
			wantOut, wantDQ, wantDK, wantDV := composedAttention(t, q, k, v, g, shape, c.heads, c.causal, scale)

			b := newBackend()
			tq, tk, tv, tg := upload(b, shape, q), upload(b, shape, k), upload(b, shape, v), upload(b, shape, g)
			out, probs := b.Alloc(shape), b.Alloc(core.Shape{c.n, c.heads, c.l, c.l})
			b.AttentionForward(out, probs, tq, tk, tv, c.heads, c.causal, scale)
			sameBits(t, "out", download(b, out), wantOut)

			// Accumulated gradients start from prev: the composed gradient added to it
			// in float32 is what the fused kernel's beta = 1 must give.
			prev := randn(rng, size)
			grad := func(acc bool, want []float32) (*core.Tensor, []float32) {
				if !acc {
					return b.Alloc(shape), want
				}
				sum := make([]float32, size)
				for i := range sum {
					sum[i] = prev[i] + want[i]
				}
				return upload(b, shape, prev), sum
			}
			dq, wantDQ := grad(c.accQ, wantDQ)
			dv, wantDV := grad(c.accV, wantDV)
			var dk *core.Tensor
			if !c.noDK {
				dk, wantDK = grad(c.accK, wantDK)
			}
			b.AttentionBackward(dq, dk, dv, tg, tq, tk, tv, probs, c.heads, scale, c.accQ, c.accK && !c.noDK, c.accV)
			sameBits(t, "dq", download(b, dq), wantDQ)
			sameBits(t, "dv", download(b, dv), wantDV)
			if dk != nil {
				sameBits(t, "dk", download(b, dk), wantDK)
			}

			// autograd on the default (fused) backend.
			_, o, pq, pk, pv := runAttention(b, q, k, v, g, shape, c.heads, c.causal, scale)
			wantOut, wantDQ, wantDK, wantDV = composedAttention(t, q, k, v, g, shape, c.heads, c.causal, scale)
			sameBits(t, "autograd out", download(b, o.Value), wantOut)
			sameBits(t, "autograd dq", download(b, pq.Grad), wantDQ)
			sameBits(t, "autograd dk", download(b, pk.Grad), wantDK)
			sameBits(t, "autograd dv", download(b, pv.Grad), wantDV)
		})
	}
}

// BenchmarkAttention times ViT-B/32's multi-head attention at batch 8 (forward and
// backward through autograd) fused and composed, alternating within each iteration.
func BenchmarkAttention(b *testing.B) {
	const n, l, heads, d = 8, 50, 12, 64
	shape := core.Shape{n, l, heads * d}
	rng := rand.New(rand.NewPCG(1, 2))
	q, k, v, g := randn(rng, shape.Size()), randn(rng, shape.Size()), randn(rng, shape.Size()), randn(rng, shape.Size())
	composed := newBackend()
	composed.composedAttention = true
	backends := []*Backend{newBackend(), composed}
	names := []string{"fused", "composed"}
	spent := make([]time.Duration, len(backends))
	step := func(be *Backend) {
		tp, _, _, _, _ := runAttention(be, q, k, v, g, shape, heads, false, 0.125)
		tp.Reset()
	}
	for _, be := range backends {
		step(be)
	}
	for b.Loop() {
		for i, be := range backends {
			t0 := time.Now()
			step(be)
			spent[i] += time.Since(t0)
		}
	}
	for i, name := range names {
		b.ReportMetric(float64(spent[i].Microseconds())/float64(b.N), "µs/step-"+name)
	}
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "fused-speedup")
}
