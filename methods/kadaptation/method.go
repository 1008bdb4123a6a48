package kadaptation

import (
	"fmt"

	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is KAdaptation as a plugin.
type Method struct{ plugins.NoEvents }

// Describe implements plugins.Method.
func (Method) Describe() plugins.Description {
	d := Default()
	return plugins.Description{Name: "kadaptation", Version: "2",
		Summary: "KAdaptation (He et al., AAAI 2023): ΔW = s·Σ (a_i b_iᵀ) ⊗ (u_i v_iᵀ), slow weights shared across layers, rank-1 fast weights per layer, initialised to learn at LoRA's rate",
		Hyperparameters: []plugins.Hyperparameter{
			{Name: "n", Type: "int", Default: fmt.Sprint(d.N), Help: "Kronecker factors; must divide the width (on a smaller backbone the largest divisor of the width not above n is used)"},
			{Name: "scale", Type: "float", Default: fmt.Sprint(d.Scale), Help: "s; 64 = α/√r makes init=balanced learn as fast as the paper's LoRA (α = 128, r = 4); the released code uses 160"},
			{Name: "init", Type: "string", Default: d.Init, Help: "balanced: a, b ~ U(±√(3/n)), u ~ N(0, n·std²), v = 0, so ΔW learns at LoRA's rate; " +
				"paper: a, b ~ U(±0.01), u ~ N(0, 0.02²), v = 0 (ΔW learns 1e-11 as fast); " +
				"released: a, b ~ U(±0.01), u = v = 0, the released code (ΔW never learns; with scale=160 its exact setting)"},
			{Name: "std", Type: "float", Default: fmt.Sprint(d.Std), Help: "init=balanced: the std of a⊗u's entries, LoRA's A std"},
			{Name: "targets", Type: "string", Default: "q,v", Help: "projections among q, k, v, out"},
			{Name: "kronecker", Type: "bool", Default: "true", Help: "the Kronecker update ΔW; false keeps the per-layer bias alone (the ablation)"},
			{Name: "bias", Type: "bool", Default: "true", Help: "a per-layer bias added to the first target's output"},
		}}
}

// Plan implements plugins.Method.
func (Method) Plan(bb plan.Backbone, hp plugins.Values) (plan.Plan, error) {
	c := Config{N: hp.Int("n"), Scale: hp.Float("scale"), Targets: hp.List("targets"), Init: hp.String("init"),
		Std: hp.Float("std"), Kronecker: hp.Bool("kronecker"), Bias: hp.Bool("bias")}
	for c.N > 1 && bb.Width%c.N != 0 {
		c.N--
	}
	return Plan(bb, c)
}
