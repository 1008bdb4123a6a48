// Package lora is LoRA (Hu et al., 2021) as the paper benchmarks it: on the query and
// value projections of every block, ΔW = (α/r)·B·A with A ~ N(0, 0.02²) and B = 0, so
// ΔW starts at zero and learns (r = 4, α = 128 by default: 147,456 trainable
// parameters on ViT-B/32, head excluded).
package lora

import (
	"fmt"

	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is LoRA as a plugin (plugins/cmd/lora serves it).
var Method = plan.Method[Config]{Name: "lora", Version: "1",
	Summary: "LoRA: ΔW = (α/r)·B·A on the query and value projections (A ~ N(0, 0.02²), B = 0)",
	Default: Default(), Plan: Plan}

// Config is LoRA's hyperparameters.
type Config struct {
	R       int      `hp:"r" help:"rank"`
	Alpha   float64  `hp:"alpha" help:"scale numerator: ΔW = (alpha/r)·B·A"`
	Targets []string `hp:"targets" help:"comma-separated projections among q, k, v, out, fc1, fc2"`
	Std     float64  `hp:"std" help:"A's init standard deviation (B starts at zero)"`
	// Branch is cheaper than a weight delta when few tokens pass through the linear.
	Branch bool `hp:"branch" help:"add (α/r)·B·(A·x) beside the linear instead of merging ΔW into its weight (not mergeable)"`
}

// Default is the paper's setting.
func Default() Config { return Config{R: 4, Alpha: 128, Targets: []string{"q", "v"}, Std: 0.02} }

// SitePath maps a target name to its site suffix.
func SitePath(target string) (string, error) {
	switch target {
	case "q", "k", "v", "out":
		return "attn." + target, nil
	case "fc1", "fc2":
		return "mlp." + target, nil
	}
	return "", fmt.Errorf("unknown LoRA target %q (want q, k, v, out, fc1 or fc2)", target)
}

// Plan builds LoRA's plan for bb.
func Plan(bb plan.Backbone, c Config) (plan.Plan, error) {
	if c.R <= 0 {
		return plan.Plan{}, fmt.Errorf("r must be positive, got %d", c.R)
	}
	if len(c.Targets) == 0 {
		return plan.Plan{}, fmt.Errorf("targets is empty")
	}
	p := plan.Plan{Trainable: plan.TrainableSpec{Mode: plan.TrainNone},
		Notes: fmt.Sprintf("LoRA r=%d alpha=%g on %v: ΔW = (alpha/r)·B·A, A ~ N(0, %g²), B = 0", c.R, c.Alpha, c.Targets, c.Std)}
	scale := c.Alpha / float64(c.R)
	for _, t := range c.Targets {
		path, err := SitePath(t)
		if err != nil {
			return plan.Plan{}, err
		}
		in, out, err := linearSize(bb, path)
		if err != nil {
			return plan.Plan{}, err
		}
		a, b := t+".lora_A", t+".lora_B"
		p.Params = append(p.Params,
			plan.ParamSpec{Name: a, Shape: []int{c.R, in}, Init: plan.Init{Kind: plan.Normal, Std: c.Std}, Scope: plan.PerLayer, Trainable: true},
			plan.ParamSpec{Name: b, Shape: []int{out, c.R}, Init: plan.Init{Kind: plan.Zeros}, Scope: plan.PerLayer, Trainable: true})
		if c.Branch {
			p.Edits = append(p.Edits, plan.Edit{Site: "blocks.*." + path, Kind: plan.OutputBranch,
				Expr: fmt.Sprintf("%g * matmul(matmul(x, transpose(%s)), transpose(%s))", scale, a, b)})
		} else {
			p.Edits = append(p.Edits, plan.Edit{Site: "blocks.*." + path, Kind: plan.WeightDelta,
				Expr: fmt.Sprintf("%g * matmul(%s, %s)", scale, b, a)})
		}
	}
	return p, nil
}

// linearSize finds the width of a linear site in block 0.
func linearSize(bb plan.Backbone, path string) (in, out int, err error) {
	for _, s := range bb.Sites {
		if s.Name == "blocks.0."+path {
			return s.In, s.Out, nil
		}
	}
	return 0, 0, fmt.Errorf("backbone %q has no site blocks.0.%s", bb.Name, path)
}
