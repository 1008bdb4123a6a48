// Package linearprobe trains the head alone on frozen features: no edits, no
// backbone parameters. The host notices the frozen backbone and computes the features
// once instead of every epoch.
package linearprobe

import "github.com/kadapt/kadapt/plugins/plan"

// Plan builds the linear probe's plan.
func Plan(bb plan.Backbone) (plan.Plan, error) {
	return plan.Plan{Method: "linearprobe", Version: "1", Trainable: plan.TrainableSpec{Mode: plan.TrainNone},
		Notes: "head only; the backbone is frozen"}, nil
}
