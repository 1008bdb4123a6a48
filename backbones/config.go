package backbones

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/kadapt/kadapt/backbones/preprocess"
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

// Bounds on the sizes a configuration may declare. Configurations arrive with
// downloaded models, and every size becomes an allocation (one hidden_size of 10⁹
// is gigabytes per matrix), so sizes are checked before anything is built: against
// these bounds here, and against the weights file's tensor shapes by CheckVision and
// CheckText. The bounds are far above any published ViT or CLIP (ViT-22B: width
// 6144, MLP 24576, 48 layers).
const (
	maxWidth    = 1 << 14 // hidden size, projection size
	maxMLPDim   = 1 << 16
	maxLayers   = 1 << 10
	maxTokens   = 1 << 14 // patches + 1, and the text context
	maxImage    = 1 << 13 // pixels per side
	maxChannels = 64
	maxVocab    = 1 << 22
	maxLabels   = 1 << 20
	// MaxParams bounds one tower's parameter count (16 GiB as float32).
	MaxParams = 1 << 32
)

// checkSize reports a size outside [lo, hi], naming it.
func checkSize(name string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s %d is outside [%d, %d]", name, v, lo, hi)
	}
	return nil
}

// checkEps reports a layer-norm epsilon that is not a small positive number: 0 or
// less divides by zero on constant rows and turns embeddings into NaN.
func checkEps(eps float32) error {
	if !(eps > 0 && eps < 1) {
		return fmt.Errorf("layer-norm epsilon %g is not in (0, 1)", eps)
	}
	return nil
}

// Validate checks that the sizes fit together and lie within kadapt's bounds,
// without allocating anything.
func (c Config) Validate() error {
	err := errors.Join(
		checkSize("image size", c.ImageSize, 1, maxImage),
		checkSize("patch size", c.PatchSize, 1, max(c.ImageSize, 1)),
		checkSize("width", c.Width, 1, maxWidth),
		checkSize("heads", c.Heads, 1, max(c.Width, 1)),
		checkSize("layers", c.Layers, 1, maxLayers),
		checkSize("mlp_dim", c.MLPDim, 1, maxMLPDim),
		checkSize("channels", c.Channels, 1, maxChannels),
		checkSize("embed_dim", c.EmbedDim, 0, maxWidth),
		checkSize("num_classes", c.NumLabels, 0, maxLabels),
	)
	switch {
	case err != nil:
	case c.ImageSize%c.PatchSize != 0:
		err = fmt.Errorf("image size %d is not a multiple of patch size %d", c.ImageSize, c.PatchSize)
	case c.Width%c.Heads != 0:
		err = fmt.Errorf("width %d is not a multiple of heads %d", c.Width, c.Heads)
	case c.Tokens() > maxTokens:
		err = fmt.Errorf("image size %d with patch size %d makes %d tokens, more than %d", c.ImageSize, c.PatchSize, c.Tokens(), maxTokens)
	default:
		err = checkEps(c.Eps)
	}
	if err == nil {
		_, err = activation(c.ActName)
	}
	if err == nil {
		v := &Vision{Cfg: c}
		var shapes shapeList
		v.build(&shapes)
		if n := shapes.count(); n > MaxParams {
			err = fmt.Errorf("%d parameters, more than %d", n, int64(MaxParams))
		}
	}
	if err != nil {
		return fmt.Errorf("backbone %q: %w", c.Name, err)
	}
	return nil
}

// Validate checks the text tower's sizes as Config.Validate does the image tower's.
func (c TextConfig) Validate() error {
	err := errors.Join(
		checkSize("vocab size", c.Vocab, 1, maxVocab),
		checkSize("context length", c.Context, 1, maxTokens),
		checkSize("width", c.Width, 1, maxWidth),
		checkSize("heads", c.Heads, 1, max(c.Width, 1)),
		checkSize("layers", c.Layers, 0, maxLayers),
		checkSize("mlp_dim", c.MLPDim, 1, maxMLPDim),
		checkSize("embed_dim", c.EmbedDim, 0, maxWidth),
		checkSize("end-of-text id", c.EOSID, 0, max(c.Vocab-1, 0)),
	)
	switch {
	case err != nil:
	case c.Width%c.Heads != 0:
		err = fmt.Errorf("width %d is not a multiple of heads %d", c.Width, c.Heads)
	default:
		err = checkEps(c.Eps)
	}
	if err == nil {
		var shapes shapeList
		(&Text{Cfg: c}).build(&shapes)
		if n := shapes.count(); n > MaxParams {
			err = fmt.Errorf("%d parameters, more than %d", n, int64(MaxParams))
		}
	}
	if err != nil {
		return fmt.Errorf("text tower: %w", err)
	}
	return nil
}

