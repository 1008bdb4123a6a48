package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/host/adapt"
	"github.com/kadapt/kadapt/host/atomicfile"
	"github.com/kadapt/kadapt/host/train"
	"github.com/kadapt/kadapt/plugins/plan"
)

func init() {
	addCommand(newExportCmd)
}

// restoredRun is a finished run rebuilt from its directory.
type restoredRun struct {
	rc      RunConfig
	plan    plan.Plan
	model   *backbones.Model
	adapted *adapt.Adapted
	head    *train.Head
}

func restoreRun(dir string) (*restoredRun, error) {
	var r restoredRun
	for name, v := range map[string]any{runConfigFile: &r.rc, runPlanFile: &r.plan} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, fmt.Errorf("%s: %v", filepath.Join(dir, name), err)
		}
	}
	b, err := core.OpenBackend("cpu")
	if err != nil {
		return nil, err
	}
	if r.model, err = loadRunModel(b, r.rc); err != nil {
		return nil, err
	}
	if r.adapted, err = adapt.CompileWithin(r.model.Vision, r.plan, r.rc.Train.Seed, r.rc.Limits.budget()); err != nil {
		return nil, err
	}
	ckpt := train.CheckpointPath(dir)
	f, err := safetensors.Open(ckpt)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, ok := f.Info("param.head.weight")
	if !ok || len(info.Shape) != 2 {
		return nil, fmt.Errorf("%s: no head weight (param.head.weight)", ckpt)
	}
	r.head = train.NewHead(b, info.Shape[1], info.Shape[0])
	// The selected epoch's weights when the run kept them, else the last epoch's.
	prefix := "param."
	if _, ok := f.Info("best.param.head.weight"); ok {
		prefix = "best.param."
	}
	load := func(name string, t *core.Tensor) error {
		d, err := f.Float32s(prefix + name)
		if err != nil {
			return fmt.Errorf("%s: %v", ckpt, err)
		}
		if len(d) != t.Size() {
			return fmt.Errorf("%s: tensor %q has %d values, the model wants %d", ckpt, prefix+name, len(d), t.Size())
		}
		b.Upload(t, d)
		return nil
	}
	for _, p := range append(append(r.adapted.Trainable, r.head.W, r.head.B), r.adapted.Params...) {
		if !p.Trainable() && strings.HasPrefix(p.Name, adapt.ParamPrefix) {
			continue // frozen plan parameters are re-created from the seed, as in training
		}
		if err := load(p.Name, p.Value); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// exportOptions are the flags of `host export` (newExportCmd).
type exportOptions struct {
	out     string
	merged  bool
	jsonOut bool
}

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export RUN_DIR --out DIR [--merged]",
		Short: "write a run's trained adaptation (safetensors + JSON; LoRA also in peft's format; --merged: full weights)",
		Args:  cobra.ArbitraryArgs, // checked below, naming what is missing
	}
	fs := cmd.Flags()
	var o exportOptions
	fs.StringVar(&o.out, "out", "", "output folder")
	fs.BoolVar(&o.merged, "merged", false, "also write the full backbone with every weight delta merged in")
	fs.BoolVar(&o.jsonOut, "json", false, "print the files written as one JSON object instead of lines")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return export(o, args)
	}
	return cmd
}

func export(o exportOptions, args []string) error {
	if len(args) != 1 || o.out == "" {
		return usageErr("want RUN_DIR and --out")
	}
	if err := checkRunDir(args[0]); err != nil {
		return err
	}
	r, err := restoreRun(args[0])
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	tensors := map[string]safetensors.Tensor{}
	for _, p := range append(append(r.adapted.Params, r.adapted.Trainable...), r.head.W, r.head.B) {
		d := make([]float32, p.Value.Size())
		p.Value.Backend().Download(d, p.Value)
		tensors[p.Name] = safetensors.Tensor{Shape: append([]int(nil), p.Shape()...), Data: d}
	}
	planJSON, _ := json.Marshal(r.plan)
	meta := map[string]string{"kadapt.plan": string(planJSON), "kadapt.plugin": r.rc.Plugin}
	if err := safetensors.WriteFile(filepath.Join(o.out, "adaptation.safetensors"), tensors, meta); err != nil {
		return err
	}
	if err := atomicfile.WriteJSON(filepath.Join(o.out, "adaptation.json"), map[string]any{"plugin": r.rc.Plugin, "plan": r.plan,
		"config": r.rc, "trainable_params": r.adapted.Count}); err != nil {
		return err
	}
	wrote := []string{"adaptation.safetensors", "adaptation.json"}
	report := func(line string) {
		if !o.jsonOut {
			fmt.Println(line)
		}
	}
	report(fmt.Sprintf("wrote %s/adaptation.{safetensors,json}", o.out))
	if r.plan.Method == "lora" {
		if err := exportPeft(r, o.out); err != nil {
			return err
		}
		wrote = append(wrote, "adapter_model.safetensors", "adapter_config.json")
		report(fmt.Sprintf("wrote %s/adapter_model.safetensors and adapter_config.json (peft LoRA)", o.out))
	}
	if o.merged {
		if err := r.adapted.Merge(); err != nil {
			return err
		}
		cfgJSON, _ := json.Marshal(r.model.Vision.Cfg)
		if err := backbones.SaveVision(r.model.Vision, filepath.Join(o.out, "merged.safetensors"),
			map[string]string{"kadapt.config": string(cfgJSON), "kadapt.note": "backbone with the " + r.rc.Plugin + " adaptation merged in"}); err != nil {
			return err
		}
		wrote = append(wrote, "merged.safetensors")
		report(fmt.Sprintf("wrote %s/merged.safetensors", o.out))
	}
	if o.jsonOut {
		return writeJSON(map[string]any{"dir": o.out, "plugin": r.rc.Plugin, "files": wrote})
	}
	return nil
}
