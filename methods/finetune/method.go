package finetune

import (
	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is fine-tuning as a plugin.
type Method struct{ plugins.NoEvents }

// Describe implements plugins.Method.
func (Method) Describe() plugins.Description {
	return plugins.Description{Name: "finetune", Version: "1", Summary: "full fine-tuning: every parameter of the image tower trains",
		Hyperparameters: []plugins.Hyperparameter{
			{Name: "from_layer", Type: "int", Default: "0", Help: "first block to train"},
			{Name: "to_layer", Type: "int", Default: "0", Help: "one past the last block to train; 0 = all"},
		}}
}

// Plan implements plugins.Method.
func (Method) Plan(bb plan.Backbone, hp plugins.Values) (plan.Plan, error) {
	return Plan(bb, Config{FromLayer: hp.Int("from_layer"), ToLayer: hp.Int("to_layer")})
}
