package adapt

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/methods/lora"
)

func readAll(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, n := range f.Names() {
		d, err := f.Float32s(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = d
	}
	return out
}

func smallCLIP(t *testing.T, b core.Backend) *backbones.Vision {
	t.Helper()
	cfg, _, err := backbones.ReadHFConfig("testdata/clip_vision_small.config.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := backbones.NewVision(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := backbones.LoadVision(m, "testdata/clip_vision_small.safetensors", backbones.LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	return m
}

func maxDiff(a, b []float32) float64 {
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	return worst
}

func get(v *autograd.Var) []float32 {
	out := make([]float32, v.Value.Size())
	v.Value.Backend().Download(out, v.Value)
	return out
}

// TestLoRAMatchesPEFT compiles the LoRA method's plan and checks the forward output and
// every LoRA gradient against peft's (r=2, alpha=6 on q_proj and v_proj, A and B both
// random so the gradients of both are non-trivial), in both the weight-delta and the
// output-branch forms.
func TestLoRAMatchesPEFT(t *testing.T) {
	ref := readAll(t, "testdata/clip_vision_small.lora.safetensors")
	io := readAll(t, "testdata/clip_vision_small.io.safetensors")
	for _, branch := range []bool{false, true} {
		t.Run(fmt.Sprintf("branch=%v", branch), func(t *testing.T) {
			b := cpu.New()
			m := smallCLIP(t, b)
			c := lora.Config{R: 2, Alpha: 6, Targets: []string{"q", "v"}, Std: 0.02, Branch: branch}
			p, err := lora.Method.Build(Describe(m), c)
			if err != nil {
				t.Fatal(err)
			}
			a, err := Compile(m, p, 1)
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(3 * 2 * (2*48 + 48*2)); a.Count != want {
				t.Errorf("count %d, want %d", a.Count, want)
			}
			peft := func(layer int, proj, ab string) string {
				return fmt.Sprintf("base_model.model.vision_model.encoder.layers.%d.self_attn.%s_proj.lora_%s.default.weight", layer, proj, ab)
			}
			ours := map[string]string{}
			for _, v := range a.Params {
				var layer int
				var proj, ab string
				name := strings.TrimPrefix(v.Name, ParamPrefix)
				if _, err := fmt.Sscanf(strings.NewReplacer(".", " ", "_", " ").Replace(name), "blocks %d %s lora %s", &layer, &proj, &ab); err != nil {
					t.Fatalf("unexpected parameter %q", v.Name)
				}
				key := peft(layer, proj, ab)
				b.Upload(v.Value, ref["param."+key])
				ours[v.Name] = key
			}
			tp := autograd.NewTape(b)
			out := m.Forward(tp, tp.Input(io["pixel_values"], 2, 3, 64, 64))
			if d := maxDiff(get(out.Embeds), ref["image_embeds"]); d > 1e-4 {
				t.Fatalf("image_embeds differ from peft's by %.3g", d)
			}
			r := tp.Input(ref["R"], 2, 24)
			tp.Backward(tp.Sum(tp.Mul(out.Embeds, r), nil, false))
			for _, v := range a.Params {
				if d := maxDiff(get(&autograd.Var{Value: v.Grad}), ref["grad."+ours[v.Name]]); d > 1e-4 {
					t.Errorf("gradient of %s differs from peft's by %.3g", v.Name, d)
				}
			}
			for _, bp := range m.Params() {
				if bp.Grad != nil {
					t.Errorf("frozen backbone parameter %s received a gradient", bp.Name)
				}
			}
			tp.Reset()
		})
	}
}

// TestMergeKeepsOutputs checks that folding weight and bias deltas into the weights
// leaves the tower's function unchanged.
func TestMergeKeepsOutputs(t *testing.T) {
	ref := readAll(t, "testdata/clip_vision_small.lora.safetensors")
	io := readAll(t, "testdata/clip_vision_small.io.safetensors")
	b := cpu.New()
	m := smallCLIP(t, b)
	p, err := lora.Method.Build(Describe(m), lora.Config{R: 2, Alpha: 6, Targets: []string{"q", "v"}, Std: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Compile(m, p, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range a.Params { // make B non-zero so the delta matters
		d := get(v)
		for i := range d {
			d[i] = float32(math.Sin(float64(i) + 1))
		}
		b.Upload(v.Value, d)
	}
	tp := autograd.NewTape(b)
	tp.SetGradEnabled(false)
	before := get(m.Forward(tp, tp.Input(io["pixel_values"], 2, 3, 64, 64)).Embeds)
	tp.Reset()
	if d := maxDiff(before, ref["image_embeds"]); d < 1e-3 {
		t.Fatalf("the adaptation does not change the output (diff %.3g): the test would prove nothing", d)
	}
	if err := a.Merge(); err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Linears() {
		if l.WeightDelta != nil {
			t.Fatalf("%s still has a weight delta after Merge", l.Site)
		}
	}
	after := get(m.Forward(tp, tp.Input(io["pixel_values"], 2, 3, 64, 64)).Embeds)
	if d := maxDiff(before, after); d > 1e-5 {
		t.Fatalf("merged model differs by %.3g", d)
	}
}
