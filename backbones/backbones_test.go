package backbones

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/backbones/tokenizer"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/testutil"
)

func fixture(t *testing.T, path, name string) ([]float32, []int) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, ok := f.Info(name)
	if !ok {
		t.Fatalf("%s: no tensor %s", path, name)
	}
	data, err := f.Float32s(name)
	if err != nil {
		t.Fatal(err)
	}
	return data, info.Shape
}

func download(v *autograd.Var) []float32 { return testutil.Download(v.Value.Backend(), v.Value) }

func loadCLIPSmall(t *testing.T, b core.Backend) *Vision {
	t.Helper()
	cfg, _, err := ReadHFConfig("testdata/clip_vision_small.config.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewVision(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadVision(m, "testdata/clip_vision_small.safetensors", LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	return m
}

func forwardPixels(t *testing.T, m *Vision, io string) (Output, *autograd.Tape) {
	t.Helper()
	px, shape := fixture(t, io, "pixel_values")
	tp := autograd.NewTape(m.backend)
	tp.SetGradEnabled(false)
	return m.Forward(tp, tp.Input(px, shape...)), tp
}

func TestCLIPVisionMatchesTransformers(t *testing.T) {
	m := loadCLIPSmall(t, cpu.New())
	out, tp := forwardPixels(t, m, "testdata/clip_vision_small.io.safetensors")
	defer tp.Reset()
	want, _ := fixture(t, "testdata/clip_vision_small.io.safetensors", "last_hidden_state")
	testutil.AllClose(t, "last_hidden_state", download(out.Tokens), want, 1e-4, 0)
	want, _ = fixture(t, "testdata/clip_vision_small.io.safetensors", "image_embeds")
	testutil.AllClose(t, "image_embeds", download(out.Embeds), want, 1e-4, 0)
}

func TestTimmViTMatchesTimm(t *testing.T) {
	cfg, _, err := ReadHFConfig("testdata/timm_vit_small.config.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewVision(cpu.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadVision(m, "testdata/timm_vit_small.safetensors", LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	out, tp := forwardPixels(t, m, "testdata/timm_vit_small.io.safetensors")
	defer tp.Reset()
	want, _ := fixture(t, "testdata/timm_vit_small.io.safetensors", "features")
	testutil.AllClose(t, "features", download(out.Tokens), want, 1e-4, 0)
	want, _ = fixture(t, "testdata/timm_vit_small.io.safetensors", "logits")
	testutil.AllClose(t, "logits", download(out.Logits), want, 1e-4, 0)
}

// rewrite re-keys a fixture checkpoint into another naming convention, so one PyTorch
// reference checks every name map.
func rewrite(t *testing.T, src, dst string, mapKey func(string, []int, []float32, map[string]safetensors.Tensor)) {
	t.Helper()
	f, err := safetensors.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]safetensors.Tensor{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		data, err := f.Float32s(n)
		if err != nil {
			t.Fatal(err)
		}
		mapKey(n, info.Shape, data, out)
	}
	if err := safetensors.WriteFile(dst, out, nil); err != nil {
		t.Fatal(err)
	}
}

func transpose(data []float32, r, c int) []float32 {
	out := make([]float32, len(data))
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			out[j*r+i] = data[i*c+j]
		}
	}
	return out
}

