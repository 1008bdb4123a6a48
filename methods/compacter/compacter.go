// Package compacter is Compacter (Mahabadi et al., 2021) as the paper benchmarks it:
// adapters in the Adapter's place whose down and up projections are PHM layers
// W = Σ_{i=1..n} S_i ⊗ (l_i r_iᵀ) with rank-1 factors, n = 4, a 64-wide bottleneck and
// GELU. S (n×n×n) is shared by every layer and frozen at U(−1, 1); l and r are
// Glorot-uniform with gain √2; biases 0; a trainable layer norm: 48,384 trainable
// parameters on ViT-B/32, head excluded.
//
// Unlike the adapter's, Compacter's update is not zero at the start (no factor starts at
// zero), so it perturbs the backbone's features before any training. Every group
// trains; on the demo one SGD step lowers the loss about 1/20 as much as the paper's
// LoRA does (the movement diagnostic's first gradient norms), which the paper's
// per-method learning-rate search absorbs.
package compacter

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is Compacter as a plugin (plugins/cmd/compacter serves it).
var Method = plan.Method[Config]{Name: "compacter", Version: "1",
	Summary: "Compacter: adapters whose projections are PHM layers Σ S_i ⊗ (l_i r_iᵀ), S shared and frozen",
	Default: Default(), Plan: Plan}

// Config is Compacter's hyperparameters.
type Config struct {
	N          int    `hp:"n" help:"PHM factors; must divide the width and the bottleneck"`
	Bottleneck int    `hp:"bottleneck" help:"hidden width"`
	Act        string `hp:"act" help:"relu, gelu, quick_gelu or silu"`
}

// Default is the paper's setting.
func Default() Config { return Config{N: 4, Bottleneck: 64, Act: "gelu"} }

// Plan builds Compacter's plan for bb.
func Plan(bb plan.Backbone, c Config) (plan.Plan, error) {
	w, d, n := bb.Width, c.Bottleneck, c.N
	if n <= 0 || w%n != 0 || d%n != 0 {
		return plan.Plan{}, fmt.Errorf("n = %d must divide the width %d and the bottleneck %d", n, w, d)
	}
	glorot := plan.Init{Kind: plan.GlorotUniform, Gain: math.Sqrt2}
	zeros := plan.Init{Kind: plan.Zeros}
	per := func(name string, shape ...int) plan.ParamSpec {
		return plan.ParamSpec{Name: name, Shape: shape, Init: glorot, Scope: plan.PerLayer, Trainable: true}
	}
	down := "kron_sum(phm.s, matmul(down.l, down.r))" // [d, w]
	up := "kron_sum(phm.s, matmul(up.l, up.r))"       // [w, d]
	return plan.Plan{Trainable: plan.TrainableSpec{Mode: plan.TrainNone},
		Notes: fmt.Sprintf("PHM adapter after every MLP branch: W = Σ_{i<%d} S_i ⊗ (l_i r_iᵀ), S shared and frozen, bottleneck %d, %s", n, d, c.Act),
		Params: []plan.ParamSpec{
			{Name: "phm.s", Shape: []int{n, n, n}, Init: plan.Init{Kind: plan.Uniform, Low: -1, High: 1}, Scope: plan.Shared, Trainable: false},
			{Name: "ln.weight", Shape: []int{w}, Init: plan.Init{Kind: plan.Ones}, Scope: plan.PerLayer, Trainable: true},
			{Name: "ln.bias", Shape: []int{w}, Init: zeros, Scope: plan.PerLayer, Trainable: true},
			per("down.l", n, d/n, 1), per("down.r", n, 1, w/n),
			{Name: "down.bias", Shape: []int{d}, Init: zeros, Scope: plan.PerLayer, Trainable: true},
			per("up.l", n, w/n, 1), per("up.r", n, 1, d/n),
			{Name: "up.bias", Shape: []int{w}, Init: zeros, Scope: plan.PerLayer, Trainable: true},
		},
		Edits: []plan.Edit{{Site: "blocks.*.mlp", Kind: plan.ModuleAfter,
			Expr: fmt.Sprintf("h + linear(%s(linear(layer_norm(h, ln.weight, ln.bias), %s, down.bias)), %s, up.bias)", c.Act, down, up)}},
	}, nil
}
