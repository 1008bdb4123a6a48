// Package peft reads and writes LoRA adapters in the folder format Hugging Face
// peft's save_pretrained writes (adapter_config.json + adapter_model.safetensors)
// for CLIP image towers, and merges them into a kadapt tower.
//
// Loading follows peft's own rules so that an adapter means here what it means
// there: target_modules as a list (a module's full name or a dot-separated suffix
// of it) or a regular expression matched against the whole name, exclude_modules,
// layers_to_transform, rank_pattern and alpha_pattern (the first key, in file order,
// that matches the end of a module's name), and rsLoRA's α/√r scaling. Anything that
// would make the adapter compute something else — DoRA, trained biases, Conv1D
// layouts, weights for modules kadapt's tower lacks — is refused with an error that
// names the file and the key, rather than silently dropped.
package peft

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
)

// The two files of an adapter folder.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// Targets lists kadapt's LoRA targets (methods/lora) in block order.
var Targets = []string{"q", "k", "v", "out", "fc1", "fc2"}

// hfModule maps a kadapt target to CLIP's module path inside an encoder layer.
var hfModule = map[string]string{
	"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
	"out": "self_attn.out_proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2",
}

// sitePath maps a kadapt target to its site inside a kadapt block.
var sitePath = map[string]string{
	"q": "attn.q", "k": "attn.k", "v": "attn.v", "out": "attn.out", "fc1": "mlp.fc1", "fc2": "mlp.fc2",
}

// HFModuleName is the module name peft sees for a kadapt target in a layer of
// CLIPVisionModel(WithProjection) or CLIPModel, e.g. (3, "q") →
// vision_model.encoder.layers.3.self_attn.q_proj.
func HFModuleName(layer int, target string) (string, error) {
	m, ok := hfModule[target]
	if !ok {
		return "", fmt.Errorf("unknown LoRA target %q (want one of %s)", target, strings.Join(Targets, ", "))
	}
	return fmt.Sprintf("vision_model.encoder.layers.%d.%s", layer, m), nil
}

// Module is one adapted linear: ΔW = Scale·B·A.
type Module struct {
	Name       string             // peft's module name, e.g. vision_model.encoder.layers.3.self_attn.q_proj
	Site       string             // kadapt's site, e.g. blocks.3.attn.q
	Layer      int                // encoder layer index
	Target     string             // q, k, v, out, fc1 or fc2
	KeyA, KeyB string             // the tensors' names in adapter_model.safetensors
	A, B       safetensors.Tensor // A [R, in], B [out, R]
	R          int                // rank, after rank_pattern
	Alpha      float64            // alpha, after alpha_pattern
	Scale      float64            // Alpha/R, or Alpha/√R with rsLoRA
}

// Delta returns Scale·B·A as an [out, in] row-major matrix, summed in float64.
func (m *Module) Delta() []float32 {
	out, in, r := m.B.Shape[0], m.A.Shape[1], m.R
	d := make([]float32, out*in)
	row := make([]float64, in)
	for i := 0; i < out; i++ {
		clear(row)
		for k := 0; k < r; k++ {
			bik := float64(m.B.Data[i*r+k])
			for j, v := range m.A.Data[k*in : (k+1)*in] {
				row[j] += bik * float64(v)
			}
		}
		for j, s := range row {
			d[i*in+j] = float32(m.Scale * s)
		}
	}
	return d
}

// Adapter is a loaded peft LoRA adapter for a CLIP image tower.
type Adapter struct {
	Dir          string
	R            int       // r: the default rank
	Alpha        float64   // lora_alpha: the default alpha
	Targets      []string  // target_modules in list form (nil when a regex or null)
	TargetRegex  string    // target_modules in string form ("all-linear" or a regex)
	RSLoRA       bool      // use_rslora: scale by alpha/√r instead of alpha/r
	RankPattern  []Pattern // rank_pattern in file order
	AlphaPattern []Pattern // alpha_pattern in file order
	Modules      []Module  // the image tower's adapted linears, by layer then target
	Notes        []string  // what was ignored and why (e.g. a text-tower half)
	sel          selector
}

// keyRE matches one LoRA matrix of a CLIP image-tower linear as peft names it in a
// saved adapter (no adapter name) or in a live model's state dict (".default").
var keyRE = regexp.MustCompile(`^vision_model\.encoder\.layers\.(\d+)\.(?:self_attn\.(q|k|v|out)_proj|mlp\.(fc1|fc2))\.lora_([AB])(\.default)?\.weight$`)

