package lora

import (
	"fmt"

	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is LoRA as a plugin.
type Method struct{ plugins.NoEvents }

// Describe implements plugins.Method.
func (Method) Describe() plugins.Description {
	d := Default()
	return plugins.Description{Name: "lora", Version: "1",
		Summary: "LoRA: ΔW = (α/r)·B·A on the query and value projections (A ~ N(0, 0.02²), B = 0)",
		Hyperparameters: []plugins.Hyperparameter{
			{Name: "r", Type: "int", Default: fmt.Sprint(d.R), Help: "rank"},
			{Name: "alpha", Type: "float", Default: fmt.Sprint(d.Alpha), Help: "scale numerator: ΔW = (alpha/r)·B·A"},
			{Name: "targets", Type: "string", Default: "q,v", Help: "comma-separated projections among q, k, v, out, fc1, fc2"},
			{Name: "std", Type: "float", Default: fmt.Sprint(d.Std), Help: "A's init standard deviation (B starts at zero)"},
			{Name: "branch", Type: "bool", Default: "false", Help: "add (α/r)·B·(A·x) beside the linear instead of merging ΔW into its weight (not mergeable)"},
		}}
}

// Plan implements plugins.Method.
func (Method) Plan(bb plan.Backbone, hp plugins.Values) (plan.Plan, error) {
	return Plan(bb, Config{R: hp.Int("r"), Alpha: hp.Float("alpha"), Targets: hp.List("targets"), Std: hp.Float("std"), Branch: hp.Bool("branch")})
}
