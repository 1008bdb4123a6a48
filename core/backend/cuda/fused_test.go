//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/testutil"
)

// composedAttention runs autograd's composed multi-head attention (head permutes,
// Attention, permute back) on the CPU backend with its own fused attention off: the
// output, and the gradients of q, k and v for an output gradient g.
func composedAttention(q, k, v, g []float32, shape core.Shape, heads int, causal bool, scale float32) (out, dq, dk, dv []float32) {
	be, err := core.OpenBackend("cpu?attention=composed")
	if err != nil {
		panic(err)
	}
	tp := autograd.NewTape(be)
	param := func(x []float32) *autograd.Var {
		p := autograd.NewParam(be, "x", shape)
		be.Upload(p.Value, x)
		return p
	}
	pq, pk, pv := param(q), param(k), param(v)
	o := tp.MultiHeadAttention(pq, pk, pv, heads, causal, scale)
	tp.Backward(tp.Sum(tp.Mul(o, tp.Input(g, shape...)), nil, false))
	return testutil.Download(be, o.Value), testutil.Download(be, pq.Grad), testutil.Download(be, pk.Grad), testutil.Download(be, pv.Grad)
}

// TestFusedAttentionMatchesComposed holds k_mha_fwd and k_mha_bwd to the composed
// path on the CPU, on odd lengths and head sizes, causal or not, with gradients
// written fresh, added to existing values, or not wanted, with k and v staged in
// shared memory and (the last case) read from global memory.
func TestFusedAttentionMatchesComposed(t *testing.T) {
	onEach(t, func(t *testing.T, b *Backend) {
		rng := rand.New(rand.NewPCG(9, 10))
		for _, c := range []struct {
			n, l, heads, d   int
			causal           bool
			accQ, accV, noDK bool
		}{
			{2, 7, 3, 5, false, false, false, false},
			{1, 50, 2, 64, false, true, false, true},
			{2, 13, 2, 8, true, false, true, false},
			{1, 33, 1, 3, true, true, true, false},
			{1, 130, 1, 64, false, false, false, false}, // too long to stage k and v in shared memory
		} {
			t.Run(fmt.Sprintf("n%d_l%d_h%d_d%d_causal%v", c.n, c.l, c.heads, c.d, c.causal), func(t *testing.T) {
				shape := core.Shape{c.n, c.l, c.heads * c.d}
				size := shape.Size()
				q, k, v, g := randF32(rng, size), randF32(rng, size), randF32(rng, size), randF32(rng, size)
				scale := float32(1 / math.Sqrt(float64(c.d)))
				wantOut, wantDQ, wantDK, wantDV := composedAttention(q, k, v, g, shape, c.heads, c.causal, scale)

				tq, tk, tv, tg := testutil.Upload(b, shape, q), testutil.Upload(b, shape, k), testutil.Upload(b, shape, v), testutil.Upload(b, shape, g)
				out, probs := b.Alloc(shape), b.Alloc(core.Shape{c.n, c.heads, c.l, c.l})
				b.AttentionForward(out, probs, tq, tk, tv, c.heads, c.causal, scale)
				prior := randF32(rng, size)
				grad := func(acc bool, want []float32) (*core.Tensor, []float32) {
					d := b.Alloc(shape)
					if !acc {
						b.Fill(d, float32(math.NaN())) // must not be read
						return d, want
					}
					b.Upload(d, prior)
					sum := make([]float32, size)
					for i := range sum {
						sum[i] = prior[i] + want[i]
					}
					return d, sum
				}
				dq, wantQ := grad(c.accQ, wantDQ)
				dv, wantV := grad(c.accV, wantDV)
				var dk *core.Tensor
				wantK := wantDK
				if !c.noDK {
					dk, wantK = grad(false, wantDK)
				}
				b.AttentionBackward(dq, dk, dv, tg, tq, tk, tv, probs, c.heads, scale, c.accQ, false, c.accV)
				check := func(name string, got, want []float32) {
					t.Helper()
					for i := range want {
						if d := math.Abs(float64(got[i] - want[i])); d > 2e-5*math.Max(1, math.Abs(float64(want[i]))) || got[i] != got[i] {
							t.Fatalf("%s[%d] = %v, want %v", name, i, got[i], want[i])
						}
					}
				}
				check("out", testutil.Download(b, out), wantOut)
				check("dq", testutil.Download(b, dq), wantQ)
				check("dv", testutil.Download(b, dv), wantV)
				if dk != nil {
					check("dk", testutil.Download(b, dk), wantK)
					b.Release(dk)
				}
				for _, x := range []*core.Tensor{tq, tk, tv, tg, out, probs, dq, dv} {
					b.Release(x)
				}
			})
		}
	})
}