func activation(name string) (core.UnaryOp, error) {
	switch strings.ToLower(name) {
	case "quick_gelu", "quickgelu":
		return core.QuickGELU, nil
	case "gelu", "gelu_python":
		return core.GELU, nil
	case "relu":
		return core.ReLU, nil
	case "silu", "swish":
		return core.SiLU, nil
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_accurate":
		// Approximations of GELU that differ from the exact one by up to 5e-4 per
		// activation: serving them as exact GELU would quietly change the model.
		return 0, fmt.Errorf("activation %q approximates GELU, which kadapt does not implement (it has gelu, quick_gelu, relu and silu)", name)
	}
	return 0, fmt.Errorf("unsupported activation %q (kadapt has gelu, quick_gelu, relu and silu)", name)
}

// CLIPLayerNormEps is the eps of every LayerNorm in CLIP's towers (OpenAI's code and
// HF's layer_norm_eps default alike).
const CLIPLayerNormEps = 1e-5

// CLIP's image statistics are preprocess.CLIPMean and preprocess.CLIPStd.
var (
	// ImageNetInceptionMean is timm's default for the original ViT weights (mean = std = 0.5).
	ImageNetInceptionMean = [3]float32{0.5, 0.5, 0.5}
)

func clipVision(name string, patch, width, layers, heads, embed, image int) Config {
	return Config{Name: name, Family: CLIP, ImageSize: image, PatchSize: patch, Channels: 3,
		Width: width, Layers: layers, Heads: heads, MLPDim: 4 * width, EmbedDim: embed,
		ActName: "quick_gelu", Eps: CLIPLayerNormEps, Mean: preprocess.CLIPMean, Std: preprocess.CLIPStd}
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
		proj := r.size(m, "projection_dim", 512, 0, maxWidth)
		r.section = "vision_config."
		vc = r.clipVision(vsub, proj)
		r.section = "text_config."
		t := r.clipText(tsub, proj)
		r.section = ""
		tc = &t
	case mt == "clip_vision_model":
		vc = r.clipVision(m, r.size(m, "projection_dim", 0, 0, maxWidth))
	case mt == "clip_text_model":
		t := r.clipText(m, r.size(m, "projection_dim", 0, 0, maxWidth))
		tc = &t
	case mt == "vit":
		vc = Config{Name: "hf-vit", Family: HFViT, ImageSize: r.size(m, "image_size", 224, 1, maxImage),
			PatchSize: r.size(m, "patch_size", 16, 1, maxImage), Channels: r.size(m, "num_channels", 3, 1, maxChannels),
			Width: r.size(m, "hidden_size", 768, 1, maxWidth), Layers: r.size(m, "num_hidden_layers", 12, 1, maxLayers),
			Heads: r.size(m, "num_attention_heads", 12, 1, maxWidth), MLPDim: r.size(m, "intermediate_size", 3072, 1, maxMLPDim),
			ActName: r.str(m, "hidden_act", "gelu"), Eps: r.eps(m, "layer_norm_eps", 1e-12),
			Mean: ImageNetInceptionMean, Std: ImageNetInceptionMean}
		if labels, ok := m["id2label"].(map[string]any); ok && hasClassifier(m) {
			vc.NumLabels = len(labels)
		}
	case m["embed_dim"] != nil && m["depth"] != nil: // timm's pretrained_cfg-style dump
		vc = Config{Name: "timm-vit", Family: Timm, ImageSize: r.size(m, "img_size", 224, 1, maxImage),
			PatchSize: r.size(m, "patch_size", 16, 1, maxImage), Channels: r.size(m, "in_chans", 3, 1, maxChannels),
			Width: r.size(m, "embed_dim", 768, 1, maxWidth), Layers: r.size(m, "depth", 12, 1, maxLayers), Heads: r.size(m, "num_heads", 12, 1, maxWidth),
			ActName: r.str(m, "act", "gelu"), Eps: r.eps(m, "norm_eps", 1e-6),
			NumLabels: r.size(m, "num_classes", 0, 0, maxLabels), Mean: ImageNetInceptionMean, Std: ImageNetInceptionMean}
		ratio := r.float(m, "mlp_ratio", 4)
		if !(ratio > 0 && ratio*float64(vc.Width) <= maxMLPDim) && r.err == nil {
			r.err = fmt.Errorf("%s: key \"mlp_ratio\": %g times embed_dim %d is not in [1, %d]", path, ratio, vc.Width, maxMLPDim)
		}
		vc.MLPDim = int(float64(vc.Width) * ratio)
	default:
		return Config{}, nil, fmt.Errorf("%s: unrecognised config (model_type %q): expected a CLIP, CLIP vision/text, ViT or timm config", path, mt)
	}
	if r.err != nil {
		return Config{}, nil, r.err
	}
	if tc != nil {
		if err := tc.Validate(); err != nil {
			return Config{}, nil, fmt.Errorf("%s: %v", path, err)
		}
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
	file    string
	section string // "vision_config." inside a nested config, for messages
	err     error
}

