package adapter

import (
	"fmt"

	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is the adapter as a plugin.
type Method struct{ plugins.NoEvents }

// Describe implements plugins.Method.
func (Method) Describe() plugins.Description {
	d := Default()
	return plugins.Description{Name: "adapter", Version: "1",
		Summary: "bottleneck adapters after each block's MLP branch: h + up(ReLU(down(LN(h))))",
		Hyperparameters: []plugins.Hyperparameter{
			{Name: "bottleneck", Type: "int", Default: fmt.Sprint(d.Bottleneck), Help: "hidden width"},
			{Name: "std", Type: "float", Default: fmt.Sprint(d.Std), Help: "init std of the down and up weights"},
			{Name: "act", Type: "string", Default: d.Act, Help: "relu, gelu, quick_gelu or silu"},
			{Name: "site", Type: "string", Default: d.Site, Help: "mlp or attn: the branch the adapter follows"},
		}}
}

// Plan implements plugins.Method.
func (Method) Plan(bb plan.Backbone, hp plugins.Values) (plan.Plan, error) {
	return Plan(bb, Config{Bottleneck: hp.Int("bottleneck"), Std: hp.Float("std"), Act: hp.String("act"), Site: hp.String("site")})
}
