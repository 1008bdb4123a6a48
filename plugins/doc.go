// Package plugins is kadapt's method-plugin SDK and the host's side of the contract.
//
// An adaptation method is a separate binary built on hashicorp/go-plugin. It tells the
// host what to adapt — new parameters, which backbone parameters train, and edits at
// the backbone's sites written in the expression language of package plugins/expr —
// and the host compiles that into its autograd graph. The plugin is never called per
// training step. A whole new method, for example training only the biases (BitFit):
//
//	package main
//
//	import (
//		"github.com/kadapt/kadapt/plugins"
//		"github.com/kadapt/kadapt/plugins/plan"
//	)
//
//	type bitfit struct{ plugins.NoEvents }
//
//	func (bitfit) Describe() plugins.Description {
//		return plugins.Description{Name: "bitfit", Version: "1", Summary: "train only the biases",
//			Hyperparameters: []plugins.Hyperparameter{{Name: "layernorm", Type: "bool", Default: "false", Help: "also train LayerNorm parameters"}}}
//	}
//
//	func (bitfit) Plan(bb plan.Backbone, hp plugins.Values) (plan.Plan, error) {
//		patterns := []string{"*.bias"}
//		if hp.Bool("layernorm") {
//			patterns = append(patterns, "*.ln*", "ln_*")
//		}
//		return plan.Plan{Method: "bitfit", Version: "1",
//			Trainable: plan.TrainableSpec{Mode: plan.TrainPatterns, Patterns: patterns}}, nil
//	}
//
//	func main() { plugins.Serve(bitfit{}) }
//
// Build it as kadapt-plugin-bitfit (the host finds plugins by that prefix and runs no
// other file), drop the binary into the plugin directory (bin/plugins beside the host, a
// directory in KADAPT_PLUGIN_PATH, or --plugin-path) and run `host run --plugin bitfit`.
//
// The host side is Discover (list plugins), Open (start one, with a start timeout and
// an optional SHA-256 pin) and CleanupClients (kill them all on exit).
package plugins
