// Package adapter is the bottleneck adapter (Houlsby et al., 2019) as the paper
// benchmarks it: after each block's MLP branch, h ↦ h + W_up·ReLU(W_down·LN(h) + b_d) + b_u
// with a 64-wide bottleneck, weights N(0, 0.02²), biases 0 and a trainable layer norm:
// 1,208,064 trainable parameters on ViT-B/32, head excluded.
//
// At these initial scales every group trains, but slowly: on the demo one SGD step
// lowers the loss about 1/70 as much as the paper's LoRA does (the squared first
// gradient norms of the run's movement diagnostic, 0.015 against 1.09), because the
// up projection's gradient is scaled by the down projection's small output and the
// other way round. The paper's protocol searches the learning rate per method, which
// absorbs that, so the paper's initialisation is kept; at one shared learning rate
// the adapter is at a disadvantage.
package adapter

import (
	"fmt"

	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is the adapter as a plugin (plugins/cmd/adapter serves it).
var Method = plan.Method[Config]{Name: "adapter", Version: "1",
	Summary: "bottleneck adapters after each block's MLP branch: h + up(ReLU(down(LN(h))))",
	Default: Default(), Plan: Plan}

// Config is the adapter's hyperparameters.
type Config struct {
	Bottleneck int     `hp:"bottleneck" help:"hidden width"`
	Std        float64 `hp:"std" help:"init std of the down and up weights"`
	Act        string  `hp:"act" help:"relu, gelu, quick_gelu or silu"`
	Site       string  `hp:"site" help:"mlp or attn: the branch the adapter follows"`
}

// Default is the paper's setting.
func Default() Config { return Config{Bottleneck: 64, Std: 0.02, Act: "relu", Site: "mlp"} }

// Plan builds the adapter's plan for bb.
func Plan(bb plan.Backbone, c Config) (plan.Plan, error) {
	if c.Bottleneck <= 0 {
		return plan.Plan{}, fmt.Errorf("bottleneck must be positive, got %d", c.Bottleneck)
	}
	if c.Site != "mlp" && c.Site != "attn" {
		return plan.Plan{}, fmt.Errorf("site must be mlp or attn, got %q", c.Site)
	}
	w, d := bb.Width, c.Bottleneck
	normal := plan.Init{Kind: plan.Normal, Std: c.Std}
	zeros := plan.Init{Kind: plan.Zeros}
	return plan.Plan{Trainable: plan.TrainableSpec{Mode: plan.TrainNone},
		Notes: fmt.Sprintf("h + up(%s(down(LN(h)))) after every %s branch, bottleneck %d", c.Act, c.Site, d),
		Params: []plan.ParamSpec{
			{Name: "ln.weight", Shape: []int{w}, Init: plan.Init{Kind: plan.Ones}, Scope: plan.PerLayer, Trainable: true},
			{Name: "ln.bias", Shape: []int{w}, Init: zeros, Scope: plan.PerLayer, Trainable: true},
			{Name: "down.weight", Shape: []int{d, w}, Init: normal, Scope: plan.PerLayer, Trainable: true},
			{Name: "down.bias", Shape: []int{d}, Init: zeros, Scope: plan.PerLayer, Trainable: true},
			{Name: "up.weight", Shape: []int{w, d}, Init: normal, Scope: plan.PerLayer, Trainable: true},
			{Name: "up.bias", Shape: []int{w}, Init: zeros, Scope: plan.PerLayer, Trainable: true},
		},
		Edits: []plan.Edit{{Site: "blocks.*." + c.Site, Kind: plan.ModuleAfter,
			Expr: fmt.Sprintf("h + linear(%s(linear(layer_norm(h, ln.weight, ln.bias), down.weight, down.bias)), up.weight, up.bias)", c.Act)}},
	}, nil
}
