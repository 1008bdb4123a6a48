// Package finetune trains every parameter of the image tower (87,849,216 on
// ViT-B/32), optionally only a block range.
package finetune

import (
	"fmt"

	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is fine-tuning as a plugin (plugins/cmd/finetune serves it). Its zero
// Config trains everything.
var Method = plan.Method[Config]{Name: "finetune", Version: "1",
	Summary: "full fine-tuning: every parameter of the image tower trains", Plan: Plan}

// Config is fine-tuning's hyperparameters: blocks FromLayer ≤ i < ToLayer train, with
// everything outside the blocks.
type Config struct {
	FromLayer int `hp:"from_layer" help:"first block to train"`
	ToLayer   int `hp:"to_layer" help:"one past the last block to train; 0 = all"`
}

// Plan builds fine-tuning's plan for bb.
func Plan(bb plan.Backbone, c Config) (plan.Plan, error) {
	if c.ToLayer < 0 || c.ToLayer > bb.Layers || c.FromLayer < 0 || (c.ToLayer > 0 && c.FromLayer >= c.ToLayer) {
		return plan.Plan{}, fmt.Errorf("block range [%d, %d) does not fit %d layers", c.FromLayer, c.ToLayer, bb.Layers)
	}
	t := plan.TrainableSpec{Mode: plan.TrainAll, FromLayer: c.FromLayer, ToLayer: c.ToLayer}
	return plan.Plan{Trainable: t, Notes: "every backbone parameter trains"}, nil
}
