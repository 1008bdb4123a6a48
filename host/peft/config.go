package peft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// maxConfigSize bounds adapter_config.json before it is read whole: peft's are about
// 1 KiB, so anything near this is not an adapter config.
const maxConfigSize = 4 << 20

// Pattern is one entry of rank_pattern or alpha_pattern. peft matches Key against a
// module's full name as the regex (.*\.)?(Key)$ and takes the first entry that
// matches in the file's order, so the order is kept.
type Pattern struct {
	Key   string
	Value float64
	re    *regexp.Regexp
}

// match reports whether p applies to the module named name.
func (p Pattern) match(name string) bool {
	if p.re == nil { // a Pattern made outside readPatterns
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + p.Key + `)$`)
		return err == nil && re.MatchString(name)
	}
	return p.re.MatchString(name)
}

// rawConfig is the part of adapter_config.json that decides what the adapter does to
// a CLIP vision tower; every other field is bookkeeping peft ignores on load too.
type rawConfig struct {
	PeftType          *string         `json:"peft_type"`
	R                 *int            `json:"r"`
	LoraAlpha         *float64        `json:"lora_alpha"`
	TargetModules     json.RawMessage `json:"target_modules"`
	ExcludeModules    json.RawMessage `json:"exclude_modules"`
	ModulesToSave     json.RawMessage `json:"modules_to_save"`
	LayersToTransform json.RawMessage `json:"layers_to_transform"`
	LayersPattern     json.RawMessage `json:"layers_pattern"`
	RankPattern       json.RawMessage `json:"rank_pattern"`
	AlphaPattern      json.RawMessage `json:"alpha_pattern"`
	UseRSLoRA         bool            `json:"use_rslora"`
	UseDoRA           bool            `json:"use_dora"`
	FanInFanOut       bool            `json:"fan_in_fan_out"`
	Bias              *string         `json:"bias"`
	LoraBias          bool            `json:"lora_bias"`
	UseQALoRA         bool            `json:"use_qalora"`
	// Each of these, when set, makes the adapter more than W + scale·B·A.
	LayerReplication      json.RawMessage `json:"layer_replication"`
	TargetParameters      json.RawMessage `json:"target_parameters"`
	TrainableTokens       json.RawMessage `json:"trainable_token_indices"`
	ALoRAInvocationTokens json.RawMessage `json:"alora_invocation_tokens"`
}

// selector decides, as peft's check_target_module_exists does, which modules an
// adapter targets.
type selector struct {
	list        []string       // list form of target_modules
	targetRE    *regexp.Regexp // string form (full match)
	allLinear   bool           // target_modules "all-linear"
	anyModule   bool           // target_modules null: no constraint recorded
	exclude     []string
	excludeRE   *regexp.Regexp
	saveRE      []*regexp.Regexp // modules_to_save: never LoRA-adapted
	layers      []int            // layers_to_transform (list form of target_modules only)
	layerRE     []*regexp.Regexp // how the layer index is found in a module name
	hasLayerSel bool
}

// maxAlpha bounds lora_alpha: real adapters use 1 to a few hundred, and beyond
// this scale·B·A leaves float32's range for ordinary weights (1e308 made NaN
// embeddings that were written with exit status 0).
const maxAlpha = 1e6

