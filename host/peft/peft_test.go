package peft

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

const fx = "../../backbones/testdata"

func tower(t *testing.T, b core.Backend) *backbones.Vision {
	t.Helper()
	cfg, _, err := backbones.ReadHFConfig(fx + "/clip_vision_small.config.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := backbones.NewVision(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := backbones.LoadVision(v, fx+"/clip_vision_small.safetensors", backbones.LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	return v
}

func read(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, n := range f.Names() {
		out[n], err = f.Float32s(n)
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestApplyMatchesPEFT loads the adapter peft saved and checks the adapted tower's
// output against peft's own (the fixture's image_embeds with the adapter active).
func TestApplyMatchesPEFT(t *testing.T) {
	a, err := Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Pairs) != 6 || a.Pairs[0].R != 2 || a.Pairs[0].Scale != 3 {
		t.Fatalf("pairs %d, r %d, scale %v; want 6 pairs at r=2, alpha/r = 3", len(a.Pairs), a.Pairs[0].R, a.Pairs[0].Scale)
	}
	b := cpu.New()
	v := tower(t, b)
	if err := a.Apply(v); err != nil {
		t.Fatal(err)
	}
	io := read(t, fx+"/clip_vision_small.io.safetensors")
	tp := autograd.NewTape(b)
	tp.SetGradEnabled(false)
	defer tp.Reset()
	out := v.Forward(tp, tp.Input(io["pixel_values"], 2, 3, 64, 64)).Embeds
	got := make([]float32, out.Value.Size())
	b.Download(got, out.Value)
	want := read(t, "../adapt/testdata/clip_vision_small.lora.safetensors")["image_embeds"]
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-4 {
			t.Fatalf("image_embeds[%d] = %v, peft %v", i, got[i], want[i])
		}
	}
}

// TestExportMatchesPEFT exports the fixture's LoRA parameters under kadapt's names and
// compares the folder with what peft's save_pretrained wrote for them.
func TestExportMatchesPEFT(t *testing.T) {
	lora := read(t, "../adapt/testdata/clip_vision_small.lora.safetensors")
	b := cpu.New()
	var params []*autograd.Var
	for key, d := range lora {
		var layer int
		var proj, ab string
		if !strings.HasPrefix(key, "param.") {
			continue
		}
		fields := strings.NewReplacer(".", " ", "_", " ").Replace(strings.TrimPrefix(key, "param.base_model.model.vision_model.encoder.layers."))
		if _, err := fmt.Sscanf(fields, "%d self attn %s proj lora %s default weight", &layer, &proj, &ab); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		shape := core.Shape{2, 48}
		if ab == "B" {
			shape = core.Shape{48, 2}
		}
		p := autograd.NewParam(b, fmt.Sprintf("adapt.blocks.%d.%s.lora_%s", layer, proj, ab), shape)
		b.Upload(p.Value, d)
		params = append(params, p)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := Export(dir, params, 2, 6, []string{"q", "v"}, "CLIPVisionModelWithProjection"); err != nil {
		t.Fatal(err)
	}
	got, want := read(t, filepath.Join(dir, "adapter_model.safetensors")), read(t, "testdata/adapter_model.safetensors")
	if len(got) != len(want) {
		t.Fatalf("%d tensors, peft wrote %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || !slices.Equal(g, w) {
			t.Fatalf("tensor %s differs from peft's (present %v)", k, ok)
		}
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, _ := back.Config.TargetModules.([]any)
	if back.Config.R != 2 || back.Config.LoraAlpha != 6 || len(mods) != 2 || mods[0] != "q_proj" || mods[1] != "v_proj" {
		t.Fatalf("exported config %+v", back.Config)
	}
}

func writeAdapter(t *testing.T, cfg map[string]any, tensors map[string]safetensors.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	raw, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "adapter_config.json"), raw, 0o644)
	if err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), tensors, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func pair(layer int, proj string, r, in, out int) map[string]safetensors.Tensor {
	pre := fmt.Sprintf("base_model.model.vision_model.encoder.layers.%d.%s", layer, proj)
	return map[string]safetensors.Tensor{
		pre + ".lora_A.weight": {Shape: []int{r, in}, Data: make([]float32, r*in)},
		pre + ".lora_B.weight": {Shape: []int{out, r}, Data: make([]float32, out*r)},
	}
}

func TestScalingRules(t *testing.T) {
	tensors := pair(0, "self_attn.q_proj", 4, 48, 48)
	for k, v := range pair(1, "mlp.fc1", 4, 48, 96) {
		tensors[k] = v
	}
	dir := writeAdapter(t, map[string]any{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": true,
		"alpha_pattern": map[string]any{"fc1": 16}, "bias": "none"}, tensors)
	a, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	scales := map[string]float64{}
	for _, p := range a.Pairs {
		scales[p.Site] = p.Scale
	}
	// rsLoRA: alpha/√r; the pattern overrides alpha for fc1.
	if scales["blocks.0.attn.q"] != 8/2.0 || scales["blocks.1.mlp.fc1"] != 16/2.0 {
		t.Fatalf("scales %v, want q 4 and fc1 8", scales)
	}
}

func TestRejections(t *testing.T) {
	ok := map[string]any{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "bias": "none"}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for a, b := range ok {
			c[a] = b
		}
		c[k] = v
		return c
	}
	half := pair(0, "self_attn.q_proj", 2, 48, 48)
	delete(half, "base_model.model.vision_model.encoder.layers.0.self_attn.q_proj.lora_B.weight")
	for _, tc := range []struct {
		cfg     map[string]any
		tensors map[string]safetensors.Tensor
		want    string
	}{
		{with("peft_type", "IA3"), pair(0, "self_attn.q_proj", 2, 48, 48), `peft_type "IA3"`},
		{with("use_dora", true), pair(0, "self_attn.q_proj", 2, 48, 48), "use_dora"},
		{with("bias", "all"), pair(0, "self_attn.q_proj", 2, 48, 48), `bias "all"`},
		{with("fan_in_fan_out", true), pair(0, "self_attn.q_proj", 2, 48, 48), "fan_in_fan_out"},
		{ok, half, "only one of lora_A and lora_B"},
		{ok, map[string]safetensors.Tensor{"base_model.model.classifier.weight": {Shape: []int{1, 1}, Data: []float32{1}}}, `key "base_model.model.classifier.weight"`},
	} {
		dir := writeAdapter(t, tc.cfg, tc.tensors)
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	// Shapes that do not fit the model, and layers it does not have.
	for _, tensors := range []map[string]safetensors.Tensor{pair(0, "self_attn.q_proj", 2, 32, 48), pair(7, "self_attn.q_proj", 2, 48, 48)} {
		a, err := Load(writeAdapter(t, ok, tensors))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Apply(tower(t, cpu.New())); err == nil {
			t.Errorf("an adapter that does not fit the tower was applied")
		}
	}
}
