package backbones

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// Naming is a checkpoint's key convention.
type Naming string

const (
	NamingKadapt Naming = "kadapt" // kadapt's own names, as written by checkpoints and exports
	NamingHFCLIP Naming = "hf-clip"
	NamingOpenAI Naming = "openai-clip"
	NamingTimm   Naming = "timm"
	NamingHFViT  Naming = "hf-vit"
)

// Block-module names within one transformer block, kadapt's on the left. Both CLIP
// towers use the same names in each convention.
var (
	hfCLIPBlock = map[string]string{"ln1": "layer_norm1", "ln2": "layer_norm2", "attn.out": "self_attn.out_proj",
		"attn.q": "self_attn.q_proj", "attn.k": "self_attn.k_proj", "attn.v": "self_attn.v_proj",
		"mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
	// OpenAI's fused in_proj holds q, k and v; they are split by rows instead.
	openAIBlock = map[string]string{"ln1": "ln_1", "ln2": "ln_2", "attn.out": "attn.out_proj", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
)

// source says where one kadapt parameter comes from in a checkpoint: a key, optionally
// a block of rows of a fused tensor (q, k, v of in_proj_weight / qkv.weight), optionally
// transposed (OpenAI's proj matrices are [in, out]).
type source struct {
	key       string
	rows      [2]int // [start, end) rows of a 2-D (or 1-D) tensor; zero = whole tensor
	transpose bool
}

// DetectNaming guesses a checkpoint's convention from its keys.
func DetectNaming(names []string) (Naming, string, error) {
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	switch {
	case has["embed.patch.weight"] || has["text.token"]:
		return NamingKadapt, "", nil
	case has["vision_model.embeddings.patch_embedding.weight"] || has["text_model.embeddings.token_embedding.weight"]:
		return NamingHFCLIP, "", nil
	case has["visual.conv1.weight"] || has["token_embedding.weight"]:
		return NamingOpenAI, "", nil
	case has["patch_embed.proj.weight"]:
		return NamingTimm, "", nil
	case has["embeddings.patch_embeddings.projection.weight"]:
		return NamingHFViT, "", nil
	case has["vit.embeddings.patch_embeddings.projection.weight"]:
		return NamingHFViT, "vit.", nil
	}
	return "", "", errors.New("unrecognised key names: not a kadapt, HF CLIP, OpenAI CLIP, timm or HF ViT checkpoint")
}

// visionSources maps each of the tower's parameters to its checkpoint key.
func (m *Vision) visionSources(naming Naming, prefix string, specs shapeList) (map[string]source, []string, error) {
	src := map[string]source{}
	w := m.Cfg.Width
	var ignore []string
	set := func(ours, key string) { src[ours] = source{key: prefix + key} }
	block := func(i int, f func(ours, key string), fused func(ours, key string, part int)) {
		b := fmt.Sprintf("blocks.%d.", i)
		for _, part := range []string{"weight", "bias"} {
			f(b+"ln1."+part, part)
			f(b+"ln2."+part, part)
			f(b+"attn.out."+part, part)
			f(b+"mlp.fc1."+part, part)
			f(b+"mlp.fc2."+part, part)
			for j, qkv := range []string{"q", "k", "v"} {
				fused(b+"attn."+qkv+"."+part, part, j)
			}
		}
	}
	switch naming {
	case NamingKadapt:
		for _, p := range specs {
			src[p.name] = source{key: p.name}
		}
		return src, nil, nil
	case NamingHFCLIP:
		set("embed.patch.weight", "vision_model.embeddings.patch_embedding.weight")
		set("embed.cls", "vision_model.embeddings.class_embedding")
		set("embed.pos", "vision_model.embeddings.position_embedding.weight")
		for _, part := range []string{"weight", "bias"} {
			set("ln_pre."+part, "vision_model.pre_layrnorm."+part)
			set("ln_post."+part, "vision_model.post_layernorm."+part)
		}
		set("proj", "visual_projection.weight")
		for i := range m.Blocks {
			b := fmt.Sprintf("blocks.%d.", i)
			for ours, theirs := range hfCLIPBlock {
				for _, part := range []string{"weight", "bias"} {
					set(b+ours+"."+part, fmt.Sprintf("vision_model.encoder.layers.%d.%s.%s", i, theirs, part))
				}
			}
		}
		ignore = []string{"vision_model.embeddings.position_ids", "text_model.", "text_projection.", "logit_scale"}
	case NamingOpenAI:
		set("embed.patch.weight", "visual.conv1.weight")
		set("embed.cls", "visual.class_embedding")
		set("embed.pos", "visual.positional_embedding")
		for _, part := range []string{"weight", "bias"} {
			set("ln_pre."+part, "visual.ln_pre."+part)
			set("ln_post."+part, "visual.ln_post."+part)
		}
		src["proj"] = source{key: "visual.proj", transpose: true}
		for i := range m.Blocks {
			pre := fmt.Sprintf("visual.transformer.resblocks.%d.", i)
			block(i, func(ours, part string) {
				for o, t := range openAIBlock {
					if strings.HasSuffix(ours, "."+o+"."+part) {
						set(ours, pre+t+"."+part)
					}
				}
			}, func(ours, part string, j int) {
				src[ours] = source{key: pre + "attn.in_proj_" + part, rows: [2]int{j * w, (j + 1) * w}}
			})
		}
		ignore = []string{"transformer.", "token_embedding.", "positional_embedding", "ln_final.", "text_projection", "logit_scale",
			"input_resolution", "context_length", "vocab_size"}
	case NamingTimm:
		set("embed.patch.weight", "patch_embed.proj.weight")
		set("embed.patch.bias", "patch_embed.proj.bias")
		set("embed.cls", "cls_token")
		set("embed.pos", "pos_embed")
		set("norm.weight", "norm.weight")
		set("norm.bias", "norm.bias")
		if m.Cfg.NumLabels > 0 {
			set("head.weight", "head.weight")
			set("head.bias", "head.bias")
		} else {
			ignore = append(ignore, "head.")
		}
		tm := map[string]string{"ln1": "norm1", "ln2": "norm2", "attn.out": "attn.proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
		for i := range m.Blocks {
			pre := fmt.Sprintf("blocks.%d.", i)
			block(i, func(ours, part string) {
				for o, t := range tm {
					if strings.HasSuffix(ours, "."+o+"."+part) {
						set(ours, pre+t+"."+part)
					}
				}
			}, func(ours, part string, j int) {
				src[ours] = source{key: prefix + pre + "attn.qkv." + part, rows: [2]int{j * w, (j + 1) * w}}
			})
		}
	case NamingHFViT:
		set("embed.patch.weight", "embeddings.patch_embeddings.projection.weight")
		set("embed.patch.bias", "embeddings.patch_embeddings.projection.bias")
		set("embed.cls", "embeddings.cls_token")
		set("embed.pos", "embeddings.position_embeddings")
		set("norm.weight", "layernorm.weight")
		set("norm.bias", "layernorm.bias")
		if m.Cfg.NumLabels > 0 {
			src["head.weight"] = source{key: "classifier.weight"}
			src["head.bias"] = source{key: "classifier.bias"}
		} else {
			ignore = append(ignore, "classifier.")
		}
		ignore = append(ignore, prefix+"pooler.")
		hv := map[string]string{"ln1": "layernorm_before", "ln2": "layernorm_after",
			"attn.q": "attention.attention.query", "attn.k": "attention.attention.key", "attn.v": "attention.attention.value",
			"attn.out": "attention.output.dense", "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
		for i := range m.Blocks {
			b := fmt.Sprintf("blocks.%d.", i)
			for ours, theirs := range hv {
				for _, part := range []string{"weight", "bias"} {
					set(b+ours+"."+part, fmt.Sprintf("encoder.layer.%d.%s.%s", i, theirs, part))
				}
			}
		}
	default:
		return nil, nil, fmt.Errorf("naming %q cannot describe a vision tower", naming)
	}
	return src, ignore, nil
}

// textSources maps the text tower's parameters to checkpoint keys.
func (t *Text) textSources(naming Naming, specs shapeList) (map[string]source, []string, error) {
	src := map[string]source{}
	w := t.Cfg.Width
	set := func(ours, key string) { src[ours] = source{key: key} }
	switch naming {
	case NamingKadapt:
		for _, p := range specs {
			src[p.name] = source{key: p.name}
		}
		return src, []string{"embed.", "blocks.", "ln_pre.", "ln_post.", "norm.", "proj", "head."}, nil
	case NamingHFCLIP:
		set("text.token", "text_model.embeddings.token_embedding.weight")
		set("text.pos", "text_model.embeddings.position_embedding.weight")
		set("text.ln_final.weight", "text_model.final_layer_norm.weight")
		set("text.ln_final.bias", "text_model.final_layer_norm.bias")
		if t.Cfg.EmbedDim > 0 {
			set("text.proj", "text_projection.weight")
		}
		for i := range t.Blocks {
			for ours, theirs := range hfCLIPBlock {
				for _, part := range []string{"weight", "bias"} {
					set(fmt.Sprintf("text.blocks.%d.%s.%s", i, ours, part), fmt.Sprintf("text_model.encoder.layers.%d.%s.%s", i, theirs, part))
				}
			}
		}
		return src, []string{"text_model.embeddings.position_ids", "vision_model.", "visual_projection.", "logit_scale"}, nil
	case NamingOpenAI:
		set("text.token", "token_embedding.weight")
		set("text.pos", "positional_embedding")
		set("text.ln_final.weight", "ln_final.weight")
		set("text.ln_final.bias", "ln_final.bias")
		if t.Cfg.EmbedDim > 0 {
			src["text.proj"] = source{key: "text_projection", transpose: true}
		}
		for i := range t.Blocks {
			pre := fmt.Sprintf("transformer.resblocks.%d.", i)
			for ours, theirs := range openAIBlock {
				for _, part := range []string{"weight", "bias"} {
					set(fmt.Sprintf("text.blocks.%d.%s.%s", i, ours, part), pre+theirs+"."+part)
				}
			}
			for j, qkv := range []string{"q", "k", "v"} {
				for _, part := range []string{"weight", "bias"} {
					src[fmt.Sprintf("text.blocks.%d.attn.%s.%s", i, qkv, part)] = source{key: pre + "attn.in_proj_" + part, rows: [2]int{j * w, (j + 1) * w}}
				}
			}
		}
		return src, []string{"visual.", "logit_scale", "input_resolution", "context_length", "vocab_size"}, nil
	}
	return nil, nil, fmt.Errorf("a %s checkpoint has no CLIP text tower", naming)
}

// ResolveWeightsPath accepts a .safetensors file or a model folder holding one of
// WeightsNames. Its errors say what a model folder must hold (FolderContents).
func ResolveWeightsPath(path string) (string, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("model %s: no such file or folder; --model takes a .safetensors file or a model folder: %s", path, FolderContents)
	}
	if err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	if !st.IsDir() {
		return path, checkNotPointer(path)
	}
	for _, name := range WeightsNames {
		p := filepath.Join(path, name)
		if _, err := os.Stat(p); err == nil {
			return p, checkNotPointer(p)
		}
	}
	return "", incompleteFolder(path)
}

// LoadOptions controls a weights load.
type LoadOptions struct {
	// Strict (the default through LoadVision) turns unexpected keys into errors;
	// missing keys and shape mismatches are always errors.
	Strict bool
}

// paramSpec is a parameter's name and shape: what matching a checkpoint needs.
type paramSpec struct {
	name  string
	shape []int
}

// shapeList is a paramSet that records shapes instead of allocating, so a tower
// can be checked against its configuration's bounds and a weights file first.
type shapeList []paramSpec

func (l *shapeList) param(name string, shape ...int) *autograd.Var {
	*l = append(*l, paramSpec{name: name, shape: shape})
	return nil
}

// count is the number of parameters, in int64 so that no declared size overflows.
func (l shapeList) count() int64 {
	var n int64
	for _, p := range l {
		k := int64(1)
		for _, d := range p.shape {
			k *= int64(d)
		}
		n += k
	}
	return n
}

func specsOf(params []*autograd.Var) shapeList {
	l := make(shapeList, len(params))
	for i, p := range params {
		l[i] = paramSpec{name: p.Name, shape: p.Shape()}
	}
	return l
}

// openNamed opens a checkpoint and detects its naming.
func openNamed(path string) (*safetensors.File, Naming, string, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, "", "", err
	}
	naming, prefix, err := DetectNaming(f.Names())
	if err != nil {
		f.Close()
		return nil, "", "", fmt.Errorf("%s: %v", path, err)
	}
	return f, naming, prefix, nil
}

// CheckVision matches cfg's tower against the tensors in a weights file — every
// size the configuration declares against the shapes the file holds — without
// allocating the tower. Open calls it before NewVision, so a configuration whose
// sizes the weights do not back is an error, not an allocation.
func CheckVision(cfg Config, path string, opt LoadOptions) error {
	cfg, err := cfg.resolved()
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	f, naming, prefix, err := openNamed(path)
	if err != nil {
		return err
	}
	defer f.Close()
	m := &Vision{Cfg: cfg}
	var specs shapeList
	m.build(&specs)
	src, ignore, err := m.visionSources(naming, prefix, specs)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	_, err = match(f, path, specs, src, visionIgnore(naming, ignore), opt)
	return err
}

// CheckText is CheckVision for the text tower.
func CheckText(cfg TextConfig, path string, opt LoadOptions) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	f, naming, _, err := openNamed(path)
	if err != nil {
		return err
	}
	defer f.Close()
	t := &Text{Cfg: cfg}
	var specs shapeList
	t.build(&specs)
	src, ignore, err := t.textSources(naming, specs)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	_, err = match(f, path, specs, src, ignore, opt)
	return err
}

func visionIgnore(naming Naming, ignore []string) []string {
	if naming == NamingKadapt {
		ignore = append(ignore, "text.", "head.", "adapt.", "optim.")
	}
	return ignore
}

// LoadVision reads the tower's weights from a safetensors file in any supported naming.
func LoadVision(m *Vision, path string, opt LoadOptions) error {
	f, naming, prefix, err := openNamed(path)
	if err != nil {
		return err
	}
	defer f.Close()
	src, ignore, err := m.visionSources(naming, prefix, specsOf(m.params))
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return load(f, path, m.params, src, visionIgnore(naming, ignore), opt)
}

// LoadText reads a CLIP text tower's weights.
func LoadText(t *Text, path string, opt LoadOptions) error {
	f, naming, _, err := openNamed(path)
	if err != nil {
		return err
	}
	defer f.Close()
	src, ignore, err := t.textSources(naming, specsOf(t.params))
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return load(f, path, t.params, src, ignore, opt)
}

// HasTextTower reports whether a checkpoint carries a CLIP text tower.
func HasTextTower(path string) (bool, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, n := range f.Names() {
		if strings.HasPrefix(n, "text_model.") || n == "token_embedding.weight" || n == "text.token" {
			return true, nil
		}
	}
	return false, nil
}

// load copies every parameter from its source after match has checked them all,
// and refuses values that are not finite.
func load(f *safetensors.File, path string, params []*autograd.Var, src map[string]source, ignore []string, opt LoadOptions) error {
	srcs, err := match(f, path, specsOf(params), src, ignore, opt)
	if err != nil {
		return err
	}
	for i, p := range params {
		s := srcs[i]
		if s.key == "" {
			continue
		}
		data, err := readSource(f, s)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		if j := core.FirstNonFinite(data); j >= 0 {
			return fmt.Errorf("%s: tensor %s: element %d is %v; a checkpoint with NaN or Inf weights makes every output NaN",
				path, s.key, j, data[j])
		}
		p.Value.Backend().Upload(p.Value, data)
	}
	return nil
}

// match finds every parameter's source in f, collecting every missing key,
// unexpected key and shape mismatch into one error naming the file. The result
// holds each spec's source, or a zero source for parameters this naming lacks.
func match(f *safetensors.File, path string, specs shapeList, src map[string]source, ignore []string, opt LoadOptions) ([]source, error) {
	var missing, mismatched []string
	used := map[string]bool{}
	out := make([]source, len(specs))
	for i, p := range specs {
		s, ok := src[p.name]
		if !ok {
			continue // not in this naming (e.g. a classifier the file has no need of)
		}
		info, ok := f.Info(s.key)
		if !ok {
			missing = append(missing, s.key)
			continue
		}
		used[s.key] = true
		want := core.Shape(p.shape).Size()
		got := info.NumElements()
		if s.rows != [2]int{} {
			if len(info.Shape) == 0 || info.Shape[0] < s.rows[1] {
				mismatched = append(mismatched, fmt.Sprintf("%s: shape %v has no rows %d:%d for %s", s.key, info.Shape, s.rows[0], s.rows[1], p.name))
				continue
			}
			got = got / info.Shape[0] * (s.rows[1] - s.rows[0])
		}
		if got != want || !shapeCompatible(info.Shape, p.shape, s) {
			mismatched = append(mismatched, fmt.Sprintf("%s: shape %v, want %v for %s", s.key, info.Shape, p.shape, p.name))
			continue
		}
		out[i] = s
	}
	var unexpected []string
	if opt.Strict {
	names:
		for _, n := range f.Names() {
			if used[n] {
				continue
			}
			for _, ig := range ignore {
				if n == ig || (strings.HasSuffix(ig, ".") && strings.HasPrefix(n, ig)) || strings.HasPrefix(n, ig) {
					continue names
				}
			}
			unexpected = append(unexpected, n)
		}
	}
	if len(missing)+len(mismatched)+len(unexpected) > 0 {
		sort.Strings(missing)
		sort.Strings(unexpected)
		var b strings.Builder
		fmt.Fprintf(&b, "%s: weights do not match the model", path)
		list := func(title string, items []string) {
			if len(items) == 0 {
				return
			}
			fmt.Fprintf(&b, "\n  %s (%d):", title, len(items))
			// A config with hundreds of layers too many misses thousands of keys;
			// the first ones say what is wrong.
			const shown = 20
			for _, it := range items[:min(len(items), shown)] {
				fmt.Fprintf(&b, "\n    %s", it)
			}
			if len(items) > shown {
				fmt.Fprintf(&b, "\n    … and %d more", len(items)-shown)
			}
		}
		list("missing keys", missing)
		list("shape mismatches", mismatched)
		list("unexpected keys", unexpected)
		return nil, errors.New(b.String())
	}
	return out, nil
}

// shapeCompatible allows the benign reshapes between conventions (timm's [1,1,W]
// class token and [1,L,W] positions) but not reinterpretations of a matrix.
func shapeCompatible(file []int, ours []int, s source) bool {
	if s.rows != [2]int{} || s.transpose {
		return len(file) == len(ours)
	}
	var a, b []int
	for _, d := range file {
		if d != 1 {
			a = append(a, d)
		}
	}
	for _, d := range ours {
		if d != 1 {
			b = append(b, d)
		}
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func readSource(f *safetensors.File, s source) ([]float32, error) {
	data, err := f.Float32s(s.key)
	if err != nil {
		return nil, err
	}
	info, _ := f.Info(s.key)
	if s.rows != [2]int{} {
		cols := core.Shape(info.Shape[1:]).Size()
		data = data[s.rows[0]*cols : s.rows[1]*cols]
	}
	if s.transpose {
		r, c := info.Shape[0], info.Shape[1]
		t := make([]float32, len(data))
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				t[j*r+i] = data[i*c+j]
			}
		}
		data = t
	}
	return data, nil
}

// SaveVision writes the tower in kadapt's naming, atomically. meta should carry
// "kadapt.config" (the Config as JSON) so the file loads without a config.json.
func SaveVision(m *Vision, path string, meta map[string]string) error {
	tensors := map[string]safetensors.Tensor{}
	for _, p := range m.params {
		d := make([]float32, p.Value.Size())
		p.Value.Backend().Download(d, p.Value)
		tensors[p.Name] = safetensors.Tensor{Shape: append([]int(nil), p.Shape()...), Data: d}
	}
	return safetensors.WriteFile(path, tensors, meta)
}
