// Package peft reads and writes LoRA adapters in the format Hugging Face peft's
// save_pretrained writes (adapter_config.json + adapter_model.safetensors), for CLIP
// vision towers: any rank, alpha, rsLoRA scaling and rank/alpha patterns over the
// q, k, v, out, fc1 and fc2 projections.
package peft

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/host/atomicfile"
)

// Config is the part of adapter_config.json kadapt reads and writes.
type Config struct {
	PeftType      string             `json:"peft_type"`
	R             int                `json:"r"`
	LoraAlpha     float64            `json:"lora_alpha"`
	TargetModules any                `json:"target_modules"` // a list of names or one regex string
	RankPattern   map[string]int     `json:"rank_pattern"`
	AlphaPattern  map[string]float64 `json:"alpha_pattern"`
	UseRSLoRA     bool               `json:"use_rslora"`
	UseDoRA       bool               `json:"use_dora"`
	FanInFanOut   bool               `json:"fan_in_fan_out"`
	Bias          string             `json:"bias"`
}

// hfModule maps kadapt's site names (within a block) to CLIP's module names.
var hfModule = map[string]string{"attn.q": "self_attn.q_proj", "attn.k": "self_attn.k_proj", "attn.v": "self_attn.v_proj",
	"attn.out": "self_attn.out_proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}

// Pair is one adapted module: ΔW = Scale·B·A.
type Pair struct {
	Module string    // the HF module name, e.g. vision_model.encoder.layers.3.self_attn.q_proj
	Site   string    // kadapt's site, e.g. blocks.3.attn.q
	A, B   []float32 // A [r, in], B [out, r]
	R      int
	Scale  float64
}

// Adapter is a loaded peft LoRA adapter.
type Adapter struct {
	Dir    string
	Config Config
	Pairs  []Pair
}

var keyRE = regexp.MustCompile(`^(?:base_model\.model\.)?(vision_model\.encoder\.layers\.(\d+)\.(self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12]))\.lora_([AB])(?:\.default)?\.weight$`)

// Load reads an adapter folder. Errors name the file and the key at fault.
func Load(dir string) (*Adapter, error) {
	cfgPath := filepath.Join(dir, "adapter_config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	a := &Adapter{Dir: dir}
	if err := json.Unmarshal(raw, &a.Config); err != nil {
		return nil, fmt.Errorf("peft: %s: %v", cfgPath, err)
	}
	c := a.Config
	switch {
	case c.PeftType != "LORA":
		return nil, fmt.Errorf("peft: %s: peft_type %q: only LORA adapters are supported", cfgPath, c.PeftType)
	case c.UseDoRA:
		return nil, fmt.Errorf("peft: %s: use_dora is true: DoRA adapters are not supported", cfgPath)
	case c.FanInFanOut:
		return nil, fmt.Errorf("peft: %s: fan_in_fan_out is true: CLIP's linears are not Conv1D; this adapter is not for a CLIP tower", cfgPath)
	case c.Bias != "" && c.Bias != "none":
		return nil, fmt.Errorf("peft: %s: bias %q: adapters that train biases are not supported", cfgPath, c.Bias)
	case c.R <= 0:
		return nil, fmt.Errorf("peft: %s: r = %d", cfgPath, c.R)
	}
	wPath := filepath.Join(dir, "adapter_model.safetensors")
	f, err := safetensors.Open(wPath)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	defer f.Close()
	type half struct {
		a, b  []float32
		shape [2][]int
		layer int
		mod   string
	}
	mods := map[string]*half{}
	for _, key := range f.Names() {
		if strings.Contains(key, "text_model.") {
			continue // a text-tower adapter has no bearing on the image tower
		}
		m := keyRE.FindStringSubmatch(key)
		if m == nil {
			return nil, fmt.Errorf("peft: %s: key %q is not a LoRA A/B weight of a CLIP vision projection", wPath, key)
		}
		d, err := f.Float32s(key)
		if err != nil {
			return nil, fmt.Errorf("peft: %w", err)
		}
		info, _ := f.Info(key)
		h := mods[m[1]]
		if h == nil {
			layer, _ := strconv.Atoi(m[2])
			h = &half{layer: layer, mod: m[3]}
			mods[m[1]] = h
		}
		if len(info.Shape) != 2 {
			return nil, fmt.Errorf("peft: %s: key %q has shape %v, want a matrix", wPath, key, info.Shape)
		}
		if m[4] == "A" {
			h.a, h.shape[0] = d, info.Shape
		} else {
			h.b, h.shape[1] = d, info.Shape
		}
	}
	names := make([]string, 0, len(mods))
	for n := range mods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, module := range names {
		h := mods[module]
		if h.a == nil || h.b == nil {
			return nil, fmt.Errorf("peft: %s: module %s has only one of lora_A and lora_B", wPath, module)
		}
		r := h.shape[0][0]
		if h.shape[1][1] != r {
			return nil, fmt.Errorf("peft: %s: module %s: lora_A %v and lora_B %v disagree on the rank", wPath, module, h.shape[0], h.shape[1])
		}
		alpha := c.LoraAlpha
		for pat, v := range c.AlphaPattern {
			if patternMatches(pat, module) {
				alpha = v
			}
		}
		for pat, v := range c.RankPattern {
			if patternMatches(pat, module) && v != r {
				return nil, fmt.Errorf("peft: %s: rank_pattern gives %s rank %d, its weights have rank %d", cfgPath, module, v, r)
			}
		}
		scale := alpha / float64(r)
		if c.UseRSLoRA {
			scale = alpha / math.Sqrt(float64(r))
		}
		site := ""
		for s, hf := range hfModule {
			if hf == h.mod {
				site = fmt.Sprintf("blocks.%d.%s", h.layer, s)
			}
		}
		a.Pairs = append(a.Pairs, Pair{Module: module, Site: site, A: h.a, B: h.b, R: r, Scale: scale})
	}
	if len(a.Pairs) == 0 {
		return nil, fmt.Errorf("peft: %s has no LoRA weights for a CLIP vision tower", wPath)
	}
	return a, nil
}

// patternMatches applies peft's rank/alpha pattern rule: the pattern matches the end
// of the module name at a dot boundary, or as a regex against the whole name.
func patternMatches(pattern, module string) bool {
	if module == pattern || strings.HasSuffix(module, "."+pattern) {
		return true
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	return err == nil && re.MatchString(module)
}

// Apply merges every pair into the tower's weights: W += scale·B·A.
func (a *Adapter) Apply(v *backbones.Vision) error {
	linears := map[string]*backbones.Linear{}
	for _, l := range v.Linears() {
		linears[l.Site] = l
	}
	for _, p := range a.Pairs {
		l := linears[p.Site]
		if l == nil {
			return fmt.Errorf("peft: %s: module %s: the backbone has no %s", a.Dir, p.Module, p.Site)
		}
		out, in := l.Out(), l.In()
		if len(p.A) != p.R*in || len(p.B) != out*p.R {
			return fmt.Errorf("peft: %s: module %s: lora_A %d values and lora_B %d values do not fit a %d×%d linear at rank %d",
				a.Dir, p.Module, len(p.A), len(p.B), out, in, p.R)
		}
		w := make([]float32, out*in)
		b := l.W.Value.Backend()
		b.Download(w, l.W.Value)
		for i := 0; i < out; i++ {
			for j := 0; j < in; j++ {
				var s float64
				for k := 0; k < p.R; k++ {
					s += float64(p.B[i*p.R+k]) * float64(p.A[k*in+j])
				}
				w[i*in+j] += float32(p.Scale * s)
			}
		}
		b.Upload(l.W.Value, w)
	}
	return nil
}

// Export writes LoRA parameters named as methods/lora names them once compiled
// (adapt.blocks.<i>.<target>.lora_A / lora_B) as a peft adapter folder.
func Export(dir string, params []*autograd.Var, r int, alpha float64, targets []string, baseModelClass string) error {
	tensors := map[string]safetensors.Tensor{}
	re := regexp.MustCompile(`^adapt\.blocks\.(\d+)\.(q|k|v|out|fc1|fc2)\.lora_([AB])$`)
	for _, p := range params {
		m := re.FindStringSubmatch(p.Name)
		if m == nil {
			continue
		}
		site := map[string]string{"q": "attn.q", "k": "attn.k", "v": "attn.v", "out": "attn.out", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}[m[2]]
		key := fmt.Sprintf("base_model.model.vision_model.encoder.layers.%s.%s.lora_%s.weight", m[1], hfModule[site], m[3])
		d := make([]float32, p.Value.Size())
		p.Value.Backend().Download(d, p.Value)
		tensors[key] = safetensors.Tensor{Shape: append([]int(nil), p.Shape()...), Data: d}
	}
	if len(tensors) == 0 {
		return fmt.Errorf("peft: no LoRA parameters to export")
	}
	var modules []string
	for _, t := range targets {
		site := map[string]string{"q": "attn.q", "k": "attn.k", "v": "attn.v", "out": "attn.out", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}[t]
		mod := hfModule[site]
		modules = append(modules, mod[strings.LastIndexByte(mod, '.')+1:])
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	cfg := map[string]any{
		"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": modules, "bias": "none",
		"fan_in_fan_out": false, "inference_mode": true, "use_rslora": false, "use_dora": false,
		"rank_pattern": map[string]any{}, "alpha_pattern": map[string]any{}, "lora_dropout": 0.0,
		"init_lora_weights": true, "task_type": nil, "base_model_name_or_path": nil, "modules_to_save": nil,
		"auto_mapping": map[string]any{"base_model_class": baseModelClass, "parent_library": "transformers.models.clip.modeling_clip"},
	}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "adapter_config.json"), append(raw, '\n'))
}