// Load reads the adapter folder dir. Errors name the file and the key at fault.
func Load(dir string) (*Adapter, error) {
	a := &Adapter{Dir: dir}
	cfgPath := filepath.Join(dir, ConfigFile)
	if err := a.readConfig(cfgPath); err != nil {
		return nil, err
	}
	wPath := filepath.Join(dir, WeightsFile)
	if _, err := os.Stat(wPath); errors.Is(err, fs.ErrNotExist) {
		bin := filepath.Join(dir, "adapter_model.bin")
		if _, err := os.Stat(bin); err == nil {
			return nil, fmt.Errorf("peft: %s: pickled weights are not read (unpickling runs code); save the adapter with safe_serialization=True, peft's default, to get %s", bin, WeightsFile)
		}
	}
	f, err := safetensors.Open(wPath)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	defer f.Close()
	if err := a.readWeights(f, wPath); err != nil {
		return nil, err
	}
	return a, nil
}

type halfPair struct {
	layer  int
	target string
	keys   [2]string
	ts     [2]*safetensors.Tensor
}

func (a *Adapter) readWeights(f *safetensors.File, wPath string) error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("peft: %s: key %q: "+format, append([]any{wPath, key}, args...)...)
	}
	pairs := map[string]*halfPair{}
	textKeys := 0
	for _, key := range f.Names() {
		name := strings.TrimPrefix(key, "base_model.model.")
		if strings.HasPrefix(name, "text_model.") || strings.HasPrefix(name, "text_projection.") {
			textKeys++
			continue
		}
		m := keyRE.FindStringSubmatch(name)
		if m == nil {
			return unsupportedKey(wPath, key)
		}
		layer, err := strconv.Atoi(m[1])
		if err != nil || layer > 1<<16 {
			return bad(key, "layer index %s is out of range", m[1])
		}
		target := m[2] + m[3]
		module, _ := HFModuleName(layer, target)
		p := pairs[module]
		if p == nil {
			p = &halfPair{layer: layer, target: target}
			pairs[module] = p
		}
		i := 0
		if m[4] == "B" {
			i = 1
		}
		if p.keys[i] != "" {
			return bad(key, "module %s already has lora_%s in %q", module, m[4], p.keys[i])
		}
		info, _ := f.Info(key)
		if len(info.Shape) != 2 || info.Shape[0] <= 0 || info.Shape[1] <= 0 {
			return bad(key, "shape %v: lora_%s must be a non-empty matrix", info.Shape, m[4])
		}
		data, err := f.Float32s(key)
		if err != nil {
			return fmt.Errorf("peft: %w", err)
		}
		if j := core.FirstNonFinite(data); j >= 0 {
			return bad(key, "element %d is %v: an adapter with NaN or Inf weights makes every output NaN", j, data[j])
		}
		p.keys[i] = key
		p.ts[i] = &safetensors.Tensor{Shape: info.Shape, Data: data}
	}
	if textKeys > 0 {
		a.Notes = append(a.Notes, fmt.Sprintf("%s: %d text-tower tensors ignored: kadapt adapts the image tower", wPath, textKeys))
	}
	cfgPath := filepath.Join(a.Dir, ConfigFile)
	modules := make([]string, 0, len(pairs))
	for module := range pairs {
		modules = append(modules, module)
	}
	sort.Strings(modules) // so that the first error reported does not vary
	for _, module := range modules {
		p := pairs[module]
		for i, ab := range []string{"A", "B"} {
			if p.ts[i] == nil {
				other := p.keys[1-i]
				return bad(other, "module %s has no lora_%s: a LoRA needs both matrices", module, ab)
			}
		}
		A, B := p.ts[0], p.ts[1]
		r := A.Shape[0]
		if B.Shape[1] != r {
			return bad(p.keys[1], "shape %v does not match lora_A %q %v: B must be [out, %d]", B.Shape, p.keys[0], A.Shape, r)
		}
		wantR, alpha := a.rankAlpha(module)
		if r != wantR {
			return bad(p.keys[0], "rank %d, but %s gives %s rank %d (r or rank_pattern)", r, cfgPath, module, wantR)
		}
		if !a.sel.targets(module) {
			return bad(p.keys[0], "module %s is not one %s targets (target_modules %s)", module, cfgPath, a.targetsString())
		}
		a.Modules = append(a.Modules, Module{
			Name: module, Site: fmt.Sprintf("blocks.%d.%s", p.layer, sitePath[p.target]),
			Layer: p.layer, Target: p.target, KeyA: p.keys[0], KeyB: p.keys[1], A: *A, B: *B,
			R: r, Alpha: alpha, Scale: a.scale(r, alpha),
		})
	}
	if len(a.Modules) == 0 {
		return fmt.Errorf("peft: %s has no LoRA weights for a CLIP image tower", wPath)
	}
	order := map[string]int{}
	for i, t := range Targets {
		order[t] = i
	}
	sort.Slice(a.Modules, func(i, j int) bool {
		mi, mj := a.Modules[i], a.Modules[j]
		if mi.Layer != mj.Layer {
			return mi.Layer < mj.Layer
		}
		return order[mi.Target] < order[mj.Target]
	})
	return nil
}

