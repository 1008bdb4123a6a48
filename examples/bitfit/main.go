// Command bitfit is a third-party kadapt method plugin, built out of tree: BitFit
// (Ben Zaken et al., 2022) trains only the backbone's bias terms. It uses nothing but
// the public SDK (packages plugins and plugins/plan).
//
// It departs from BitFit's recipe in leaving out two kinds of bias that receive no
// gradient at all (kadapt's movement diagnostic shows them not moving): the attention
// keys' biases, since softmax ignores a shift of all of a query's logits alike, and
// the final layer norm's bias, a shift of every feature that the head's BatchNorm
// subtracts. all_biases=true trains them too, as BitFit does.
package main

import (
	"regexp"
	"strings"

	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

// config is BitFit's hyperparameters: users set them with --hp NAME=VALUE.
type config struct {
	Norms     bool `hp:"norms" default:"true" help:"include LayerNorm biases (BitFit's original recipe)"`
	FromLayer int  `hp:"from_layer" help:"train biases of blocks from this one on (earlier blocks stay frozen)"`
	AllBiases bool `hp:"all_biases" help:"also the attention keys' and the final layer norm's biases, which get no gradient (BitFit's recipe counts them)"`
}

var bitfit = plan.Method[config]{Name: "bitfit", Version: "1.0.0",
	Summary: "BitFit: train only the bias terms of the backbone", Plan: planBiases}

// noGradient matches the biases that cannot train: the keys' and the final norm's.
var noGradient = regexp.MustCompile(`^(blocks\.[0-9]+\.attn\.k\.bias|ln_post\.bias|norm\.bias)$`)

func planBiases(bb plan.Backbone, c config) (plan.Plan, error) {
	// Every bias the backbone has, named exactly: backbones differ (CLIP has no
	// patch-embedding bias, timm has no ln_pre), and the host rejects patterns that
	// match nothing.
	var names []string
	for _, p := range bb.Params {
		isNorm := strings.Contains(p.Name, "ln") || strings.HasPrefix(p.Name, "norm.")
		if noGradient.MatchString(p.Name) && !c.AllBiases {
			continue
		}
		if strings.HasSuffix(p.Name, ".bias") && (c.Norms || !isNorm) {
			names = append(names, p.Name)
		}
	}
	t := plan.TrainableSpec{Mode: plan.TrainPatterns, Patterns: names}
	if c.FromLayer > 0 {
		t.FromLayer, t.ToLayer = c.FromLayer, bb.Layers
	}
	plugins.Logger().Info("planning BitFit", "backbone", bb.Name, "biases", len(names))
	return plan.Plan{Trainable: t, Notes: "only bias terms train"}, nil
}

func main() { plugins.ServeMethod(bitfit) }
