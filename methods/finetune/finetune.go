// Package finetune trains every parameter of the image tower (87,849,216 on
// ViT-B/32), optionally only a block range.
package finetune

import (
	"fmt"

	"github.com/kadapt/kadapt/plugins/plan"
)

// Config is fine-tuning's hyperparameters.
type Config struct {
	FromLayer, ToLayer int // train blocks FromLayer ≤ i < ToLayer (and everything outside the blocks); ToLayer 0 = all
}

// Plan builds fine-tuning's plan for bb.
func Plan(bb plan.Backbone, c Config) (plan.Plan, error) {
	if c.ToLayer < 0 || c.ToLayer > bb.Layers || c.FromLayer < 0 || (c.ToLayer > 0 && c.FromLayer >= c.ToLayer) {
		return plan.Plan{}, fmt.Errorf("block range [%d, %d) does not fit %d layers", c.FromLayer, c.ToLayer, bb.Layers)
	}
	t := plan.TrainableSpec{Mode: plan.TrainAll, FromLayer: c.FromLayer, ToLayer: c.ToLayer}
	return plan.Plan{Method: "finetune", Version: "1", Trainable: t, Notes: "every backbone parameter trains"}, nil
}
