package backbones

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/kadapt/kadapt/core"
)

// Family selects the weight naming and the small architectural differences between the
// ViT variants kadapt loads.
type Family string

const (
	CLIP  Family = "clip"   // OpenAI/HF CLIP image tower: no patch bias, ln_pre, post-LN on the class token, projection
	Timm  Family = "timm"   // timm VisionTransformer: patch bias, final norm over all tokens, token pooling
	HFViT Family = "hf-vit" // transformers ViTModel: timm's architecture with HF names
)

// Config describes a vision tower. The zero values of optional fields mean "absent".
type Config struct {
	Name      string       `json:"name"`
	Family    Family       `json:"family"`
	ImageSize int          `json:"image_size"`
	PatchSize int          `json:"patch_size"`
	Channels  int          `json:"channels"`
	Width     int          `json:"width"`
	Layers    int          `json:"layers"`
	Heads     int          `json:"heads"`
	MLPDim    int          `json:"mlp_dim"`
	EmbedDim  int          `json:"embed_dim"`   // visual projection output; 0 = no projection
	NumLabels int          `json:"num_classes"` // a classifier head in the checkpoint (timm/HF ViT); 0 = none
	Act       core.UnaryOp `json:"-"`
	ActName   string       `json:"act"`
	Eps       float32      `json:"eps"`
	Mean      [3]float32   `json:"mean"`
	Std       [3]float32   `json:"std"`
}

// Tokens is the sequence length: one class token plus the patches.
func (c Config) Tokens() int {
	g := c.ImageSize / c.PatchSize
	return g*g + 1
}

// Validate checks that the sizes fit together.
func (c Config) Validate() error {
	switch {
	case c.ImageSize <= 0 || c.PatchSize <= 0 || c.ImageSize%c.PatchSize != 0:
		return fmt.Errorf("backbone %q: image size %d is not a positive multiple of patch size %d", c.Name, c.ImageSize, c.PatchSize)
	case c.Width <= 0 || c.Heads <= 0 || c.Width%c.Heads != 0:
		return fmt.Errorf("backbone %q: width %d is not a positive multiple of heads %d", c.Name, c.Width, c.Heads)
	case c.Layers <= 0 || c.MLPDim <= 0 || c.Channels <= 0:
		return fmt.Errorf("backbone %q: layers, mlp_dim and channels must be positive", c.Name)
	}
	if _, err := activation(c.ActName); err != nil {
		return fmt.Errorf("backbone %q: %v", c.Name, err)
	}
	return nil
}

func activation(name string) (core.UnaryOp, error) {
	switch strings.ToLower(name) {
	case "quick_gelu", "quickgelu":
		return core.QuickGELU, nil
	case "gelu", "gelu_new", "gelu_pytorch_tanh_exact":
		return core.GELU, nil
	case "relu":
		return core.ReLU, nil
	case "silu", "swish":
		return core.SiLU, nil
	}
	return 0, fmt.Errorf("unsupported activation %q", name)
}

// CLIP's image statistics (OpenAI), also ELEVATER's.
var (
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
	// ImageNetInceptionMean is timm's default for the original ViT weights (mean = std = 0.5).
	ImageNetInceptionMean = [3]float32{0.5, 0.5, 0.5}
)

func clipVision(name string, patch, width, layers, heads, embed, image int) Config {
	return Config{Name: name, Family: CLIP, ImageSize: image, PatchSize: patch, Channels: 3,
		Width: width, Layers: layers, Heads: heads, MLPDim: 4 * width, EmbedDim: embed,
		ActName: "quick_gelu", Eps: 1e-5, Mean: CLIPMean, Std: CLIPStd}
}

// Presets are the architectures kadapt knows by name.
var Presets = map[string]Config{
	"clip-vit-b32": clipVision("clip-vit-b32", 32, 768, 12, 12, 512, 224),
	"clip-vit-b16": clipVision("clip-vit-b16", 16, 768, 12, 12, 512, 224),
	"clip-vit-l14": clipVision("clip-vit-l14", 14, 1024, 24, 16, 768, 224),
	"vit-b16": {Name: "vit-b16", Family: Timm, ImageSize: 224, PatchSize: 16, Channels: 3, Width: 768,
		Layers: 12, Heads: 12, MLPDim: 3072, ActName: "gelu", Eps: 1e-6,
		Mean: ImageNetInceptionMean, Std: ImageNetInceptionMean},
}