// unsupportedKey explains why a key that is not a plain LoRA matrix of a CLIP image
// tower linear cannot be used.
func unsupportedKey(wPath, key string) error {
	why := "not a lora_A/lora_B weight of a CLIP image-tower projection (vision_model.encoder.layers.N.self_attn.{q,k,v,out}_proj or mlp.fc1/fc2)"
	switch {
	case strings.Contains(key, "lora_magnitude_vector"):
		why = "a DoRA magnitude vector: DoRA adapters are not supported"
	case strings.Contains(key, ".lora_A.") && strings.HasSuffix(key, ".bias"),
		strings.Contains(key, ".lora_B.") && strings.HasSuffix(key, ".bias"):
		why = "a LoRA bias (lora_bias=True): not supported"
	case strings.Contains(key, "modules_to_save"):
		why = "a full copy of a module (modules_to_save): not supported"
	case strings.Contains(key, "lora_embedding_"):
		why = "an embedding LoRA: kadapt adapts linears only"
	case strings.Contains(key, "lora_") && !strings.Contains(key, "vision_model.encoder.layers."):
		why = "a LoRA on a module kadapt's CLIP image tower does not adapt (only encoder layers' attention projections and MLP linears)"
	}
	return fmt.Errorf("peft: %s: key %q: %s", wPath, key, why)
}

func (a *Adapter) targetsString() string {
	if a.Targets != nil {
		return fmt.Sprintf("%q", a.Targets)
	}
	return fmt.Sprintf("%q", a.TargetRegex)
}

// Apply merges every module into the tower's weights, W += Scale·B·A, so that any
// later forward pass (embed, zero-shot, training) sees the adapted tower. It checks
// the whole adapter against the tower first and changes nothing when it does not
// fit. Applying twice adds the update twice.
func (a *Adapter) Apply(v *backbones.Vision) error {
	wPath := filepath.Join(a.Dir, WeightsFile)
	linears := map[string]*backbones.Linear{}
	for _, l := range v.Linears() {
		linears[l.Site] = l
	}
	have := map[string]bool{}
	for i := range a.Modules {
		m := &a.Modules[i]
		l := linears[m.Site]
		if l == nil {
			return fmt.Errorf("peft: %s: key %q: module %s: the tower has no such linear (it has %d layers)", wPath, m.KeyA, m.Name, len(v.Blocks))
		}
		if m.A.Shape[1] != l.In() || m.B.Shape[0] != l.Out() {
			return fmt.Errorf("peft: %s: keys %q %v and %q %v do not fit %s, whose weight is [%d, %d]: want lora_A [%d, %d] and lora_B [%d, %d]",
				wPath, m.KeyA, m.A.Shape, m.KeyB, m.B.Shape, m.Name, l.Out(), l.In(), m.R, l.In(), l.Out(), m.R)
		}
		have[m.Site] = true
	}
	if !a.sel.anyModule {
		for i := range v.Blocks {
			for _, t := range Targets {
				name, _ := HFModuleName(i, t)
				site := fmt.Sprintf("blocks.%d.%s", i, sitePath[t])
				if a.sel.targets(name) && !have[site] {
					return fmt.Errorf("peft: %s: %s targets %s (target_modules %s), but the file has no lora_A/lora_B for it: the adapter was made for another model",
						wPath, ConfigFile, name, a.targetsString())
				}
			}
		}
	}
	// Merged weights are checked for every module before any is written, so an
	// adapter that would overflow (a huge lora_alpha) changes nothing.
	merged := func(m *Module) []float32 {
		l := linears[m.Site]
		w := make([]float32, l.W.Value.Size())
		l.W.Value.Backend().Download(w, l.W.Value)
		for j, d := range m.Delta() {
			w[j] += d
		}
		return w
	}
	for i := range a.Modules {
		m := &a.Modules[i]
		if j := core.FirstNonFinite(merged(m)); j >= 0 {
			return fmt.Errorf("peft: %s: keys %q and %q: merging %s (scale %g) makes weight element %d non-finite; check lora_alpha and the weights",
				wPath, m.KeyA, m.KeyB, m.Name, m.Scale, j)
		}
	}
	for i := range a.Modules {
		m := &a.Modules[i]
		l := linears[m.Site]
		l.W.Value.Backend().Upload(l.W.Value, merged(m))
	}
	return nil
}
