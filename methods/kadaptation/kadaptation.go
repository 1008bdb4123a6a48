// Package kadaptation is the paper's method (He et al., AAAI 2023). On the query and
// value projections of every block the weight update is
//
//	ΔW = s · Σ_{i=1..n} A_i ⊗ B_i
//
// with slow weights A_i = a_i b_iᵀ (n×n, rank 1) shared by all layers (one set for q,
// one for v) and fast weights B_i = u_i v_iᵀ (m×m, rank 1, width = n·m) per layer and
// projection, plus one bias vector per layer added to the query projection's output.
// On ViT-B/32 (n = 32, m = 24) that is 12·(4·32·24 + 768) + 4·32·32 = 50,176
// trainable parameters.
//
// Initialisation departs from the released code on purpose: there u and v both start
// at zero, which gives u, v and the slow weights zero gradient forever (ΔW stays 0
// and only the bias and head learn). Here u ~ N(0, 0.02²) and v = 0, so ΔW starts at
// exactly zero but learns from the first step, as LoRA's A/B init does; a and b are
// U(−0.01, 0.01) as in the paper. The value path has its own fast weights (the
// released code reuses the query's), and the update is a plain [out, in] weight
// delta, so no reshape can mix heads, tokens and batch.
package kadaptation

import (
	"fmt"

	"github.com/kadapt/kadapt/plugins/plan"
)

// Config is KAdaptation's hyperparameters.
type Config struct {
	N       int      // Kronecker factors; must divide the width
	Scale   float64  // s
	Targets []string // projections among q, k, v, out
	FastStd float64  // u's init std
	SlowLim float64  // a, b ~ U(-SlowLim, SlowLim)
	Bias    bool     // the per-layer bias on the first target's output
}

// Default is the paper's setting. The scale is 1, not the released code's 160
// (α/r·5): with SGD at the paper's learning rates, 160 makes the slow weights' first
// updates dominate ΔW; choose it with --hp scale=… to reproduce the code.
func Default() Config {
	return Config{N: 32, Scale: 1, Targets: []string{"q", "v"}, FastStd: 0.02, SlowLim: 0.01, Bias: true}
}

// Plan builds KAdaptation's plan for bb.
func Plan(bb plan.Backbone, c Config) (plan.Plan, error) {
	w := bb.Width
	if c.N <= 0 || w%c.N != 0 {
		return plan.Plan{}, fmt.Errorf("n = %d must be a positive divisor of the backbone width %d", c.N, w)
	}
	m := w / c.N
	p := plan.Plan{Method: "kadaptation", Version: "1", Trainable: plan.TrainableSpec{Mode: plan.TrainNone},
		Notes: fmt.Sprintf("ΔW = %g·Σ_{i<%d} (a_i b_iᵀ) ⊗ (u_i v_iᵀ) on %v; a, b ~ U(±%g) shared across layers; u ~ N(0, %g²), v = 0 per layer (so ΔW = 0 at start yet learns)",
			c.Scale, c.N, c.Targets, c.SlowLim, c.FastStd)}
	slow := plan.Init{Kind: plan.Uniform, Low: -c.SlowLim, High: c.SlowLim}
	for i, t := range c.Targets {
		switch t {
		case "q", "k", "v", "out":
		default:
			return plan.Plan{}, fmt.Errorf("unknown KAdaptation target %q (want q, k, v or out)", t)
		}
		pre := t + "."
		p.Params = append(p.Params,
			plan.ParamSpec{Name: pre + "slow.a", Shape: []int{c.N, c.N, 1}, Init: slow, Scope: plan.Shared, Trainable: true},
			plan.ParamSpec{Name: pre + "slow.b", Shape: []int{c.N, 1, c.N}, Init: slow, Scope: plan.Shared, Trainable: true},
			plan.ParamSpec{Name: pre + "fast.u", Shape: []int{c.N, m, 1}, Init: plan.Init{Kind: plan.Normal, Std: c.FastStd}, Scope: plan.PerLayer, Trainable: true},
			plan.ParamSpec{Name: pre + "fast.v", Shape: []int{c.N, 1, m}, Init: plan.Init{Kind: plan.Zeros}, Scope: plan.PerLayer, Trainable: true})
		p.Edits = append(p.Edits, plan.Edit{Site: "blocks.*.attn." + t, Kind: plan.WeightDelta,
			Expr: fmt.Sprintf("%g * kron_sum(matmul(%sslow.a, %sslow.b), matmul(%sfast.u, %sfast.v))", c.Scale, pre, pre, pre, pre)})
		if i == 0 && c.Bias {
			p.Params = append(p.Params, plan.ParamSpec{Name: "bias", Shape: []int{w}, Init: plan.Init{Kind: plan.Zeros}, Scope: plan.PerLayer, Trainable: true})
			p.Edits = append(p.Edits, plan.Edit{Site: "blocks.*.attn." + t, Kind: plan.BiasDelta, Expr: "bias"})
		}
	}
	return p, nil
}
