package backbones

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

// hfFolder copies the small CLIP vision fixture into a model folder with its
// config.json edited by edit.
func hfFolder(t *testing.T, src, weights string, edit func(m map[string]any)) string {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	dir := t.TempDir()
	out, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func wantErrHas(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one naming %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %q", err, p)
		}
	}
}

// TestConfigSizesBounded: each of these sizes once went straight into an
// allocation (an out-of-memory crash or a panic); now the config is refused
// before anything is built, naming the key.
func TestConfigSizesBounded(t *testing.T) {
	vision := "testdata/clip_vision_small.config.json"
	text := "testdata/clip_text_small/config.json"
	tests := []struct {
		name, src, key string
		value          any
	}{
		{"hidden_size 1e9", vision, "hidden_size", 1e9},
		{"projection_dim 1e9", vision, "projection_dim", 1e9},
		{"num_hidden_layers 1e9", vision, "num_hidden_layers", 1e9},
		{"image_size 1e6", vision, "image_size", 1e6},
		{"intermediate_size 1e9", vision, "intermediate_size", 1e9},
		{"negative heads", vision, "num_attention_heads", -4},
		{"layer_norm_eps 0", vision, "layer_norm_eps", 0},
		{"layer_norm_eps negative", vision, "layer_norm_eps", -1e-5},
		{"vocab_size 1e12", text, "vocab_size", 1e12},
		{"context 1e9", text, "max_position_embeddings", 1e9},
		{"text layer_norm_eps 0", text, "layer_norm_eps", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := hfFolder(t, tt.src, "testdata/clip_vision_small.safetensors", func(m map[string]any) { m[tt.key] = tt.value })
			_, _, err := ReadHFConfig(filepath.Join(dir, "config.json"))
			wantErrHas(t, err, "config.json", `"`+tt.key+`"`)
		})
	}
	// Sizes that are each in bounds but do not fit together.
	dir := hfFolder(t, vision, "testdata/clip_vision_small.safetensors", func(m map[string]any) {
		m["image_size"], m["patch_size"] = 8192.0, 1.0
	})
	_, _, err := ReadHFConfig(filepath.Join(dir, "config.json"))
	wantErrHas(t, err, "config.json", "tokens")
	dir = hfFolder(t, vision, "testdata/clip_vision_small.safetensors", func(m map[string]any) { m["num_attention_heads"] = 5.0 })
	_, _, err = ReadHFConfig(filepath.Join(dir, "config.json"))
	wantErrHas(t, err, "config.json", "heads 5")
	// A nested CLIP config names the section.
	dir = hfFolder(t, vision, "testdata/clip_vision_small.safetensors", func(m map[string]any) {
		sub := map[string]any{}
		for k, v := range m {
			sub[k] = v
		}
		sub["hidden_size"] = 1e9
		for k := range m {
			delete(m, k)
		}
		m["model_type"], m["vision_config"], m["text_config"] = "clip", sub, map[string]any{}
	})
	_, _, err = ReadHFConfig(filepath.Join(dir, "config.json"))
	wantErrHas(t, err, `"vision_config.hidden_size"`)
	// kadapt's own JSON form goes through Validate.
	big := Presets["clip-vit-b32"]
	big.Layers = 1e9
	if _, err := NewVision(cpu.New(), big); err == nil || !strings.Contains(err.Error(), "layers 1000000000") {
		t.Errorf("NewVision with 10⁹ layers: %v", err)
	}
	wide := Presets["clip-vit-b32"]
	wide.Width, wide.Heads, wide.MLPDim, wide.Layers = 16384, 128, 65536, 1024
	if err := wide.Validate(); err == nil || !strings.Contains(err.Error(), "parameters, more than") {
		t.Errorf("a 3·10¹² parameter config: %v", err)
	}
	if err := (TextConfig{Vocab: 1e12, Context: 77, Width: 512, Heads: 8, Layers: 12, MLPDim: 2048, Eps: 1e-5}).Validate(); err == nil {
		t.Error("a text tower with 10¹² tokens validated")
	}
}

// TestOpenChecksSizesAgainstWeights: a config whose sizes are in bounds but not
// backed by the weights file is refused by Open before the tower is allocated
// (500 layers of width 48 would be allocated, then fail to load).
func TestOpenChecksSizesAgainstWeights(t *testing.T) {
	dir := hfFolder(t, "testdata/clip_vision_small.config.json", "testdata/clip_vision_small.safetensors",
		func(m map[string]any) { m["num_hidden_layers"] = 500.0 })
	cfg, _, err := ReadHFConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckVision(cfg, filepath.Join(dir, "model.safetensors"), LoadOptions{Strict: true})
	wantErrHas(t, err, "model.safetensors", "missing keys (7952)", "vision_model.encoder.layers.10.mlp.fc1.weight", "and 7932 more")
	_, err = Open(cpu.New(), dir, OpenOptions{})
	wantErrHas(t, err, "model.safetensors", "missing keys (7952)")
	// hidden_size in bounds but not the file's.
	dir = hfFolder(t, "testdata/clip_vision_small.config.json", "testdata/clip_vision_small.safetensors",
		func(m map[string]any) { m["hidden_size"], m["intermediate_size"] = 4096.0, 16384.0 })
	_, err = Open(cpu.New(), dir, OpenOptions{})
	wantErrHas(t, err, "shape mismatches", "vision_model.embeddings.patch_embedding.weight")
	// The unedited folder opens, and so does a text tower with its projection
	// (checked from shapes alone, where no projection tensor exists yet).
	dir = hfFolder(t, "testdata/clip_vision_small.config.json", "testdata/clip_vision_small.safetensors", func(map[string]any) {})
	if _, err := Open(cpu.New(), dir, OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	_, tc, err := ReadHFConfig("testdata/clip_text_small/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckText(*tc, "testdata/clip_text_small/model.safetensors", LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
}

// TestNonFiniteWeightsRefused: a NaN or Inf anywhere in a checkpoint made every
// embedding NaN, which was written with exit status 0.
func TestNonFiniteWeightsRefused(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		path := filepath.Join(t.TempDir(), "model.safetensors")
		rewrite(t, "testdata/clip_vision_small.safetensors", path, func(n string, shape []int, data []float32, out map[string]safetensors.Tensor) {
			if n == "vision_model.encoder.layers.2.self_attn.v_proj.weight" {
				data[7] = bad
			}
			out[n] = safetensors.Tensor{Shape: shape, Data: data}
		})
		cfg, _, err := ReadHFConfig("testdata/clip_vision_small.config.json")
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewVision(cpu.New(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = LoadVision(m, path, LoadOptions{Strict: true})
		wantErrHas(t, err, "model.safetensors", "vision_model.encoder.layers.2.self_attn.v_proj.weight", "element 7")
	}
}