// Preset returns a named architecture with its activation resolved.
func Preset(name string) (Config, error) {
	c, ok := Presets[name]
	if !ok {
		var names []string
		for n := range Presets {
			names = append(names, n)
		}
		sort.Strings(names)
		return Config{}, fmt.Errorf("unknown backbone %q (presets: %s; or pass a config.json)", name, strings.Join(names, ", "))
	}
	return c.resolved()
}

func (c Config) resolved() (Config, error) {
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	c.Act, _ = activation(c.ActName)
	return c, nil
}

// TextConfig describes CLIP's text tower.
type TextConfig struct {
	Vocab    int
	Context  int
	Width    int
	Layers   int
	Heads    int
	MLPDim   int
	EmbedDim int
	Act      core.UnaryOp
	Eps      float32
	// EOSID is the end-of-text token id used for pooling. HF's legacy configs
	// (eos_token_id == 2) pool at the highest id instead; PoolArgmax marks that.
	EOSID      int
	PoolArgmax bool
}

// ReadHFConfig reads a Hugging Face config.json: a CLIPModel (vision_config +
// text_config), a CLIPVisionModel(WithProjection), a CLIPTextModel(WithProjection), a
// ViTModel/ViTForImageClassification, or kadapt's own JSON form of Config. The text
// config is nil when the file describes no text tower.
func ReadHFConfig(path string) (Config, *TextConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return Config{}, nil, fmt.Errorf("%s: %v", path, err)
	}
	r := jsonReader{file: path}
	var vc Config
	var tc *TextConfig
	mt, _ := m["model_type"].(string)
	switch {
	case m["family"] != nil:
		if err := json.Unmarshal(raw, &vc); err != nil {
			return Config{}, nil, fmt.Errorf("%s: %v", path, err)
		}
	case mt == "clip":
		vsub, _ := m["vision_config"].(map[string]any)
		tsub, _ := m["text_config"].(map[string]any)
		if vsub == nil || tsub == nil {
			return Config{}, nil, fmt.Errorf("%s: a clip config needs vision_config and text_config", path)
		}
		proj := r.int(m, "projection_dim", 512)
		vc = r.clipVision(vsub, proj)
		t := r.clipText(tsub, proj)
		tc = &t
	case mt == "clip_vision_model":
		vc = r.clipVision(m, r.int(m, "projection_dim", 0))
	case mt == "clip_text_model":
		t := r.clipText(m, r.int(m, "projection_dim", 0))
		tc = &t
	case mt == "vit":
		vc = Config{Name: "hf-vit", Family: HFViT, ImageSize: r.int(m, "image_size", 224),
			PatchSize: r.int(m, "patch_size", 16), Channels: r.int(m, "num_channels", 3),
			Width: r.int(m, "hidden_size", 768), Layers: r.int(m, "num_hidden_layers", 12),
			Heads: r.int(m, "num_attention_heads", 12), MLPDim: r.int(m, "intermediate_size", 3072),
			ActName: r.str(m, "hidden_act", "gelu"), Eps: float32(r.float(m, "layer_norm_eps", 1e-12)),
			Mean: ImageNetInceptionMean, Std: ImageNetInceptionMean}
		if labels, ok := m["id2label"].(map[string]any); ok && hasClassifier(m) {
			vc.NumLabels = len(labels)
		}
	case m["embed_dim"] != nil && m["depth"] != nil: // timm's pretrained_cfg-style dump
		vc = Config{Name: "timm-vit", Family: Timm, ImageSize: r.int(m, "img_size", 224),
			PatchSize: r.int(m, "patch_size", 16), Channels: r.int(m, "in_chans", 3),
			Width: r.int(m, "embed_dim", 768), Layers: r.int(m, "depth", 12), Heads: r.int(m, "num_heads", 12),
			ActName: r.str(m, "act", "gelu"), Eps: float32(r.float(m, "norm_eps", 1e-6)),
			NumLabels: r.int(m, "num_classes", 0), Mean: ImageNetInceptionMean, Std: ImageNetInceptionMean}
		vc.MLPDim = int(float64(vc.Width) * r.float(m, "mlp_ratio", 4))
	default:
		return Config{}, nil, fmt.Errorf("%s: unrecognised config (model_type %q): expected a CLIP, CLIP vision/text, ViT or timm config", path, mt)
	}
	if r.err != nil {
		return Config{}, nil, r.err
	}
	if vc.Width == 0 { // text-only config
		return Config{}, tc, nil
	}
	vc, err = vc.resolved()
	if err != nil {
		return Config{}, nil, fmt.Errorf("%s: %v", path, err)
	}
	return vc, tc, nil
}

