package peft

import (
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

// Fixtures made by PyTorch (transformers 5.17, peft 0.21): a small CLIP image tower,
// its input and outputs, a peft LoRA (r=2, alpha=6 on q_proj and v_proj) with the
// tower's output under it, and that LoRA as save_pretrained wrote it.
const (
	towerConfig  = "testdata/clip_vision_small.config.json"
	towerWeights = "testdata/clip_vision_small.safetensors"
	towerIO      = "testdata/clip_vision_small.io.safetensors"
	loraFixture  = "testdata/clip_vision_small.lora.safetensors"
	peftExport   = "testdata/peft_lora_export"
)

func tower(t *testing.T, b core.Backend) *backbones.Vision {
	t.Helper()
	cfg, _, err := backbones.ReadHFConfig(towerConfig)
	if err != nil {
		t.Fatal(err)
	}
	v, err := backbones.NewVision(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := backbones.LoadVision(v, towerWeights, backbones.LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	return v
}

// readTensors reads every tensor of a safetensors file as float32 (F64 rounds).
func readTensors(t *testing.T, path string) map[string]safetensors.Tensor {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]safetensors.Tensor{}
	for _, n := range f.Names() {
		d, err := f.Float32s(n)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := f.Info(n)
		out[n] = safetensors.Tensor{Shape: info.Shape, Data: d}
	}
	return out
}

func embeds(t *testing.T, b core.Backend, v *backbones.Vision) []float32 {
	t.Helper()
	px := readTensors(t, towerIO)["pixel_values"].Data
	tp := autograd.NewTape(b)
	tp.SetGradEnabled(false)
	defer tp.Reset()
	out := v.Forward(tp, tp.Input(px, 2, 3, 64, 64)).Embeds
	got := make([]float32, out.Value.Size())
	b.Download(got, out.Value)
	return got
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestApplyMatchesPEFT loads the adapter peft saved, merges it into the tower and
// compares the output with peft's own forward pass under that adapter.
func TestApplyMatchesPEFT(t *testing.T) {
	lora := readTensors(t, loraFixture)
	want := lora["image_embeds"].Data
	base := readTensors(t, towerIO)["image_embeds"].Data
	if d := maxDiff(want, base); d < 1e-2 {
		t.Fatalf("the fixture's LoRA moves the embeddings by only %.3g: the test would prove nothing", d)
	}
	// The same adapter as save_pretrained writes it, and as a live model's state dict
	// names it (".default", which the fixture's param.* tensors carry).
	live := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(peftExport, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(live, ConfigFile), raw, 0o644)
	params := map[string]safetensors.Tensor{}
	for k, v := range lora {
		if strings.HasPrefix(k, "param.") {
			params[strings.TrimPrefix(k, "param.")] = v
		}
	}
	if err := safetensors.WriteFile(filepath.Join(live, WeightsFile), params, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dir string }{{"save_pretrained", peftExport}, {"state_dict", live}} {
		dir := tc.dir
		t.Run(tc.name, func(t *testing.T) {
			a, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if a.R != 2 || a.Alpha != 6 || !slices.Equal(a.Targets, []string{"q_proj", "v_proj"}) || a.RSLoRA || len(a.Modules) != 6 {
				t.Fatalf("r %d, alpha %v, targets %q, rslora %v, %d modules; want 2, 6, [q_proj v_proj], false, 6",
					a.R, a.Alpha, a.Targets, a.RSLoRA, len(a.Modules))
			}
			for i, m := range a.Modules {
				wantSite := []string{"blocks.0.attn.q", "blocks.0.attn.v", "blocks.1.attn.q", "blocks.1.attn.v", "blocks.2.attn.q", "blocks.2.attn.v"}[i]
				if m.Site != wantSite || m.R != 2 || m.Scale != 3 {
					t.Fatalf("module %d: site %s, r %d, scale %v; want %s, 2, 3", i, m.Site, m.R, m.Scale, wantSite)
				}
				pre := "param.base_model.model." + m.Name
				if !slices.Equal(m.A.Data, lora[pre+".lora_A.default.weight"].Data) || !slices.Equal(m.B.Data, lora[pre+".lora_B.default.weight"].Data) {
					t.Fatalf("module %s: A or B differs from peft's parameters", m.Name)
				}
			}
			b := cpu.New()
			v := tower(t, b)
			if d := maxDiff(embeds(t, b, v), base); d > 1e-4 {
				t.Fatalf("the unadapted tower is off peft's base output by %.3g", d)
			}
			if err := a.Apply(v); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(embeds(t, b, v), want); d > 1e-4 {
				t.Fatalf("adapted image_embeds differ from peft's by %.3g (> 1e-4)", d)
			}
		})
	}
}

// kadaptLoRA renames the fixture's peft parameters to the names host/adapt gives
// methods/lora's (adapt.blocks.<i>.<target>.lora_A / lora_B).
func kadaptLoRA(t *testing.T) map[string]safetensors.Tensor {
	t.Helper()
	out := map[string]safetensors.Tensor{}
	r := strings.NewReplacer("param.base_model.model.vision_model.encoder.layers.", "adapt.blocks.",
		".self_attn.q_proj.", ".q.", ".self_attn.v_proj.", ".v.", ".default.weight", "")
	for k, v := range readTensors(t, loraFixture) {
		if strings.HasPrefix(k, "param.") {
			out[r.Replace(k)] = v
		}
	}
	if len(out) != 12 || out["adapt.blocks.2.v.lora_B"].Data == nil {
		t.Fatalf("renamed fixture parameters: %d, want 12 with adapt.blocks.2.v.lora_B", len(out))
	}
	return out
}

// TestExportMatchesPEFT exports the fixture's LoRA under kadapt's names and compares
// the folder with the one peft's save_pretrained wrote for the same parameters.
func TestExportMatchesPEFT(t *testing.T) {
	b := cpu.New()
	var params []*autograd.Var
	for name, ten := range kadaptLoRA(t) {
		p := autograd.NewParam(b, name, core.Shape(ten.Shape))
		b.Upload(p.Value, ten.Data)
		params = append(params, p)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "adapter")
	if err := Export(dir, params, 2, 6, []string{"q", "v"}, "CLIPVisionModelWithProjection"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Fatalf("export left %d entries beside the adapter folder, want none", len(ents)-1)
	}
	checkAgainstPEFT(t, dir)

	// Re-exporting into an existing folder replaces the two files and keeps the rest.
	other := filepath.Join(dir, "merged.safetensors")
	os.WriteFile(other, []byte("keep"), 0o644)
	os.WriteFile(filepath.Join(dir, WeightsFile), []byte("stale"), 0o644)
	if err := Export(dir, params, 2, 6, []string{"q", "v"}, "CLIPVisionModelWithProjection"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(other); string(got) != "keep" {
		t.Fatalf("export into an existing folder changed another file")
	}
	checkAgainstPEFT(t, dir)
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Fatalf("the folder holds %d entries after re-export, want 3", len(ents))
	}
}

func checkAgainstPEFT(t *testing.T, dir string) {
	t.Helper()
	wPath := filepath.Join(dir, WeightsFile)
	got, want := readTensors(t, wPath), readTensors(t, filepath.Join(peftExport, WeightsFile))
	if !reflect.DeepEqual(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("keys %q, peft wrote %q", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for k, w := range want {
		if !slices.Equal(got[k].Shape, w.Shape) || !slices.Equal(got[k].Data, w.Data) {
			t.Fatalf("tensor %s differs from peft's", k)
		}
	}
	f, err := safetensors.Open(wPath)
	if err != nil {
		t.Fatal(err)
	}
	md := f.Metadata()
	for _, n := range f.Names() {
		if info, _ := f.Info(n); info.DType != "F32" {
			t.Errorf("%s stored as %s, want F32", n, info.DType)
		}
	}
	f.Close()
	if !reflect.DeepEqual(md, map[string]string{"format": "pt"}) {
		t.Fatalf("metadata %v, want format pt", md)
	}

	// The config: every field peft wrote, with the same values (init_lora_weights
	// records kadapt's B = 0 start; the fixture's adapter was randomly initialised).
	var gotCfg, wantCfg map[string]any
	for path, m := range map[string]*map[string]any{filepath.Join(dir, ConfigFile): &gotCfg, filepath.Join(peftExport, ConfigFile): &wantCfg} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if gotCfg["init_lora_weights"] != true {
		t.Errorf("init_lora_weights %v, want true", gotCfg["init_lora_weights"])
	}
	delete(gotCfg, "init_lora_weights")
	delete(wantCfg, "init_lora_weights")
	if !reflect.DeepEqual(gotCfg, wantCfg) {
		for k := range wantCfg {
			if !reflect.DeepEqual(gotCfg[k], wantCfg[k]) {
				t.Errorf("config field %s = %v, peft wrote %v", k, gotCfg[k], wantCfg[k])
			}
		}
		for k := range gotCfg {
			if _, ok := wantCfg[k]; !ok {
				t.Errorf("config field %s is not one peft writes", k)
			}
		}
	}

	// And it loads back to the same adapter, which computes peft's output.
	a, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.R != 2 || a.Alpha != 6 || !slices.Equal(a.Targets, []string{"q_proj", "v_proj"}) || len(a.Modules) != 6 {
		t.Fatalf("reloaded: r %d, alpha %v, targets %q, %d modules", a.R, a.Alpha, a.Targets, len(a.Modules))
	}
	src := kadaptLoRA(t)
	for _, m := range a.Modules {
		pre := strings.Replace(m.Site, ".attn.", ".", 1)
		if !slices.Equal(m.A.Data, src["adapt."+pre+".lora_A"].Data) || !slices.Equal(m.B.Data, src["adapt."+pre+".lora_B"].Data) {
			t.Fatalf("reloaded %s differs from what was exported", m.Name)
		}
	}
	b := cpu.New()
	v := tower(t, b)
	if err := a.Apply(v); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(embeds(t, b, v), readTensors(t, loraFixture)["image_embeds"].Data); d > 1e-4 {
		t.Fatalf("the exported adapter's image_embeds differ from peft's by %.3g", d)
	}
}
