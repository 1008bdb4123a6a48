package compacter

import (
	"fmt"

	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is Compacter as a plugin.
type Method struct{ plugins.NoEvents }

// Describe implements plugins.Method.
func (Method) Describe() plugins.Description {
	d := Default()
	return plugins.Description{Name: "compacter", Version: "1",
		Summary: "Compacter: adapters whose projections are PHM layers Σ S_i ⊗ (l_i r_iᵀ), S shared and frozen",
		Hyperparameters: []plugins.Hyperparameter{
			{Name: "n", Type: "int", Default: fmt.Sprint(d.N), Help: "PHM factors; must divide the width and the bottleneck"},
			{Name: "bottleneck", Type: "int", Default: fmt.Sprint(d.Bottleneck), Help: "hidden width"},
			{Name: "act", Type: "string", Default: d.Act, Help: "relu, gelu, quick_gelu or silu"},
		}}
}

// Plan implements plugins.Method.
func (Method) Plan(bb plan.Backbone, hp plugins.Values) (plan.Plan, error) {
	return Plan(bb, Config{N: hp.Int("n"), Bottleneck: hp.Int("bottleneck"), Act: hp.String("act")})
}
