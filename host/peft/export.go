package peft

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/host/atomicfile"
)

// paramRE matches the names host/adapt gives methods/lora's parameters once compiled.
var paramRE = regexp.MustCompile(`^adapt\.blocks\.(\d+)\.(q|k|v|out|fc1|fc2)\.lora_([AB])$`)

// Export writes LoRA parameters named as kadapt's compiled LoRA plan names them —
// adapt.blocks.<i>.<target>.lora_A [r, in] and .lora_B [out, r], with
// ΔW = (alpha/r)·B·A — as a peft adapter folder for the transformers CLIP class
// baseModelClass (e.g. CLIPVisionModelWithProjection). Every parameter must be such
// a matrix: a partial export would load in peft as a different model.
func Export(dir string, params []*autograd.Var, r int, alpha float64, targets []string, baseModelClass string) error {
	tensors := make(map[string]safetensors.Tensor, len(params))
	for _, p := range params {
		if _, dup := tensors[p.Name]; dup {
			return fmt.Errorf("peft: export to %s: parameter %q given twice", dir, p.Name)
		}
		d := make([]float32, p.Value.Size())
		p.Value.Backend().Download(d, p.Value)
		tensors[p.Name] = safetensors.Tensor{Shape: slices.Clone([]int(p.Shape())), Data: d}
	}
	return ExportTensors(dir, tensors, r, alpha, targets, baseModelClass)
}

// ExportTensors is Export for parameters already on the host, keyed by kadapt name.
func ExportTensors(dir string, params map[string]safetensors.Tensor, r int, alpha float64, targets []string, baseModelClass string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("peft: export to %s: "+format, append([]any{dir}, args...)...)
	}
	switch {
	case r <= 0:
		return bad("r = %d: the rank must be positive", r)
	case math.IsNaN(alpha) || math.IsInf(alpha, 0):
		return bad("alpha %v is not a finite number", alpha)
	case !strings.HasPrefix(baseModelClass, "CLIP"):
		return bad("base model class %q: the adapter's module names are those of a transformers CLIP class", baseModelClass)
	case len(targets) == 0:
		return bad("no targets")
	}
	var modules []string
	for i, t := range targets {
		m, ok := hfModule[t]
		if !ok {
			return bad("unknown target %q (want one of %s)", t, strings.Join(Targets, ", "))
		}
		if slices.Contains(targets[:i], t) {
			return bad("target %q listed twice", t)
		}
		modules = append(modules, m[strings.LastIndexByte(m, '.')+1:])
	}
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make(map[string]safetensors.Tensor, len(params))
	seen := map[string]bool{}
	for _, n := range names {
		t := params[n]
		m := paramRE.FindStringSubmatch(n)
		if m == nil {
			return bad("parameter %q is not a LoRA matrix adapt.blocks.<i>.<target>.lora_{A,B}: peft's LoRA format cannot hold it", n)
		}
		layer, err := strconv.Atoi(m[1])
		if err != nil || strconv.Itoa(layer) != m[1] {
			return bad("parameter %q: layer index %s is not canonical", n, m[1])
		}
		target, ab := m[2], m[3]
		if !slices.Contains(targets, target) {
			return bad("parameter %q adapts %s, which is not among the targets %q", n, target, targets)
		}
		if len(t.Shape) != 2 || t.Shape[0] <= 0 || t.Shape[1] <= 0 || t.Shape[0]*t.Shape[1] != len(t.Data) {
			return bad("parameter %q: shape %v with %d values is not a matrix", n, t.Shape, len(t.Data))
		}
		if ab == "A" && t.Shape[0] != r || ab == "B" && t.Shape[1] != r {
			return bad("parameter %q: shape %v is not rank %d (lora_A is [r, in], lora_B [out, r])", n, t.Shape, r)
		}
		module, _ := HFModuleName(layer, target)
		out["base_model.model."+module+".lora_"+ab+".weight"] = safetensors.Tensor{Shape: t.Shape, Data: t.Data}
		seen[target] = true
	}
	for key := range out {
		other := strings.Replace(key, ".lora_A.", ".lora_B.", 1)
		if other == key {
			other = strings.Replace(key, ".lora_B.", ".lora_A.", 1)
		}
		if _, ok := out[other]; !ok {
			return bad("%s has no partner %s: a LoRA needs both matrices", key, other)
		}
	}
	for _, t := range targets {
		if !seen[t] {
			return bad("target %q has no parameters", t)
		}
	}
	cfg, err := configJSON(r, alpha, modules, baseModelClass)
	if err != nil {
		return bad("%v", err)
	}
	return writeFolder(dir, out, cfg)
}

// configJSON renders adapter_config.json with every field peft 0.21's save_pretrained
// writes for a plain LoRA, so that peft reads it without falling back on defaults.
// peft_version names the schema followed; init_lora_weights true records kadapt's
// B = 0 start, which is peft's default (it has no effect once weights are loaded).
func configJSON(r int, alpha float64, modules []string, baseModelClass string) ([]byte, error) {
	cfg := map[string]any{
		"alora_invocation_tokens": nil,
		"alpha_pattern":           map[string]any{},
		"arrow_config":            nil,
		"auto_mapping": map[string]any{
			"base_model_class": baseModelClass,
			"parent_library":   "transformers.models.clip.modeling_clip",
		},
		"base_model_name_or_path": nil,
		"bias":                    "none",
		"corda_config":            nil,
		"ensure_weight_tying":     false,
		"eva_config":              nil,
		"exclude_modules":         nil,
		"fan_in_fan_out":          false,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"kasa_config":             nil,
		"layer_replication":       nil,
		"layers_pattern":          nil,
		"layers_to_transform":     nil,
		"loftq_config":            map[string]any{},
		"lora_alpha":              alpha,
		"lora_bias":               false,
		"lora_dropout":            json.Number("0.0"),
		"lora_ga_config":          nil,
		"megatron_config":         nil,
		"megatron_core":           "megatron.core",
		"modules_to_save":         nil,
		"monteclora_config":       nil,
		"peft_type":               "LORA",
		"peft_version":            "0.21.0",
		"qalora_group_size":       16,
		"r":                       r,
		"rank_pattern":            map[string]any{},
		"revision":                nil,
		"target_modules":          modules,
		"target_parameters":       nil,
		"task_type":               nil,
		"trainable_token_indices": nil,
		"use_bdlora":              nil,
		"use_dora":                false,
		"use_qalora":              false,
		"use_rslora":              false,
		"velora_config":           nil,
	}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(raw, '\n'), nil
}

// writeFolder writes the two files so that no reader sees a half-written adapter. A
// new folder is built beside its destination and renamed into place whole; an
// existing one (it may hold other files, such as a merged checkpoint) gets each file
// replaced atomically, the weights first.
func writeFolder(dir string, tensors map[string]safetensors.Tensor, cfg []byte) error {
	meta := map[string]string{"format": "pt"}
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("peft: %s exists and is not a folder", dir)
	case err == nil:
		if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), tensors, meta); err != nil {
			return fmt.Errorf("peft: %w", err)
		}
		if err := atomicfile.Write(filepath.Join(dir, ConfigFile), cfg); err != nil {
			return fmt.Errorf("peft: %w", err)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("peft: %w", err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	err = safetensors.WriteFile(filepath.Join(tmp, WeightsFile), tensors, meta)
	if err == nil {
		err = atomicfile.Write(filepath.Join(tmp, ConfigFile), cfg)
	}
	if err == nil {
		err = os.Chmod(tmp, 0o755) // MkdirTemp's 0700 would hide the adapter from other users
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("peft: writing %s: %w", dir, err)
	}
	return nil
}
