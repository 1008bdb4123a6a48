package peft

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

const okConfig = `{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "bias": "none"}`

// qAll is a well-formed rank-2 LoRA on every layer's q_proj.
func qAll() map[string]safetensors.Tensor {
	return loraTensors([]lora{{0, "q", 2}, {1, "q", 2}, {2, "q", 2}})
}

func with(ts map[string]safetensors.Tensor, edit func(map[string]safetensors.Tensor)) map[string]safetensors.Tensor {
	edit(ts)
	return ts
}

// TestLoadRejects checks that each adapter peft would read differently, or kadapt
// cannot represent, is refused by Load with an error naming the file and the key or
// field at fault.
func TestLoadRejects(t *testing.T) {
	cfgWith := func(extra string) string { return strings.Replace(okConfig, "{", "{"+extra+", ", 1) }
	for _, tc := range []struct {
		name    string
		cfg     string
		tensors map[string]safetensors.Tensor
		want    []string
	}{
		{"not LoRA", strings.Replace(okConfig, `"LORA"`, `"IA3"`, 1), qAll(), []string{ConfigFile, `peft_type "IA3"`}},
		{"no peft_type", `{"r": 2}`, qAll(), []string{ConfigFile, "no peft_type"}},
		{"DoRA", cfgWith(`"use_dora": true`), qAll(), []string{ConfigFile, "use_dora"}},
		{"Conv1D layout", cfgWith(`"fan_in_fan_out": true`), qAll(), []string{ConfigFile, "fan_in_fan_out"}},
		{"bias all", strings.Replace(okConfig, `"none"`, `"all"`, 1), qAll(), []string{ConfigFile, `bias "all"`}},
		{"bias lora_only", strings.Replace(okConfig, `"none"`, `"lora_only"`, 1), qAll(), []string{ConfigFile, `bias "lora_only"`}},
		{"lora_bias", cfgWith(`"lora_bias": true`), qAll(), []string{ConfigFile, "lora_bias"}},
		{"QA-LoRA", cfgWith(`"use_qalora": true`), qAll(), []string{ConfigFile, "use_qalora"}},
		{"layer replication", cfgWith(`"layer_replication": [[0, 2], [1, 3]]`), qAll(), []string{ConfigFile, "layer_replication"}},
		{"rank zero", strings.Replace(okConfig, `"r": 2`, `"r": 0`, 1), qAll(), []string{ConfigFile, "r = 0"}},
		// Finite, so accepted; the merged weights overflowed and embeddings came out NaN.
		{"lora_alpha 1e308", strings.Replace(okConfig, `"lora_alpha": 4`, `"lora_alpha": 1e308`, 1), qAll(), []string{ConfigFile, "lora_alpha 1e+308"}},
		{"alpha_pattern 1e308", cfgWith(`"alpha_pattern": {"q_proj": -1e308}`), qAll(), []string{ConfigFile, `alpha_pattern["q_proj"]`}},
		{"NaN weight", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts[key(1, "q", "B")].Data[3] = float32(math.NaN())
		}), []string{WeightsFile, key(1, "q", "B"), "element 3 is NaN"}},
		{"Inf weight", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts[key(0, "q", "A")].Data[0] = float32(math.Inf(1))
		}), []string{WeightsFile, key(0, "q", "A"), "element 0 is +Inf"}},
		{"not JSON", `{"peft_type": "LORA",`, qAll(), []string{ConfigFile}},
		{"rank_pattern not an integer", cfgWith(`"rank_pattern": {"q_proj": 2.5}`), qAll(), []string{ConfigFile, `rank_pattern["q_proj"]`}},
		{"regex Go cannot run", strings.Replace(okConfig, `["q_proj"]`, `"(?<=x)q_proj"`, 1), qAll(), []string{ConfigFile, "target_modules", "(?<=x)q_proj"}},
		{"missing B", "", with(qAll(), func(ts map[string]safetensors.Tensor) { delete(ts, key(1, "q", "B")) }),
			[]string{WeightsFile, key(1, "q", "A"), "no lora_B"}},
		{"missing A", "", with(qAll(), func(ts map[string]safetensors.Tensor) { delete(ts, key(2, "q", "A")) }),
			[]string{WeightsFile, key(2, "q", "B"), "no lora_A"}},
		{"A and B ranks disagree", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts[key(0, "q", "B")] = safetensors.Tensor{Shape: []int{16, 6}, Data: make([]float32, 96)}
		}), []string{WeightsFile, key(0, "q", "B"), "[16 6]"}},
		{"rank differs from r", "", loraTensors([]lora{{0, "q", 4}, {1, "q", 4}, {2, "q", 4}}),
			[]string{WeightsFile, key(0, "q", "A"), "rank 4", "rank 2"}},
		{"module not targeted", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			for k, v := range loraTensors([]lora{{1, "fc1", 2}}) {
				ts[k] = v
			}
		}), []string{WeightsFile, key(1, "fc1", "A"), "target_modules"}},
		{"module CLIP does not have", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts["base_model.model.vision_model.encoder.layers.0.self_attn.qkv.lora_A.weight"] = safetensors.Tensor{Shape: []int{2, 48}, Data: make([]float32, 96)}
		}), []string{WeightsFile, `"base_model.model.vision_model.encoder.layers.0.self_attn.qkv.lora_A.weight"`}},
		{"projection LoRA", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts["base_model.model.visual_projection.lora_A.weight"] = safetensors.Tensor{Shape: []int{2, 48}, Data: make([]float32, 96)}
		}), []string{WeightsFile, `"base_model.model.visual_projection.lora_A.weight"`, "does not adapt"}},
		{"DoRA magnitude", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts["base_model.model.vision_model.encoder.layers.0.self_attn.q_proj.lora_magnitude_vector"] = safetensors.Tensor{Shape: []int{48}, Data: make([]float32, 48)}
		}), []string{WeightsFile, "lora_magnitude_vector", "DoRA"}},
		{"LoRA bias tensor", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts["base_model.model.vision_model.encoder.layers.0.self_attn.q_proj.lora_B.bias"] = safetensors.Tensor{Shape: []int{48}, Data: make([]float32, 48)}
		}), []string{WeightsFile, "q_proj.lora_B.bias", "LoRA bias"}},
		{"vector instead of matrix", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts[key(0, "q", "A")] = safetensors.Tensor{Shape: []int{96}, Data: make([]float32, 96)}
		}), []string{WeightsFile, key(0, "q", "A"), "shape [96]"}},
		{"twice, with and without .default", "", with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts[strings.Replace(key(0, "q", "A"), ".weight", ".default.weight", 1)] = ts[key(0, "q", "A")]
		}), []string{WeightsFile, "lora_A.default.weight", key(0, "q", "A")}},
		{"no vision weights", "", map[string]safetensors.Tensor{
			"base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": {Shape: []int{2, 8}, Data: make([]float32, 16)},
		}, []string{WeightsFile, "no LoRA weights"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg == "" {
				cfg = okConfig
			}
			dir := writeAdapter(t, cfg, tc.tensors)
			_, err := Load(dir)
			if err == nil {
				t.Fatalf("loaded; want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestLoadRejectsFiles covers the weight file itself: a non-float dtype, and pickled
// weights in place of safetensors.
func TestLoadRejectsFiles(t *testing.T) {
	dir := writeAdapter(t, okConfig, nil)
	k := key(0, "q", "A")
	writeRaw(t, filepath.Join(dir, WeightsFile), map[string]rawTensor{
		k:                {"I32", []int{2, 48}, encode("I32", make([]float32, 96))},
		key(0, "q", "B"): {"F32", []int{48, 2}, encode("F32", make([]float32, 96))},
	})
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), WeightsFile) || !strings.Contains(err.Error(), k) || !strings.Contains(err.Error(), "I32") {
		t.Errorf("integer tensor: error %v, want one naming the file, %q and I32", err, k)
	}
	os.Rename(filepath.Join(dir, WeightsFile), filepath.Join(dir, "adapter_model.bin"))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "adapter_model.bin") {
		t.Errorf("pickled weights: error %v, want one naming adapter_model.bin", err)
	}
	os.Remove(filepath.Join(dir, "adapter_model.bin"))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), WeightsFile) {
		t.Errorf("no weights: error %v, want one naming %s", err, WeightsFile)
	}
}