// readConfig parses and checks adapter_config.json into a.
func (a *Adapter) readConfig(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	if st.Size() > maxConfigSize {
		return fmt.Errorf("peft: %s: %d bytes is too large for an adapter config", path, st.Size())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	var c rawConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("peft: %s: %v", path, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("peft: %s: "+format, append([]any{path}, args...)...)
	}
	switch {
	case c.PeftType == nil:
		return bad("no peft_type: not a peft adapter config")
	case *c.PeftType != "LORA":
		return bad("peft_type %q: only LORA adapters are supported", *c.PeftType)
	case c.UseDoRA:
		return bad("use_dora is true: DoRA adapters (a learned magnitude per column) are not supported")
	case c.FanInFanOut:
		return bad("fan_in_fan_out is true: that is for GPT-2's Conv1D layers, CLIP's linears store [out, in]")
	case c.Bias != nil && *c.Bias != "none":
		return bad("bias %q: adapters that train the base model's biases are not supported (want \"none\")", *c.Bias)
	case c.LoraBias:
		return bad("lora_bias is true: LoRA B matrices with a bias are not supported")
	case c.UseQALoRA:
		return bad("use_qalora is true: QA-LoRA's pooled inputs are not supported")
	case !isNull(c.LayerReplication):
		return bad("layer_replication is set: adapters that duplicate layers are not supported")
	case !isNull(c.TargetParameters):
		return bad("target_parameters is set: LoRA on raw parameters is not supported")
	case !isNull(c.TrainableTokens):
		return bad("trainable_token_indices is set: trained token embeddings are not supported")
	case !isNull(c.ALoRAInvocationTokens):
		return bad("alora_invocation_tokens is set: activated LoRA depends on text tokens")
	}
	// peft's LoraConfig defaults, for hand-written configs that leave them out.
	a.R, a.Alpha = 8, 8
	if c.R != nil {
		a.R = *c.R
	}
	if c.LoraAlpha != nil {
		a.Alpha = *c.LoraAlpha
	}
	if a.R <= 0 {
		return bad("r = %d: the rank must be positive", a.R)
	}
	if !(math.Abs(a.Alpha) <= maxAlpha) {
		return bad("lora_alpha %v is not a number of magnitude at most %g (scale·B·A would overflow the weights)", a.Alpha, maxAlpha)
	}
	a.RSLoRA = c.UseRSLoRA
	if a.RankPattern, err = readPatterns(c.RankPattern); err != nil {
		return bad("rank_pattern: %v", err)
	}
	for _, p := range a.RankPattern {
		if p.Value <= 0 || p.Value != math.Trunc(p.Value) || p.Value > 1<<20 {
			return bad("rank_pattern[%q] = %v: a rank must be a positive integer", p.Key, p.Value)
		}
	}
	if a.AlphaPattern, err = readPatterns(c.AlphaPattern); err != nil {
		return bad("alpha_pattern: %v", err)
	}
	for _, p := range a.AlphaPattern {
		if !(math.Abs(p.Value) <= maxAlpha) {
			return bad("alpha_pattern[%q] = %v is not a number of magnitude at most %g", p.Key, p.Value, maxAlpha)
		}
	}
	if err := a.readSelector(&c); err != nil {
		return bad("%v", err)
	}
	return nil
}

// readPatterns reads a JSON object of numbers keeping its key order.
func readPatterns(raw json.RawMessage) ([]Pattern, error) {
	if isNull(raw) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("want an object of module patterns to numbers")
	}
	var ps []Pattern
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		var v float64
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%q: %v", key, err)
		}
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + key + `)$`)
		if err != nil {
			return nil, fmt.Errorf("%q is not a regular expression Go can run: %v", key, err)
		}
		ps = append(ps, Pattern{Key: key, Value: v, re: re})
	}
	return ps, nil
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// stringOrList reads a field peft types as Union[list[str], str].
func stringOrList(raw json.RawMessage) (s string, list []string, isString bool, err error) {
	if isNull(raw) {
		return "", nil, false, nil
	}
	if json.Unmarshal(raw, &s) == nil {
		return s, nil, true, nil
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", nil, false, fmt.Errorf("want a string or a list of strings")
	}
	return "", list, false, nil
}

