// Command bitfit is a third-party kadapt method plugin, built out of tree: BitFit
// (Ben Zaken et al., 2022) trains only the backbone's bias terms. It uses nothing but
// the public SDK (packages plugins and plugins/plan).
package main

import (
	"strings"

	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

type bitfit struct{ plugins.NoEvents }

func (bitfit) Describe() plugins.Description {
	return plugins.Description{Name: "bitfit", Version: "1.0.0", Summary: "BitFit: train only the bias terms of the backbone",
		Hyperparameters: []plugins.Hyperparameter{
			{Name: "norms", Type: "bool", Default: "true", Help: "include LayerNorm biases (BitFit's original recipe)"},
			{Name: "from_layer", Type: "int", Default: "0", Help: "train biases of blocks from this one on (earlier blocks stay frozen)"},
		}}
}

func (bitfit) Plan(bb plan.Backbone, hp plugins.Values) (plan.Plan, error) {
	// Every bias the backbone has, named exactly: backbones differ (CLIP has no
	// patch-embedding bias, timm has no ln_pre), and the host rejects patterns that
	// match nothing.
	var names []string
	for _, p := range bb.Params {
		isNorm := strings.Contains(p.Name, "ln") || strings.HasPrefix(p.Name, "norm.")
		if strings.HasSuffix(p.Name, ".bias") && (hp.Bool("norms") || !isNorm) {
			names = append(names, p.Name)
		}
	}
	t := plan.TrainableSpec{Mode: plan.TrainPatterns, Patterns: names}
	if from := hp.Int("from_layer"); from > 0 {
		t.FromLayer, t.ToLayer = from, bb.Layers
	}
	plugins.Logger().Info("planning BitFit", "backbone", bb.Name, "biases", len(names))
	return plan.Plan{Method: "bitfit", Version: "1.0.0", Trainable: t, Notes: "only bias terms train"}, nil
}

func main() { plugins.Serve(bitfit{}) }
