// Package plugins is kadapt's method-plugin SDK and the host's side of the contract.
//
// An adaptation method is a separate binary built on hashicorp/go-plugin. It tells the
// host what to adapt — new parameters, which backbone parameters train, and edits at
// the backbone's sites written in the expression language of package plugins/expr —
// and the host compiles that into its autograd graph. The plugin is never called per
// training step. A method is a configuration struct, whose every field is a
// hyperparameter declared by its tags (hp: the name users set with --hp NAME=VALUE,
// help, and an optional default), and a plan function taking that struct. A whole new
// method, for example training only the biases (BitFit):
//
//	package main
//
//	import (
//		"github.com/kadapt/kadapt/plugins"
//		"github.com/kadapt/kadapt/plugins/plan"
//	)
//
//	type config struct {
//		LayerNorm bool `hp:"layernorm" help:"also train LayerNorm parameters"`
//	}
//
//	func planBiases(bb plan.Backbone, c config) (plan.Plan, error) {
//		patterns := []string{"*.bias"}
//		if c.LayerNorm {
//			patterns = append(patterns, "*.ln*", "ln_*")
//		}
//		return plan.Plan{Trainable: plan.TrainableSpec{Mode: plan.TrainPatterns, Patterns: patterns}}, nil
//	}
//
//	func main() {
//		plugins.ServeMethod(plan.Method[config]{Name: "bitfit", Version: "1",
//			Summary: "train only the biases", Plan: planBiases})
//	}
//
// Build it as kadapt-plugin-bitfit (the host finds plugins by that prefix and runs no
// other file), drop the binary into the plugin directory (bin/plugins beside the host, a
// directory in KADAPT_PLUGIN_PATH, or --plugin-path) and run `host run --plugin bitfit`.
// examples/bitfit is the full version, built as its own module; methods/lora is an
// in-tree method, whose package imports plugins/plan alone.
//
// A method that needs the host's lifecycle events implements the Method interface
// and calls Serve instead.
//
// The host side is Discover (list plugins), Open (start one, with a start timeout and
// an optional SHA-256 pin) and CleanupClients (kill them all on exit).
package plugins