func hasClassifier(m map[string]any) bool {
	archs, _ := m["architectures"].([]any)
	for _, a := range archs {
		if s, _ := a.(string); strings.HasSuffix(s, "ForImageClassification") {
			return true
		}
	}
	return false
}

// jsonReader reads typed fields and remembers the first type error, naming the key.
type jsonReader struct {
	file string
	err  error
}

func (r *jsonReader) float(m map[string]any, key string, def float64) float64 {
	v, ok := m[key]
	if !ok || v == nil {
		return def
	}
	f, ok := v.(float64)
	if !ok && r.err == nil {
		r.err = fmt.Errorf("%s: key %q: want a number, got %T", r.file, key, v)
	}
	return f
}

func (r *jsonReader) int(m map[string]any, key string, def int) int {
	f := r.float(m, key, float64(def))
	if f != float64(int(f)) && r.err == nil {
		r.err = fmt.Errorf("%s: key %q: want an integer, got %v", r.file, key, f)
	}
	return int(f)
}

func (r *jsonReader) str(m map[string]any, key, def string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return def
	}
	s, ok := v.(string)
	if !ok && r.err == nil {
		r.err = fmt.Errorf("%s: key %q: want a string, got %T", r.file, key, v)
	}
	return s
}

func (r *jsonReader) clipVision(m map[string]any, proj int) Config {
	c := clipVision("clip-vision", r.int(m, "patch_size", 32), r.int(m, "hidden_size", 768),
		r.int(m, "num_hidden_layers", 12), r.int(m, "num_attention_heads", 12), proj, r.int(m, "image_size", 224))
	c.Channels = r.int(m, "num_channels", 3)
	c.MLPDim = r.int(m, "intermediate_size", 4*c.Width)
	c.ActName = r.str(m, "hidden_act", "quick_gelu")
	c.Eps = float32(r.float(m, "layer_norm_eps", 1e-5))
	return c
}

func (r *jsonReader) clipText(m map[string]any, proj int) TextConfig {
	act, err := activation(r.str(m, "hidden_act", "quick_gelu"))
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%s: text_config: %v", r.file, err)
	}
	eos := r.int(m, "eos_token_id", 49407)
	return TextConfig{Vocab: r.int(m, "vocab_size", 49408), Context: r.int(m, "max_position_embeddings", 77),
		Width: r.int(m, "hidden_size", 512), Layers: r.int(m, "num_hidden_layers", 12),
		Heads: r.int(m, "num_attention_heads", 8), MLPDim: r.int(m, "intermediate_size", 2048),
		EmbedDim: proj, Act: act, Eps: float32(r.float(m, "layer_norm_eps", 1e-5)),
		EOSID: eos, PoolArgmax: eos == 2}
}

// CLIPTextB is the text tower of every OpenAI CLIP ViT-B model.
var CLIPTextB = TextConfig{Vocab: 49408, Context: 77, Width: 512, Layers: 12, Heads: 8, MLPDim: 2048,
	EmbedDim: 512, Act: core.QuickGELU, Eps: 1e-5, EOSID: 49407, PoolArgmax: true}