func TestOpenAINamingMatchesHF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "openai.safetensors")
	qkv := map[string][3][]float32{}
	rewrite(t, "testdata/clip_vision_small.safetensors", path, func(n string, shape []int, data []float32, out map[string]safetensors.Tensor) {
		r := strings.NewReplacer("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight",
			"vision_model.embeddings.class_embedding", "visual.class_embedding",
			"vision_model.embeddings.position_embedding.weight", "visual.positional_embedding",
			"vision_model.pre_layrnorm", "visual.ln_pre", "vision_model.post_layernorm", "visual.ln_post",
			"vision_model.encoder.layers.", "visual.transformer.resblocks.", "layer_norm1", "ln_1", "layer_norm2", "ln_2",
			"self_attn.out_proj", "attn.out_proj", "mlp.fc1", "mlp.c_fc", "mlp.fc2", "mlp.c_proj")
		if n == "visual_projection.weight" {
			out["visual.proj"] = safetensors.Tensor{Shape: []int{shape[1], shape[0]}, Data: transpose(data, shape[0], shape[1])}
			return
		}
		for j, p := range []string{"q_proj", "k_proj", "v_proj"} {
			if strings.Contains(n, "self_attn."+p+".") {
				part := n[strings.LastIndex(n, ".")+1:]
				key := r.Replace(strings.Replace(n, "self_attn."+p+"."+part, "attn.in_proj_"+part, 1))
				parts := qkv[key]
				parts[j] = data
				qkv[key] = parts
				if parts[0] != nil && parts[1] != nil && parts[2] != nil {
					fused := append(append(append([]float32(nil), parts[0]...), parts[1]...), parts[2]...)
					s := append([]int{3 * shape[0]}, shape[1:]...)
					out[key] = safetensors.Tensor{Shape: s, Data: fused}
				}
				return
			}
		}
		out[r.Replace(n)] = safetensors.Tensor{Shape: shape, Data: data}
	})
	ref := loadCLIPSmall(t, cpu.New())
	cfg := ref.Cfg
	m, err := NewVision(cpu.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadVision(m, path, LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	for _, p := range ref.Params() {
		q, _ := m.Param(p.Name)
		got, want := download(q), download(p)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s[%d] = %v, want %v", p.Name, i, got[i], want[i])
			}
		}
	}
}