// TestFusedEpiloguesMatchCPU holds BiasActivation and AddLayerNorm to the CPU's
// Binary, Unary and LayerNorm, in the layer norm's warp-per-row and block-per-row
// modes (rows up to 1024 long and longer).
func TestFusedEpiloguesMatchCPU(t *testing.T) {
	onEach(t, func(t *testing.T, b *Backend) {
		c := cpu.New()
		rng := rand.New(rand.NewPCG(11, 12))
		check := func(t *testing.T, name string, got, want []float32, tol float64) {
			t.Helper()
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > tol*math.Max(1, math.Abs(float64(want[i]))) || got[i] != got[i] {
					t.Fatalf("%s[%d] = %v, want %v", name, i, got[i], want[i])
				}
			}
		}
		for _, s := range []core.Shape{{3, 7}, {2, 5, 33}, {4, 1030}} {
			f := s[len(s)-1]
			x, r, bias, gamma := randF32(rng, s.Size()), randF32(rng, s.Size()), randF32(rng, f), randF32(rng, f)
			for _, op := range []core.UnaryOp{core.GELU, core.QuickGELU, core.ReLU} {
				t.Run(fmt.Sprintf("BiasActivation/%v/%v", op, s), func(t *testing.T) {
					cx, cb, pre, act := testutil.Upload(c, s, x), testutil.Upload(c, core.Shape{f}, bias), c.Alloc(s), c.Alloc(s)
					c.Binary(core.Add, pre, cx, cb)
					c.Unary(op, act, pre)
					gp, gb, gd := testutil.Upload(b, s, x), testutil.Upload(b, core.Shape{f}, bias), b.Alloc(s)
					b.BiasActivation(op, gd, gp, gb)
					check(t, "pre", testutil.Download(b, gp), testutil.Download(c, pre), 1e-6)
					check(t, "out", testutil.Download(b, gd), testutil.Download(c, act), 1e-5)
					for _, t := range []*core.Tensor{gp, gb, gd} {
						b.Release(t)
					}
				})
			}
			t.Run(fmt.Sprintf("AddLayerNorm/%v", s), func(t *testing.T) {
				rows := s.Size() / f
				cx, cr, cg := testutil.Upload(c, s, x), testutil.Upload(c, s, r), testutil.Upload(c, core.Shape{f}, gamma)
				cb := testutil.Upload(c, core.Shape{f}, bias)
				sum, y, mean, rstd := c.Alloc(s), c.Alloc(s), c.Alloc(core.Shape{rows}), c.Alloc(core.Shape{rows})
				c.Binary(core.Add, sum, cx, cr)
				c.LayerNorm(y, mean, rstd, sum, cg, cb, 1e-5)
				gx, gr, gg, gb := testutil.Upload(b, s, x), testutil.Upload(b, s, r), testutil.Upload(b, core.Shape{f}, gamma), testutil.Upload(b, core.Shape{f}, bias)
				gs, gy, gm, grs := b.Alloc(s), b.Alloc(s), b.Alloc(core.Shape{rows}), b.Alloc(core.Shape{rows})
				b.AddLayerNorm(gs, gy, gm, grs, gx, gr, gg, gb, 1e-5)
				check(t, "sum", testutil.Download(b, gs), testutil.Download(c, sum), 1e-6)
				check(t, "normed", testutil.Download(b, gy), testutil.Download(c, y), 1e-5)
				check(t, "mean", testutil.Download(b, gm), testutil.Download(c, mean), 1e-5)
				check(t, "rstd", testutil.Download(b, grs), testutil.Download(c, rstd), 1e-5)
				for _, t := range []*core.Tensor{gx, gr, gg, gb, gs, gy, gm, grs} {
					b.Release(t)
				}
			})
		}
	})
}
