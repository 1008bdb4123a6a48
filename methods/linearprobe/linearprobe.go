// Package linearprobe trains the head alone on frozen features: no edits, no
// backbone parameters. The host notices the frozen backbone and computes the features
// once instead of every epoch.
package linearprobe

import "github.com/kadapt/kadapt/plugins/plan"

// Method is the linear probe as a plugin (plugins/cmd/linearprobe serves it).
var Method = plan.Method[Config]{Name: "linearprobe", Version: "1",
	Summary: "linear probe: only the head trains, on features computed once", Plan: Plan}

// Config is the linear probe's hyperparameters: it has none.
type Config struct{}

// Plan builds the linear probe's plan.
func Plan(bb plan.Backbone, _ Config) (plan.Plan, error) {
	return plan.Plan{Trainable: plan.TrainableSpec{Mode: plan.TrainNone},
		Notes: "head only; the backbone is frozen"}, nil
}