func TestHFViTNamingMatchesTimm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hfvit.safetensors")
	rewrite(t, "testdata/timm_vit_small.safetensors", path, func(n string, shape []int, data []float32, out map[string]safetensors.Tensor) {
		put := func(k string, s []int, d []float32) { out["vit."+k] = safetensors.Tensor{Shape: s, Data: d} }
		var i int
		var rest string
		if _, err := fmt.Sscanf(n, "blocks.%d.", &i); err == nil {
			rest = n[strings.Index(n[len("blocks."):], ".")+len("blocks.")+1:]
			pre := fmt.Sprintf("encoder.layer.%d.", i)
			switch {
			case strings.HasPrefix(rest, "attn.qkv."):
				part := rest[len("attn.qkv."):]
				rows := shape[0] / 3
				cols := len(data) / shape[0]
				for j, name := range []string{"query", "key", "value"} {
					put(pre+"attention.attention."+name+"."+part, append([]int{rows}, shape[1:]...), data[j*rows*cols:(j+1)*rows*cols])
				}
				return
			default:
				rest = strings.NewReplacer("norm1", "layernorm_before", "norm2", "layernorm_after", "attn.proj", "attention.output.dense",
					"mlp.fc1", "intermediate.dense", "mlp.fc2", "output.dense").Replace(rest)
				put(pre+rest, shape, data)
				return
			}
		}
		switch n {
		case "cls_token":
			put("embeddings.cls_token", shape, data)
		case "pos_embed":
			put("embeddings.position_embeddings", shape, data)
		case "patch_embed.proj.weight", "patch_embed.proj.bias":
			put("embeddings.patch_embeddings.projection."+n[len("patch_embed.proj."):], shape, data)
		case "norm.weight", "norm.bias":
			put("layernorm."+n[len("norm."):], shape, data)
		case "head.weight", "head.bias":
			out["classifier."+n[len("head."):]] = safetensors.Tensor{Shape: shape, Data: data}
		}
	})
	cfg, _, err := ReadHFConfig("testdata/timm_vit_small.config.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Family = HFViT
	m, err := NewVision(cpu.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadVision(m, path, LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	out, tp := forwardPixels(t, m, "testdata/timm_vit_small.io.safetensors")
	defer tp.Reset()
	want, _ := fixture(t, "testdata/timm_vit_small.io.safetensors", "logits")
	testutil.AllClose(t, "logits", download(out.Logits), want, 1e-4, 0)
}

func loadTextSmall(t *testing.T) *Text {
	t.Helper()
	_, tc, err := ReadHFConfig("testdata/clip_text_small/config.json")
	if err != nil {
		t.Fatal(err)
	}
	txt, err := NewText(cpu.New(), *tc)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadText(txt, "testdata/clip_text_small/model.safetensors", LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	return txt
}

func TestCLIPTextMatchesTransformers(t *testing.T) {
	txt := loadTextSmall(t)
	f, err := safetensors.Open("testdata/clip_text_small/io.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.Int64s("input_ids")
	info, _ := f.Info("input_ids")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	shape := info.Shape
	ids := make([][]int, shape[0])
	for i := range ids {
		for j := 0; j < shape[1]; j++ {
			ids[i] = append(ids[i], int(raw[i*shape[1]+j]))
		}
	}
	tp := autograd.NewTape(txt.backend)
	tp.SetGradEnabled(false)
	defer tp.Reset()
	out, err := txt.Forward(tp, ids)
	if err != nil {
		t.Fatal(err)
	}
	// transformers was given the tokenizer's attention mask, which hides padding from
	// every query; CLIP's own code (and kadapt) uses the causal mask alone. Positions up
	// to the first end-of-text token — all that pooling reads — are identical either
	// way, so compare those.
	want, _ := fixture(t, "testdata/clip_text_small/io.safetensors", "last_hidden_state")
	got := download(out.Tokens)
	w := txt.Cfg.Width
	for i, row := range ids {
		for j := range row {
			if j > 0 && row[j-1] == txt.Cfg.EOSID {
				break
			}
			at := (i*len(row) + j) * w
			testutil.AllClose(t, fmt.Sprintf("last_hidden_state[%d,%d]", i, j), got[at:at+w], want[at:at+w], 1e-4, 0)
		}
	}
	want, _ = fixture(t, "testdata/clip_text_small/io.safetensors", "text_embeds")
	testutil.AllClose(t, "text_embeds", download(out.Embeds), want, 1e-4, 0)
}

func TestPresetParameterCounts(t *testing.T) {
	// Counts from the paper's notes: conv1 2,359,296; class token 768; positions
	// 50·768; ln_pre and ln_post 2·1,536; 12 blocks of 7,087,872; projection 768·512.
	for _, tc := range []struct {
		preset string
		want   int64
	}{
		{"clip-vit-b32", 2359296 + 768 + 50*768 + 2*1536 + 12*7087872 + 768*512},
		{"clip-vit-b16", 86192640},
	} {
		cfg, err := Preset(tc.preset)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewVision(cpu.New(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.NumParams(); got != tc.want {
			t.Errorf("%s: %d parameters, want %d", tc.preset, got, tc.want)
		}
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	rewrite(t, "testdata/clip_vision_small.safetensors", path, func(n string, shape []int, data []float32, out map[string]safetensors.Tensor) {
		switch n {
		case "vision_model.post_layernorm.weight":
			return // missing
		case "vision_model.encoder.layers.1.mlp.fc1.weight":
			out[n] = safetensors.Tensor{Shape: []int{shape[1], shape[0]}, Data: data} // transposed: mismatch
			return
		}
		out[n] = safetensors.Tensor{Shape: shape, Data: data}
	})
	// An unexpected extra key.
	f, _ := safetensors.Open(path)
	extra := map[string]safetensors.Tensor{"vision_model.mystery": {Shape: []int{2}, Data: []float32{1, 2}}}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		d, _ := f.Float32s(n)
		extra[n] = safetensors.Tensor{Shape: info.Shape, Data: d}
	}
	f.Close()
	if err := safetensors.WriteFile(path, extra, nil); err != nil {
		t.Fatal(err)
	}
	cfg, _, _ := ReadHFConfig("testdata/clip_vision_small.config.json")
	m, _ := NewVision(cpu.New(), cfg)
	err := LoadVision(m, path, LoadOptions{Strict: true})
	if err == nil {
		t.Fatal("loading a bad checkpoint succeeded")
	}
	for _, want := range []string{"bad.safetensors", "vision_model.post_layernorm.weight", "vision_model.encoder.layers.1.mlp.fc1.weight", "vision_model.mystery"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
}

// TestClassEmbeddings checks the zero-shot recipe against transformers' text
// embeddings: with one template the class weight is the prompt's normalised
// embedding; with two it is the re-normalised mean of both.
func TestClassEmbeddings(t *testing.T) {
	txt := loadTextSmall(t)
	tok, err := tokenizer.LoadDir("testdata/clip_text_small")
	if err != nil {
		t.Fatal(err)
	}
	emb, _ := fixture(t, "testdata/clip_text_small/io.safetensors", "text_embeds") // rows: "a photo of a cat.", "A PHOTO of the dog!", ...
	d := 24
	norm := func(v []float64) []float32 {
		var s float64
		for _, x := range v {
			s += x * x
		}
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x / math.Sqrt(s))
		}
		return out
	}
	row := func(i int) []float64 {
		out := make([]float64, d)
		for j := range out {
			out[j] = float64(emb[i*d+j])
		}
		return out
	}
	got, err := ClassEmbeddings(txt, tok, []string{"cat", "dog"}, []string{"a photo of a {}."})
	if err != nil {
		t.Fatal(err)
	}
	testutil.AllClose(t, "cat", got[0], norm(row(0)), 1e-5, 0)
	got, err = ClassEmbeddings(txt, tok, []string{"dog"}, []string{"A PHOTO of the {}!", "a photo of the {}!"})
	if err != nil {
		t.Fatal(err)
	}
	// Both prompts tokenise alike (lower-casing), so the mean is that one prompt.
	testutil.AllClose(t, "dog", got[0], norm(row(1)), 1e-5, 0)
	if _, err := ClassEmbeddings(txt, tok, []string{"dog"}, []string{"no placeholder"}); err == nil {
		t.Error("a template without {} was accepted")
	}
}

// TestTextTowerBackward trains through the text tower's token lookup: the embedding
// rows of the tokens used, and only those, get gradients, so the lookup's indices are
// still valid when Backward runs after Forward has returned. Each row ends with the
// end-of-text token, where the tower pools, so the causal mask hides none of them.
func TestTextTowerBackward(t *testing.T) {
	txt := loadTextSmall(t)
	txt.Token.SetTrainable(true)
	eos := txt.Cfg.EOSID
	ids := [][]int{{1, 5, 7, eos}, {1, 9, 9, eos}}
	tp := autograd.NewTape(txt.backend)
	out, err := txt.Forward(tp, ids)
	if err != nil {
		t.Fatal(err)
	}
	tp.Backward(tp.Sum(tp.Square(out.Embeds), nil, false))
	w := txt.Cfg.Width
	g := make([]float32, txt.Token.Value.Size())
	txt.backend.Download(g, txt.Token.Grad)
	used := map[int]bool{1: true, 5: true, 7: true, 9: true, eos: true}
	for row := 0; row < txt.Cfg.Vocab; row++ {
		var norm float64
		for _, v := range g[row*w : (row+1)*w] {
			norm += float64(v) * float64(v)
		}
		if used[row] != (norm > 0) {
			t.Errorf("token %d: gradient norm² %g (used: %v)", row, norm, used[row])
		}
	}
	tp.Reset()
}

// TestActivationNames maps Hugging Face's hidden_act names to the backbone's ops and
// refuses GELU's approximations rather than serving them as the exact GELU, from which
// they differ by up to 5e-4 per activation.
func TestActivationNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		want core.UnaryOp
		ok   bool
	}{
		{"quick_gelu", core.QuickGELU, true},
		{"gelu", core.GELU, true},
		{"GELU", core.GELU, true},
		{"relu", core.ReLU, true},
		{"silu", core.SiLU, true},
		{"gelu_new", 0, false},
		{"gelu_pytorch_tanh", 0, false},
		{"gelu_fast", 0, false},
		{"tanh", 0, false},
	} {
		got, err := activation(tc.name)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("activation(%q) = %v, %v; want %v", tc.name, got, err, tc.want)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.name)) {
			t.Errorf("activation(%q) = %v, %v; want an error naming it", tc.name, got, err)
		}
	}
}
