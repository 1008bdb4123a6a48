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
	return plugins.Description{Name: "kadaptation", Version: "1",
		Summary: "KAdaptation (He et al., AAAI 2023): ΔW = s·Σ (a_i b_iᵀ) ⊗ (u_i v_iᵀ), slow weights shared across layers, rank-1 fast weights per layer",
		Hyperparameters: []plugins.Hyperparameter{
			{Name: "n", Type: "int", Default: fmt.Sprint(d.N), Help: "Kronecker factors; must divide the width (on a smaller backbone the largest divisor of the width not above n is used)"},
			{Name: "scale", Type: "float", Default: fmt.Sprint(d.Scale), Help: "s; the released code uses 160"},
			{Name: "targets", Type: "string", Default: "q,v", Help: "projections among q, k, v, out"},
			{Name: "fast_std", Type: "float", Default: fmt.Sprint(d.FastStd), Help: "u's init std; v starts at 0 so ΔW = 0 at start yet learns (the released code zeroes both, so ΔW never learns)"},
			{Name: "slow_lim", Type: "float", Default: fmt.Sprint(d.SlowLim), Help: "a, b ~ U(-slow_lim, slow_lim), as in the paper"},
			{Name: "bias", Type: "bool", Default: "true", Help: "a per-layer bias added to the first target's output"},
		}}
}

// Plan implements plugins.Method.
func (Method) Plan(bb plan.Backbone, hp plugins.Values) (plan.Plan, error) {
	c := Config{N: hp.Int("n"), Scale: hp.Float("scale"), Targets: hp.List("targets"), FastStd: hp.Float("fast_std"),
		SlowLim: hp.Float("slow_lim"), Bias: hp.Bool("bias")}
	for c.N > 1 && bb.Width%c.N != 0 {
		c.N--
	}
	return Plan(bb, c)
}
