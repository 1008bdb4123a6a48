package peft

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

// The small tower's linears: width 48, MLP 96, 3 layers.
var linearSize = map[string][2]int{ // [out, in]
	"q": {48, 48}, "k": {48, 48}, "v": {48, 48}, "out": {48, 48}, "fc1": {96, 48}, "fc2": {48, 96},
}

// lora is one synthetic module's weights.
type lora struct {
	layer  int
	target string
	r      int
}

func key(layer int, target, ab string) string {
	m, _ := HFModuleName(layer, target)
	return "base_model.model." + m + ".lora_" + ab + ".weight"
}

// loraTensors makes seeded random A [r, in] and B [out, r] for each module.
func loraTensors(mods []lora) map[string]safetensors.Tensor {
	rng := rand.New(rand.NewPCG(7, 11))
	out := map[string]safetensors.Tensor{}
	fill := func(n int) []float32 {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(rng.NormFloat64() * 0.1)
		}
		return d
	}
	for _, m := range mods {
		sz := linearSize[m.target]
		out[key(m.layer, m.target, "A")] = safetensors.Tensor{Shape: []int{m.r, sz[1]}, Data: fill(m.r * sz[1])}
		out[key(m.layer, m.target, "B")] = safetensors.Tensor{Shape: []int{sz[0], m.r}, Data: fill(sz[0] * m.r)}
	}
	return out
}

