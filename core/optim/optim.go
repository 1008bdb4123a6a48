package optim

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// Group is a set of parameters sharing optimizer hyperparameters, e.g. the head with a
// larger learning rate, or biases and norms without weight decay.
type Group struct {
	Name   string
	Params []*autograd.Var
	// LRScale multiplies the learning rate passed to Step; 0 means 1.
	LRScale float32
	// WeightDecay is L2 decay for SGD (added to the gradient) and decoupled decay for
	// AdamW.
	WeightDecay float32
}

func (g Group) lrScale() float32 {
	if g.LRScale == 0 {
		return 1
	}
	return g.LRScale
}

// Optimizer updates parameters from their gradients.
type Optimizer interface {
	// Step applies one update with base learning rate lr (scaled per group). Frozen
	// parameters and parameters without a gradient are left alone.
	Step(lr float32)
	// ZeroGrad clears every parameter's gradient.
	ZeroGrad()
	// Steps is the number of Step calls so far (including restored ones).
	Steps() int
	// StateDict returns the optimizer's live state tensors, keyed by
	// "<param name>.momentum", ".exp_avg" or ".exp_avg_sq", and the metadata (step
	// counts, hyperparameters) that LoadStateDict checks. The tensors stay owned by the
	// optimizer: download them before the next Step and do not release them.
	StateDict() (map[string]*core.Tensor, map[string]string)
	// LoadStateDict replaces the state with one exported by StateDict from an optimizer
	// of the same kind, hyperparameters and parameters. It checks everything before
	// changing anything, so on error the optimizer is as it was.
	LoadStateDict(tensors map[string][]float32, meta map[string]string) error
}

// ValidateGroups reports the first problem that would make an optimizer over groups
// ill-defined: a nil or unnamed parameter, a parameter name used twice (state is keyed
// by name), or a negative or non-finite LRScale or WeightDecay.
func ValidateGroups(groups []Group) error {
	seen := map[string]string{}
	for gi, g := range groups {
		where := fmt.Sprintf("group %d (%q)", gi, g.Name)
		if !finite(g.LRScale) || g.LRScale < 0 {
			return fmt.Errorf("optim: %s: LRScale %v must be finite and non-negative", where, g.LRScale)
		}
		if !finite(g.WeightDecay) || g.WeightDecay < 0 {
			return fmt.Errorf("optim: %s: WeightDecay %v must be finite and non-negative", where, g.WeightDecay)
		}
		for pi, p := range g.Params {
			if p == nil || p.Value == nil {
				return fmt.Errorf("optim: %s: parameter %d is nil", where, pi)
			}
			if p.Name == "" {
				return fmt.Errorf("optim: %s: parameter %d has no name (optimizer state is keyed by name)", where, pi)
			}
			if other, ok := seen[p.Name]; ok {
				return fmt.Errorf("optim: parameter %q appears twice (in %s and %s)", p.Name, other, where)
			}
			seen[p.Name] = where
		}
	}
	return nil
}

func finite(x float32) bool {
	return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0)
}

// slot is one parameter's optimizer state.
type slot struct {
	param *autograd.Var
	group int
	// a is the momentum buffer (SGD) or exp_avg (AdamW); b is exp_avg_sq (AdamW).
	// Both are nil until the parameter's first update.
	a, b *core.Tensor
	// step counts this parameter's updates: AdamW's bias correction is per parameter,
	// as in PyTorch, so a parameter unfrozen late starts its correction afresh.
	step int
}

// base is what SGD and AdamW share: the parameter list, state slots and the
// StateDict/LoadStateDict plumbing.
type base struct {
	b      core.Backend
	kind   string
	groups []Group
	slots  []*slot
	steps  int
	// suffixes names the state tensors of each slot, in the order a, b.
	suffixes []string
}

func newBase(b core.Backend, kind string, groups []Group, suffixes []string) base {
	if err := ValidateGroups(groups); err != nil {
		panic(err.Error())
	}
	o := base{b: b, kind: kind, suffixes: suffixes}
	o.groups = make([]Group, len(groups))
	for gi, g := range groups {
		// Copy the slice so a caller reusing its Group cannot change our membership.
		g.Params = append([]*autograd.Var(nil), g.Params...)
		o.groups[gi] = g
		for _, p := range g.Params {
			o.slots = append(o.slots, &slot{param: p, group: gi})
		}
	}
	return o
}

// active reports whether s's parameter takes part in this step.
func (s *slot) active() bool {
	return s.param.Trainable() && s.param.Grad != nil
}

func (o *base) ZeroGrad() {
	for _, s := range o.slots {
		s.param.ZeroGrad()
	}
}

func (o *base) Steps() int { return o.steps }

func (o *base) lr(lr float32, s *slot) float32 { return lr * o.groups[s.group].lrScale() }

func (o *base) wd(s *slot) float32 { return o.groups[s.group].WeightDecay }

func (o *base) ensure(s *slot, n int) {
	shape := s.param.Value.Shape()
	if s.a == nil {
		s.a = o.b.Alloc(shape)
	}
	if n > 1 && s.b == nil {
		s.b = o.b.Alloc(shape)
	}
}

func (o *base) stateTensors(s *slot) []*core.Tensor {
	return []*core.Tensor{s.a, s.b}[:len(o.suffixes)]
}

func (o *base) stateDict(hyper map[string]string, perParamStep bool) (map[string]*core.Tensor, map[string]string) {
	tensors := map[string]*core.Tensor{}
	meta := map[string]string{
		"optimizer": o.kind,
		"steps":     strconv.Itoa(o.steps),
		"groups":    strconv.Itoa(len(o.groups)),
	}
	for k, v := range hyper {
		meta[k] = v
	}
	for gi, g := range o.groups {
		for k, v := range groupMeta(gi, g) {
			meta[k] = v
		}
	}
	for _, s := range o.slots {
		if s.a == nil {
			continue
		}
		for i, t := range o.stateTensors(s) {
			tensors[s.param.Name+o.suffixes[i]] = t
		}
		if perParamStep {
			meta[s.param.Name+".step"] = strconv.Itoa(s.step)
		}
	}
	return tensors, meta
}