// TestApplyRejects checks adapters that load but do not fit the tower: Apply names the
// key and leaves every weight as it was.
func TestApplyRejects(t *testing.T) {
	cfg := func(targets string) string { return strings.Replace(okConfig, `["q_proj"]`, targets, 1) }
	for _, tc := range []struct {
		name    string
		cfg     string
		tensors map[string]safetensors.Tensor
		want    []string
	}{
		{"layer the tower lacks", okConfig, with(qAll(), func(ts map[string]safetensors.Tensor) {
			for k, v := range loraTensors([]lora{{7, "q", 2}}) {
				ts[k] = v
			}
		}), []string{WeightsFile, key(7, "q", "A"), "3 layers"}},
		{"input width", okConfig, with(qAll(), func(ts map[string]safetensors.Tensor) {
			ts[key(2, "q", "A")] = safetensors.Tensor{Shape: []int{2, 32}, Data: make([]float32, 64)}
		}), []string{WeightsFile, key(2, "q", "A"), "[2 32]", "want lora_A [2, 48]"}},
		{"output width", cfg(`["q_proj", "fc1"]`), with(qAll(), func(ts map[string]safetensors.Tensor) {
			for k, v := range loraTensors([]lora{{0, "fc1", 2}, {1, "fc1", 2}, {2, "fc1", 2}}) {
				ts[k] = v
			}
			ts[key(1, "fc1", "B")] = safetensors.Tensor{Shape: []int{48, 2}, Data: make([]float32, 96)}
		}), []string{WeightsFile, key(1, "fc1", "B"), "[48 2]", "lora_B [96, 2]"}},
		// Within maxAlpha, but 1e6 / 2 · B·A of large weights leaves float32's range.
		{"merged weights overflow", strings.Replace(okConfig, `"lora_alpha": 4`, `"lora_alpha": 1e6`, 1), with(qAll(), func(ts map[string]safetensors.Tensor) {
			for i := range ts[key(2, "q", "B")].Data {
				ts[key(2, "q", "B")].Data[i] = 3e34
			}
			for i := range ts[key(2, "q", "A")].Data {
				ts[key(2, "q", "A")].Data[i] = 1
			}
		}), []string{WeightsFile, key(2, "q", "A"), key(2, "q", "B"), "non-finite"}},
		{"targeted module without weights", okConfig, with(qAll(), func(ts map[string]safetensors.Tensor) {
			delete(ts, key(2, "q", "A"))
			delete(ts, key(2, "q", "B"))
		}), []string{WeightsFile, ConfigFile, "vision_model.encoder.layers.2.self_attn.q_proj"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Load(writeAdapter(t, tc.cfg, tc.tensors))
			if err != nil {
				t.Fatal(err)
			}
			v := tower(t, cpu.New())
			before := snapshot(v)
			err = a.Apply(v)
			if err == nil {
				t.Fatalf("applied; want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !reflect.DeepEqual(before, snapshot(v)) {
				t.Errorf("a failed Apply changed the tower")
			}
		})
	}
}

// TestExportRejects checks that Export refuses what peft's format cannot hold or
// what does not add up, naming the parameter, and writes nothing.
func TestExportRejects(t *testing.T) {
	good := func() map[string]safetensors.Tensor {
		out := map[string]safetensors.Tensor{}
		for l := range 2 {
			for _, tg := range []string{"q", "v"} {
				pre := "adapt.blocks." + string(rune('0'+l)) + "." + tg
				out[pre+".lora_A"] = safetensors.Tensor{Shape: []int{2, 48}, Data: make([]float32, 96)}
				out[pre+".lora_B"] = safetensors.Tensor{Shape: []int{48, 2}, Data: make([]float32, 96)}
			}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		params  map[string]safetensors.Tensor
		r       int
		targets []string
		class   string
		want    string
	}{
		{"not LoRA", with(good(), func(p map[string]safetensors.Tensor) {
			p["adapt.blocks.0.attn.adapter_down"] = safetensors.Tensor{Shape: []int{8, 48}, Data: make([]float32, 384)}
		}), 2, []string{"q", "v"}, "CLIPVisionModel", `"adapt.blocks.0.attn.adapter_down"`},
		{"rank", good(), 4, []string{"q", "v"}, "CLIPVisionModel", "is not rank 4"},
		{"missing partner", with(good(), func(p map[string]safetensors.Tensor) { delete(p, "adapt.blocks.1.v.lora_B") }),
			2, []string{"q", "v"}, "CLIPVisionModel", "layers.1.self_attn.v_proj.lora_A.weight has no partner"},
		{"target not listed", good(), 2, []string{"q"}, "CLIPVisionModel", `"adapt.blocks.0.v.lora_A" adapts v`},
		{"target without parameters", good(), 2, []string{"q", "v", "fc1"}, "CLIPVisionModel", `target "fc1" has no parameters`},
		{"unknown target", good(), 2, []string{"q", "v", "qkv"}, "CLIPVisionModel", `unknown target "qkv"`},
		{"not CLIP", good(), 2, []string{"q", "v"}, "ViTModel", `"ViTModel"`},
		{"values do not fill the shape", with(good(), func(p map[string]safetensors.Tensor) {
			p["adapt.blocks.0.q.lora_A"] = safetensors.Tensor{Shape: []int{2, 48}, Data: make([]float32, 95)}
		}), 2, []string{"q", "v"}, "CLIPVisionModel", `"adapt.blocks.0.q.lora_A": shape [2 48] with 95 values`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "adapter")
			err := ExportTensors(dir, tc.params, tc.r, 8, tc.targets, tc.class)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a refused export left %s behind", dir)
			}
		})
	}
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := ExportTensors(dir, good(), 2, 8, []string{"q", "v"}, "CLIPVisionModel"); err != nil {
		t.Fatalf("the well-formed case fails: %v", err)
	}
}
