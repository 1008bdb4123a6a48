package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
)

// checkHonoured refuses the settings a real run would not apply, each named by its
// flag and configuration key: config.json must never record a setting the run
// ignored. runJob calls it, so sweeps are held to it too; a dry run reads only the
// architecture and the plugin's settings.
func checkHonoured(rc RunConfig) error {
	var bad []string
	flagOf := map[string]string{}
	for flag, key := range flagKeys {
		flagOf[key] = flag
	}
	// add names a setting by where it was set and its key ("--lr (train.lr)",
	// "environment variable KADAPT_TRAIN__LR (train.lr)"), else by its flag and key,
	// or by its key alone where no flag sets it (YAML and KADAPT_* only).
	add := func(flag, key, why string) {
		from := ""
		if rc.setBy != nil && key != "" {
			from = rc.setBy(key)
		}
		switch {
		case from != "" && strings.HasSuffix(from, ", key "+key): // a YAML file and key
			bad = append(bad, from+": "+why)
		case from != "":
			bad = append(bad, from+" ("+key+"): "+why)
		case key == "":
			bad = append(bad, "--"+flag+": "+why)
		case flagOf[key] == "":
			bad = append(bad, key+": "+why)
		default:
			bad = append(bad, "--"+flagOf[key]+" ("+key+"): "+why)
		}
	}
	def := defaultRunConfig()
	if rc.Model == "" {
		if rc.Backbone != "" {
			add("backbone", "backbone", fmt.Sprintf("%q names an architecture, not weights, and there is no --model: the built-in backbone would train instead. Pass --model DIR (where --backbone picks the preset for a weights file without config.json), or --dry-run", rc.Backbone))
		}
		if rc.ModelConfig != "" {
			add("model-config", "model_config", "describes --model's weights, and there is no --model")
		}
	} else if rc.Backbone != "" && (rc.ModelConfig != "" || fileExists(filepath.Join(rc.Model, "config.json"))) {
		add("backbone", "backbone", "the architecture comes from the model's config.json; --backbone only serves weights without one")
	}
	if rc.Data.Dataset == demoDataset {
		if rc.Data.Root != "" {
			add("data-root", "data.root", "the built-in mnist-demo task's images are inside the binary")
		}
		if rc.Data.Format != def["data.format"] {
			add("format", "data.format", "the built-in mnist-demo task has one format")
		}
	}
	if rc.Data.Templates != "" && rc.HeadInit != "text" {
		add("templates", "data.templates", "prompt templates initialise the head only with head_init text, not "+rc.HeadInit)
	}
	t := rc.Train
	if t.Optimizer != "sgd" {
		if t.Momentum != def["train.momentum"] {
			add("momentum", "train.momentum", "applies to sgd, not "+t.Optimizer)
		}
		if t.Nesterov {
			add("nesterov", "train.nesterov", "applies to sgd, not "+t.Optimizer)
		}
	}
	if t.Schedule != "cosine" && t.WarmupEpochs != 0 {
		add("warmup-epochs", "train.warmup_epochs", "applies to the cosine schedule, not "+t.Schedule)
	}
	if t.Schedule != "step" {
		if t.StepEvery != 0 {
			add("step-every", "train.step_every", "applies to the step schedule, not "+t.Schedule)
		}
		if t.StepGamma != def["train.step_gamma"] {
			add("step-gamma", "train.step_gamma", "applies to the step schedule, not "+t.Schedule)
		}
	}
	if rc.Search == "paper" {
		for _, key := range []string{"train.lr", "train.weight_decay", "train.select"} {
			v := map[string]any{"train.lr": t.LR, "train.weight_decay": t.WeightDecay, "train.select": t.Select}[key]
			// Where the sources are known, only a value someone set counts: train.select
			// "auto" resolves to val or last (resolveAuto), which is no choice of the
			// user's and differs from its default.
			chosen := v != def[key]
			if rc.setBy != nil {
				chosen = rc.setBy(key) != ""
			}
			if chosen {
				add("", key, "--search paper chooses it (and reports the last epoch)")
			}
		}
	}
	if len(bad) > 0 {
		return usageErr("settings this run cannot honour:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

// resumeFlagsIgnored names the configuration flags given with --resume: a resumed run
// continues with the settings in its config.json and would ignore them. The exception
// is --plugin-sha256, which on resume accepts a plugin binary other than the recorded
// one (resolvePlugin).
func resumeFlagsIgnored(fs *pflag.FlagSet) error {
	var set []string
	fs.Visit(func(f *pflag.Flag) {
		if f.Name == "plugin-sha256" {
			return
		}
		if _, ok := flagKeys[f.Name]; ok || f.Name == "config" || f.Name == "hp" {
			set = append(set, "--"+f.Name)
		}
	})
	if len(set) > 0 {
		return usageErr("--resume continues with the settings in the run's config.json; %s would be ignored (start a new run to change them)", strings.Join(set, ", "))
	}
	return nil
}