// writeAdapter writes a folder from a config given as JSON text (so that pattern
// order is the test's) and F32 tensors.
func writeAdapter(t *testing.T, cfg string, tensors map[string]safetensors.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func snapshot(v *backbones.Vision) map[string][]float32 {
	out := map[string][]float32{}
	for _, l := range v.Linears() {
		w := make([]float32, l.W.Value.Size())
		l.W.Value.Backend().Download(w, l.W.Value)
		out[l.Site] = w
	}
	return out
}

// TestScaling checks the merged update of each module against scale·B·A computed
// by gonum, with the scale in closed form: alpha/r, or alpha/√r with rsLoRA, after
// rank_pattern and alpha_pattern (first matching key in file order).
func TestScaling(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   string
		mods  []lora
		scale map[string]float64 // by site
	}{
		{"alpha over r",
			`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "fc1"]}`,
			[]lora{{0, "q", 4}, {0, "fc1", 4}, {1, "q", 4}, {1, "fc1", 4}, {2, "q", 4}, {2, "fc1", 4}},
			map[string]float64{"blocks.0.attn.q": 2, "blocks.0.mlp.fc1": 2, "blocks.2.mlp.fc1": 2}},
		{"rsLoRA",
			`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": true, "target_modules": ["q_proj", "fc1"]}`,
			[]lora{{0, "q", 4}, {0, "fc1", 4}, {1, "q", 4}, {1, "fc1", 4}, {2, "q", 4}, {2, "fc1", 4}},
			map[string]float64{"blocks.0.attn.q": 4, "blocks.1.mlp.fc1": 4}},
		{"rsLoRA and alpha_pattern",
			`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": true, "alpha_pattern": {"fc1": 16}, "target_modules": ["q_proj", "fc1"]}`,
			[]lora{{0, "q", 4}, {0, "fc1", 4}, {1, "q", 4}, {1, "fc1", 4}, {2, "q", 4}, {2, "fc1", 4}},
			map[string]float64{"blocks.0.attn.q": 4, "blocks.0.mlp.fc1": 8, "blocks.2.mlp.fc1": 8}},
		{"rank_pattern by suffix",
			`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "rank_pattern": {"layers.1.mlp.fc1": 2}, "target_modules": ["fc1"]}`,
			[]lora{{0, "fc1", 4}, {1, "fc1", 2}, {2, "fc1", 4}},
			map[string]float64{"blocks.0.mlp.fc1": 2, "blocks.1.mlp.fc1": 4, "blocks.2.mlp.fc1": 2}},
		{"rank_pattern regex with rsLoRA",
			`{"peft_type": "LORA", "r": 4, "lora_alpha": 6, "use_rslora": true, "rank_pattern": {"layers\\.[12]\\.self_attn\\.v_proj": 9}, "target_modules": ["v_proj"]}`,
			[]lora{{0, "v", 4}, {1, "v", 9}, {2, "v", 9}},
			map[string]float64{"blocks.0.attn.v": 3, "blocks.1.attn.v": 2, "blocks.2.attn.v": 2}},
		{"first pattern in file order wins",
			`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "alpha_pattern": {"layers\\.0\\..*": 4, "q_proj": 100}, "target_modules": ["q_proj"]}`,
			[]lora{{0, "q", 4}, {1, "q", 4}, {2, "q", 4}},
			map[string]float64{"blocks.0.attn.q": 1, "blocks.1.attn.q": 25}},
		{"first pattern in file order wins, reversed",
			`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "alpha_pattern": {"q_proj": 100, "layers\\.0\\..*": 4}, "target_modules": ["q_proj"]}`,
			[]lora{{0, "q", 4}, {1, "q", 4}, {2, "q", 4}},
			map[string]float64{"blocks.0.attn.q": 25, "blocks.1.attn.q": 25}},
		{"target_modules regex",
			`{"peft_type": "LORA", "r": 2, "lora_alpha": 3, "target_modules": ".*\\.layers\\.[02]\\.self_attn\\.(k|out)_proj"}`,
			[]lora{{0, "k", 2}, {0, "out", 2}, {2, "k", 2}, {2, "out", 2}},
			map[string]float64{"blocks.0.attn.k": 1.5, "blocks.2.attn.out": 1.5}},
		{"layers_to_transform",
			`{"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["fc2", "k_proj"], "layers_to_transform": [1], "layers_pattern": "layers"}`,
			[]lora{{1, "fc2", 2}, {1, "k", 2}},
			map[string]float64{"blocks.1.mlp.fc2": 1, "blocks.1.attn.k": 1}},
		{"exclude_modules",
			`{"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["fc2"], "exclude_modules": ["layers.0.mlp.fc2"]}`,
			[]lora{{1, "fc2", 2}, {2, "fc2", 2}},
			map[string]float64{"blocks.1.mlp.fc2": 1, "blocks.2.mlp.fc2": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tensors := loraTensors(tc.mods)
			a, err := Load(writeAdapter(t, tc.cfg, tensors))
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Modules) != len(tc.mods) {
				t.Fatalf("%d modules, want %d", len(a.Modules), len(tc.mods))
			}
			for _, m := range a.Modules {
				if want, ok := tc.scale[m.Site]; ok && math.Abs(m.Scale-want) > 1e-12 {
					t.Errorf("%s: scale %v, want %v", m.Site, m.Scale, want)
				}
			}
			b := cpu.New()
			v := tower(t, b)
			before := snapshot(v)
			if err := a.Apply(v); err != nil {
				t.Fatal(err)
			}
			after := snapshot(v)
			touched := map[string]bool{}
			for _, m := range a.Modules {
				sz := linearSize[m.Target]
				A := tensors[key(m.Layer, m.Target, "A")]
				B := tensors[key(m.Layer, m.Target, "B")]
				var ref mat.Dense
				ref.Mul(mat.NewDense(sz[0], m.R, f64(B.Data)), mat.NewDense(m.R, sz[1], f64(A.Data)))
				ref.Scale(m.Scale, &ref)
				for i := 0; i < sz[0]; i++ {
					for j := 0; j < sz[1]; j++ {
						got := float64(after[m.Site][i*sz[1]+j] - before[m.Site][i*sz[1]+j])
						if math.Abs(got-ref.At(i, j)) > 1e-5 {
							t.Fatalf("%s: ΔW[%d,%d] = %v, scale·B·A = %v", m.Site, i, j, got, ref.At(i, j))
						}
					}
				}
				touched[m.Site] = true
			}
			for site, w := range before {
				if !touched[site] && !slices.Equal(w, after[site]) {
					t.Errorf("%s changed, but the adapter has no weights for it", site)
				}
			}
		})
	}
}