func (r *jsonReader) float(m map[string]any, key string, def float64) float64 {
	v, ok := m[key]
	if !ok || v == nil {
		return def
	}
	f, ok := v.(float64)
	if !ok && r.err == nil {
		r.err = fmt.Errorf("%s: key %q: want a number, got %T", r.file, r.section+key, v)
	}
	return f
}

func (r *jsonReader) int(m map[string]any, key string, def int) int {
	f := r.float(m, key, float64(def))
	if f != float64(int(f)) && r.err == nil {
		r.err = fmt.Errorf("%s: key %q: want an integer, got %v", r.file, r.section+key, f)
	}
	return int(f)
}

// size reads an integer size that must lie in [lo, hi]; the error names the key,
// the way the user will find it in the file.
func (r *jsonReader) size(m map[string]any, key string, def, lo, hi int) int {
	v := r.int(m, key, def)
	if err := checkSize(fmt.Sprintf("key %q:", r.section+key), v, lo, hi); err != nil && r.err == nil {
		r.err = fmt.Errorf("%s: %w", r.file, err)
	}
	return v
}

// eps reads a layer-norm epsilon, which must be a small positive number.
func (r *jsonReader) eps(m map[string]any, key string, def float64) float32 {
	v := r.float(m, key, def)
	if err := checkEps(float32(v)); err != nil && r.err == nil {
		r.err = fmt.Errorf("%s: key %q: %w", r.file, r.section+key, err)
	}
	return float32(v)
}

func (r *jsonReader) str(m map[string]any, key, def string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return def
	}
	s, ok := v.(string)
	if !ok && r.err == nil {
		r.err = fmt.Errorf("%s: key %q: want a string, got %T", r.file, r.section+key, v)
	}
	return s
}

func (r *jsonReader) clipVision(m map[string]any, proj int) Config {
	c := clipVision("clip-vision", r.size(m, "patch_size", 32, 1, maxImage), r.size(m, "hidden_size", 768, 1, maxWidth),
		r.size(m, "num_hidden_layers", 12, 1, maxLayers), r.size(m, "num_attention_heads", 12, 1, maxWidth), proj, r.size(m, "image_size", 224, 1, maxImage))
	c.Channels = r.size(m, "num_channels", 3, 1, maxChannels)
	c.MLPDim = r.size(m, "intermediate_size", 4*c.Width, 1, maxMLPDim)
	c.ActName = r.str(m, "hidden_act", "quick_gelu")
	c.Eps = r.eps(m, "layer_norm_eps", CLIPLayerNormEps)
	return c
}

func (r *jsonReader) clipText(m map[string]any, proj int) TextConfig {
	act, err := activation(r.str(m, "hidden_act", "quick_gelu"))
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%s: key %q: %v", r.file, r.section+"hidden_act", err)
	}
	eos := r.size(m, "eos_token_id", 49407, 0, maxVocab)
	return TextConfig{Vocab: r.size(m, "vocab_size", 49408, 1, maxVocab), Context: r.size(m, "max_position_embeddings", 77, 1, maxTokens),
		Width: r.size(m, "hidden_size", 512, 1, maxWidth), Layers: r.size(m, "num_hidden_layers", 12, 1, maxLayers),
		Heads: r.size(m, "num_attention_heads", 8, 1, maxWidth), MLPDim: r.size(m, "intermediate_size", 2048, 1, maxMLPDim),
		EmbedDim: proj, Act: act, Eps: r.eps(m, "layer_norm_eps", CLIPLayerNormEps),
		EOSID: eos, PoolArgmax: eos == 2}
}

// CLIPTextB is the text tower of every OpenAI CLIP ViT-B model.
var CLIPTextB = TextConfig{Vocab: 49408, Context: 77, Width: 512, Layers: 12, Heads: 8, MLPDim: 2048,
	EmbedDim: 512, Act: core.QuickGELU, Eps: CLIPLayerNormEps, EOSID: 49407, PoolArgmax: true}