func (a *Adapter) readSelector(c *rawConfig) error {
	sel := &a.sel
	s, list, isString, err := stringOrList(c.TargetModules)
	switch {
	case err != nil:
		return fmt.Errorf("target_modules: %v", err)
	case isString && s == "all-linear":
		sel.allLinear = true
		a.TargetRegex = s
	case isString:
		if sel.targetRE, err = regexp.Compile(`^(?:` + s + `)$`); err != nil {
			return fmt.Errorf("target_modules %q is not a regular expression Go can run: %v", s, err)
		}
		a.TargetRegex = s
	case list != nil:
		sel.list, a.Targets = list, list
	default:
		sel.anyModule = true
		a.Notes = append(a.Notes, "target_modules is null: every module with weights in the file is adapted")
	}
	if s, list, isString, err = stringOrList(c.ExcludeModules); err != nil {
		return fmt.Errorf("exclude_modules: %v", err)
	}
	if isString && s != "" {
		if sel.excludeRE, err = regexp.Compile(`^(?:` + s + `)$`); err != nil {
			return fmt.Errorf("exclude_modules %q is not a regular expression Go can run: %v", s, err)
		}
	}
	sel.exclude = list
	var save []string
	if !isNull(c.ModulesToSave) {
		if err := json.Unmarshal(c.ModulesToSave, &save); err != nil {
			return fmt.Errorf("modules_to_save: want a list of module names")
		}
	}
	for _, m := range save {
		re, err := regexp.Compile(`^(?:.*\.)?` + m + `(?:$|\..*)`)
		if err != nil {
			return fmt.Errorf("modules_to_save %q is not a regular expression Go can run: %v", m, err)
		}
		sel.saveRE = append(sel.saveRE, re)
	}
	if !isNull(c.LayersToTransform) {
		var one int
		if json.Unmarshal(c.LayersToTransform, &one) == nil {
			sel.layers = []int{one}
			sel.hasLayerSel = true
		} else if err := json.Unmarshal(c.LayersToTransform, &sel.layers); err != nil {
			return fmt.Errorf("layers_to_transform: want a layer index or a list of them")
		} else {
			sel.hasLayerSel = len(sel.layers) > 0
		}
	}
	if sel.hasLayerSel {
		s, list, isString, err := stringOrList(c.LayersPattern)
		if err != nil {
			return fmt.Errorf("layers_pattern: %v", err)
		}
		if isString && s != "" {
			list = []string{s}
		}
		if len(list) == 0 {
			// peft: the first numbered segment of the name is the layer index.
			sel.layerRE = []*regexp.Regexp{regexp.MustCompile(`^.*?\.[^.]*\.(\d+)\.`)}
		}
		for _, p := range list {
			re, err := regexp.Compile(`^.*?\.` + p + `\.(\d+)\.`)
			if err != nil {
				return fmt.Errorf("layers_pattern %q is not a regular expression Go can run: %v", p, err)
			}
			sel.layerRE = append(sel.layerRE, re)
		}
	}
	return nil
}

// targets reports whether peft would put a LoRA layer on the module named name
// (its full name in the base model, e.g. vision_model.encoder.layers.0.mlp.fc1).
func (s *selector) targets(name string) bool {
	if s.excludeRE != nil && s.excludeRE.MatchString(name) {
		return false
	}
	for _, e := range s.exclude {
		if name == e || strings.HasSuffix(name, "."+e) {
			return false
		}
	}
	for _, re := range s.saveRE {
		if re.MatchString(name) {
			return false
		}
	}
	switch {
	case s.anyModule, s.allLinear:
		return true
	case s.targetRE != nil:
		return s.targetRE.MatchString(name)
	}
	found := false
	for _, t := range s.list {
		if name == t || strings.HasSuffix(name, "."+t) {
			found = true
			break
		}
	}
	if !found || !s.hasLayerSel {
		return found
	}
	for _, re := range s.layerRE {
		if m := re.FindStringSubmatch(name); m != nil {
			idx, err := strconv.Atoi(m[1])
			return err == nil && slices.Contains(s.layers, idx)
		}
	}
	return false
}

// rankAlpha gives a module's rank and alpha after rank_pattern and alpha_pattern.
func (a *Adapter) rankAlpha(name string) (int, float64) {
	r, alpha := a.R, a.Alpha
	for _, p := range a.RankPattern {
		if p.match(name) {
			r = int(p.Value)
			break
		}
	}
	for _, p := range a.AlphaPattern {
		if p.match(name) {
			alpha = p.Value
			break
		}
	}
	return r, alpha
}

// scale is the factor peft's LoRA layer multiplies B·A by.
func (a *Adapter) scale(r int, alpha float64) float64 {
	if a.RSLoRA {
		return alpha / math.Sqrt(float64(r))
	}
	return alpha / float64(r)
}