func f64(d []float32) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}

// rawTensor is a tensor already encoded in some dtype, for files WriteFile cannot make.
type rawTensor struct {
	dtype string
	shape []int
	data  []byte
}

func writeRaw(t *testing.T, path string, ts map[string]rawTensor) {
	t.Helper()
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var body []byte
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range ts {
			if !yield(k) {
				return
			}
		}
	}) {
		r := ts[name]
		hdr[name] = map[string]any{"dtype": r.dtype, "shape": r.shape, "data_offsets": []int{len(body), len(body) + len(r.data)}}
		body = append(body, r.data...)
	}
	h, _ := json.Marshal(hdr)
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(out, h...), body...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// encode writes values exactly representable in every float dtype (small multiples of
// 1/8) in the given dtype.
func encode(dtype string, vals []float32) []byte {
	var out []byte
	for _, v := range vals {
		bits := math.Float32bits(v)
		switch dtype {
		case "F32":
			out = binary.LittleEndian.AppendUint32(out, bits)
		case "F64":
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(float64(v)))
		case "BF16":
			out = binary.LittleEndian.AppendUint16(out, uint16(bits>>16))
		case "F16":
			var h uint16
			if v != 0 {
				exp := int(bits>>23&0xff) - 127 + 15
				h = uint16(bits>>31)<<15 | uint16(exp)<<10 | uint16(bits>>13&0x3ff)
			}
			out = binary.LittleEndian.AppendUint16(out, h)
		case "I32":
			out = binary.LittleEndian.AppendUint32(out, uint32(int32(v)))
		}
	}
	return out
}

// TestDTypes loads the same adapter stored as F32, F16, BF16 and F64, keyed with and
// without ".default" and beside a text-tower half, and gets the same values.
func TestDTypes(t *testing.T) {
	const r = 2
	vals := func(n, seed int) []float32 {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32((i*seed)%17-8) / 8
		}
		return d
	}
	A, B := vals(r*48, 3), vals(48*r, 5)
	cfg := `{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "bias": "none"}`
	for _, dtype := range []string{"F32", "F16", "BF16", "F64"} {
		t.Run(dtype, func(t *testing.T) {
			dir := writeAdapter(t, cfg, nil)
			ts := map[string]rawTensor{
				"base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": {dtype, []int{r, 32}, encode(dtype, vals(r*32, 7))},
				"base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight": {dtype, []int{32, r}, encode(dtype, vals(32*r, 7))},
			}
			for l := range 3 {
				suffix := ".weight"
				if l == 1 {
					suffix = ".default.weight"
				}
				pre := fmt.Sprintf("base_model.model.vision_model.encoder.layers.%d.self_attn.q_proj.", l)
				ts[pre+"lora_A"+suffix] = rawTensor{dtype, []int{r, 48}, encode(dtype, A)}
				ts[pre+"lora_B"+suffix] = rawTensor{dtype, []int{48, r}, encode(dtype, B)}
			}
			writeRaw(t, filepath.Join(dir, WeightsFile), ts)
			a, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Modules) != 3 {
				t.Fatalf("%d modules, want 3", len(a.Modules))
			}
			for _, m := range a.Modules {
				if !slices.Equal(m.A.Data, A) || !slices.Equal(m.B.Data, B) || m.Scale != 2 {
					t.Fatalf("%s: values or scale (%v) differ from what was stored", m.Name, m.Scale)
				}
			}
			if len(a.Notes) != 1 || !strings.Contains(a.Notes[0], "2 text-tower tensors ignored") {
				t.Fatalf("notes %q, want one about the ignored text tower", a.Notes)
			}
			if err := a.Apply(tower(t, cpu.New())); err != nil {
				t.Fatal(err)
			}
		})
	}
}