func groupMeta(gi int, g Group) map[string]string {
	p := "group." + strconv.Itoa(gi) + "."
	return map[string]string{
		p + "name":         g.Name,
		p + "params":       strconv.Itoa(len(g.Params)),
		p + "lr_scale":     formatFloat(g.lrScale()),
		p + "weight_decay": formatFloat(g.WeightDecay),
	}
}

func formatFloat(x float32) string { return strconv.FormatFloat(float64(x), 'g', -1, 32) }

// loadStateDict validates tensors and meta against this optimizer, then installs them.
// hyper lists the kind-specific metadata that must match exactly.
func (o *base) loadStateDict(tensors map[string][]float32, meta map[string]string, hyper map[string]string, perParamStep bool) error {
	want := map[string]string{
		"optimizer": o.kind,
		"groups":    strconv.Itoa(len(o.groups)),
	}
	for k, v := range hyper {
		want[k] = v
	}
	for gi, g := range o.groups {
		for k, v := range groupMeta(gi, g) {
			want[k] = v
		}
	}
	// The optimizer kind first, so loading an SGD state into AdamW says just that.
	if got, ok := meta["optimizer"]; !ok {
		return fmt.Errorf("optim: state meta lacks key %q", "optimizer")
	} else if got != o.kind {
		return fmt.Errorf("optim: state meta key %q is %q, this optimizer is %q", "optimizer", got, o.kind)
	}
	for _, k := range sortedKeys(want) {
		got, ok := meta[k]
		if !ok {
			return fmt.Errorf("optim: state meta lacks key %q", k)
		}
		if got != want[k] {
			return fmt.Errorf("optim: state meta key %q is %q, this optimizer has %q", k, got, want[k])
		}
	}
	steps, err := parseCount(meta, "steps")
	if err != nil {
		return err
	}

	byName := map[string]*slot{}
	for _, s := range o.slots {
		byName[s.param.Name] = s
	}
	// Every meta key must be known: a stray key means the state came from a different
	// parameter set, and silently ignoring it would hide that.
	for _, k := range sortedKeys(meta) {
		if _, ok := want[k]; ok || k == "steps" {
			continue
		}
		if name, ok := strings.CutSuffix(k, ".step"); ok && perParamStep {
			if _, ok := byName[name]; ok {
				continue
			}
			return fmt.Errorf("optim: state meta key %q names no parameter of this optimizer", k)
		}
		return fmt.Errorf("optim: state meta has unknown key %q", k)
	}
	keyOwner := map[string]*slot{}
	for _, s := range o.slots {
		for _, suf := range o.suffixes {
			keyOwner[s.param.Name+suf] = s
		}
	}
	for _, k := range sortedKeys(tensors) {
		s, ok := keyOwner[k]
		if !ok {
			return fmt.Errorf("optim: state tensor %q names no state of this %s optimizer", k, o.kind)
		}
		if n, want := len(tensors[k]), s.param.Value.Size(); n != want {
			return fmt.Errorf("optim: state tensor %q has %d values, parameter %q has %d", k, n, s.param.Name, want)
		}
	}
	// A parameter has either all of its state tensors or none (never updated).
	newStep := make([]int, len(o.slots))
	for i, s := range o.slots {
		n := 0
		for _, suf := range o.suffixes {
			if _, ok := tensors[s.param.Name+suf]; ok {
				n++
			}
		}
		if n != 0 && n != len(o.suffixes) {
			return fmt.Errorf("optim: state for parameter %q is partial: need all of %v", s.param.Name, o.suffixes)
		}
		if !perParamStep {
			continue
		}
		key := s.param.Name + ".step"
		_, hasStep := meta[key]
		switch {
		case n == 0 && hasStep:
			return fmt.Errorf("optim: state meta key %q is set but tensor %q is missing", key, s.param.Name+o.suffixes[0])
		case n != 0 && !hasStep:
			return fmt.Errorf("optim: state tensor %q is present but meta key %q is missing", s.param.Name+o.suffixes[0], key)
		case n != 0:
			st, err := parseCount(meta, key)
			if err != nil {
				return err
			}
			if st < 1 || st > steps {
				return fmt.Errorf("optim: state meta key %q is %d, want 1..%d (the optimizer's step count)", key, st, steps)
			}
			newStep[i] = st
		}
	}

	// Everything checked; install.
	for i, s := range o.slots {
		if len(o.suffixes) == 0 {
			break
		}
		if _, ok := tensors[s.param.Name+o.suffixes[0]]; !ok {
			o.release(s)
			continue
		}
		o.ensure(s, len(o.suffixes))
		for j, t := range o.stateTensors(s) {
			o.b.Upload(t, tensors[s.param.Name+o.suffixes[j]])
		}
		s.step = newStep[i]
	}
	o.steps = steps
	return nil
}

func (o *base) release(s *slot) {
	for _, t := range []*core.Tensor{s.a, s.b} {
		if t != nil {
			o.b.Release(t)
		}
	}
	s.a, s.b, s.step = nil, nil, 0
}

func parseCount(meta map[string]string, key string) (int, error) {
	v, ok := meta[key]
	if !ok {
		return 0, fmt.Errorf("optim: state meta lacks key %q", key)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("optim: state meta key %q is %q, want a non-negative integer", key, v)
	}
	return n, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
