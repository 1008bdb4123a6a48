// Package adapt compiles a method plugin's plan onto a backbone: it creates the plan's
// parameters with their initialisers, freezes and unfreezes backbone parameters, and
// turns every edit into a hook on the backbone's sites whose expression is evaluated on
// the autograd tape — so training runs at full speed in the host and the plugin is
// never called per step.
package adapt

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/plugins/expr"
	"github.com/kadapt/kadapt/plugins/plan"
)

// ParamPrefix starts the name of every parameter a plan adds, in checkpoints and exports.
const ParamPrefix = "adapt."

// Describe tells a plugin what the tower looks like: its sizes, sites and parameters.
func Describe(m *backbones.Vision) plan.Backbone {
	c := m.Cfg
	bb := plan.Backbone{Name: c.Name, Layers: c.Layers, Width: c.Width, Heads: c.Heads, MLPDim: c.MLPDim, EmbedDim: c.EmbedDim}
	for i, blk := range m.Blocks {
		for _, l := range []*backbones.Linear{&blk.Q, &blk.K, &blk.V, &blk.O, &blk.FC1, &blk.FC2} {
			bb.Sites = append(bb.Sites, plan.Site{Name: l.Site, Kind: plan.Linear, Layer: i, In: l.In(), Out: l.Out()})
		}
		for _, r := range []*backbones.Residual{&blk.Attn, &blk.MLP} {
			bb.Sites = append(bb.Sites, plan.Site{Name: r.Site, Kind: plan.Residual, Layer: i, Dim: r.Dim})
		}
	}
	for _, p := range m.Params() {
		if strings.HasPrefix(p.Name, "head.") {
			continue
		}
		bb.Params = append(bb.Params, plan.ParamInfo{Name: p.Name, Shape: append([]int(nil), p.Shape()...)})
	}
	return bb
}

// Adapted is a plan compiled onto a tower.
type Adapted struct {
	Plan     plan.Plan
	Resolved *plan.Resolved
	// Params are the plan's new parameters in Resolved.Instances order, named
	// ParamPrefix + instance name.
	Params []*autograd.Var
	// Trainable lists what the optimizer updates besides the head: the plan's trainable
	// parameters, then the backbone parameters it unfroze.
	Trainable []*autograd.Var
	// Count is the number of trainable scalars (head excluded), as plan.CountTrainable
	// computes it from the description alone.
	Count  int64
	vision *backbones.Vision
	// factored are the weight deltas applied as low-rank branches (see lowRank), with
	// the full delta for Merge.
	factored []factoredDelta
}

// Compile applies p to m within plan.DefaultBudget. seed makes the parameters'
// initialisation reproducible.
func Compile(m *backbones.Vision, p plan.Plan, seed uint64) (*Adapted, error) {
	return CompileWithin(m, p, seed, plan.Budget{})
}

// CompileWithin is Compile with the plan's allocation bounded by budget (zero
// fields: plan.DefaultBudget's), checked before any parameter is allocated.
func CompileWithin(m *backbones.Vision, p plan.Plan, seed uint64, budget plan.Budget) (*Adapted, error) {
	bb := Describe(m)
	bb.Budget = budget
	r, err := plan.Resolve(p, bb)
	if err != nil {
		return nil, err
	}
	count, err := plan.CountTrainable(p, bb)
	if err != nil {
		return nil, err
	}
	a := &Adapted{Plan: p, Resolved: r, Count: count, vision: m}
	b := m.Params()[0].Value.Backend()
	rng := rand.New(rand.NewPCG(seed, 0x61646170742d696e))
	byName := map[string]*autograd.Var{}
	for _, inst := range r.Instances {
		v := autograd.NewParam(b, ParamPrefix+inst.Name, core.Shape(inst.Spec.Shape))
		if err := initialise(b, v, inst.Spec.Init, rng); err != nil {
			return nil, fmt.Errorf("plugin %q: parameter %q: %v", p.Method, inst.Name, err)
		}
		v.SetTrainable(inst.Spec.Trainable)
		byName[inst.Name] = v
		a.Params = append(a.Params, v)
		if inst.Spec.Trainable {
			a.Trainable = append(a.Trainable, v)
		}
	}
	unfreeze := map[string]bool{}
	for _, name := range r.Trainable {
		unfreeze[name] = true
	}
	for _, bp := range m.Params() {
		on := unfreeze[bp.Name]
		bp.SetTrainable(on)
		if on {
			a.Trainable = append(a.Trainable, bp)
		}
	}
	linears := map[string]*backbones.Linear{}
	for _, l := range m.Linears() {
		linears[l.Site] = l
	}
	residuals := map[string]*backbones.Residual{}
	for _, rs := range m.Residuals() {
		residuals[rs.Site] = rs
	}
	for _, se := range r.Edits {
		bind := map[string]*autograd.Var{}
		for name, inst := range se.Bind {
			bind[name] = byName[inst]
		}
		e := se.Expr
		where := fmt.Sprintf("plugin %q: edit %d (%s at %s)", p.Method, se.Edit, se.Kind, se.Site.Name)
		env := func(tp *autograd.Tape, site map[string]*autograd.Var) map[string]value {
			out := make(map[string]value, len(bind)+len(site))
			for k, v := range bind {
				out[k] = value{v: v}
			}
			for k, v := range site {
				if v != nil {
					out[k] = value{v: v}
				}
			}
			return out
		}
		eval := func(tp *autograd.Tape, site map[string]*autograd.Var) *autograd.Var {
			v, err := expr.Eval(e, env(tp, site), tapeOps{tp})
			if err != nil {
				// Resolve checked every shape against the description, so this is a bug
				// in the host or the backbone, not in the plugin's input.
				panic(fmt.Sprintf("%s: %v", where, err))
			}
			if v.isNum {
				panic(fmt.Sprintf("%s: expression is a constant", where))
			}
			return v.v
		}
		switch se.Kind {
		case plan.WeightDelta, plan.BiasDelta, plan.OutputBranch:
			l := linears[se.Site.Name]
			if l == nil {
				return nil, fmt.Errorf("%s: the backbone has no linear site %q", where, se.Site.Name)
			}
			site := map[string]*autograd.Var{"W": l.W, "b": l.B}
			switch se.Kind {
			case plan.WeightDelta:
				if lr, ok := matchLowRank(e, bind, l); ok && factorLowRank && !l.W.Trainable() {
					a.factored = append(a.factored, factoredDelta{l, func(tp *autograd.Tape) *autograd.Var { return eval(tp, site) }})
					prev := l.Branch
					l.Branch = func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
						y := lr.branch(tp, x)
						if prev != nil {
							y = tp.Add(prev(tp, x), y)
						}
						return y
					}
					break
				}
				prev := l.WeightDelta
				l.WeightDelta = func(tp *autograd.Tape) *autograd.Var { return sumHook(tp, prev, eval(tp, site)) }
			case plan.BiasDelta:
				prev := l.BiasDelta
				l.BiasDelta = func(tp *autograd.Tape) *autograd.Var { return sumHook(tp, prev, eval(tp, site)) }
			case plan.OutputBranch:
				prev := l.Branch
				l.Branch = func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
					y := eval(tp, map[string]*autograd.Var{"W": l.W, "b": l.B, "x": x})
					if prev != nil {
						y = tp.Add(prev(tp, x), y)
					}
					return y
				}
			}
		case plan.ModuleAfter:
			rs := residuals[se.Site.Name]
			if rs == nil {
				return nil, fmt.Errorf("%s: the backbone has no residual site %q", where, se.Site.Name)
			}
			prev := rs.After
			rs.After = func(tp *autograd.Tape, h *autograd.Var) *autograd.Var {
				if prev != nil {
					h = prev(tp, h)
				}
				return eval(tp, map[string]*autograd.Var{"h": h})
			}
		default:
			return nil, fmt.Errorf("%s: unknown edit kind", where)
		}
	}
	return a, nil
}

// factoredDelta is a weight delta applied as a branch, and how to form it for Merge.
type factoredDelta struct {
	linear *backbones.Linear
	delta  func(tp *autograd.Tape) *autograd.Var
}

func sumHook(tp *autograd.Tape, prev func(*autograd.Tape) *autograd.Var, v *autograd.Var) *autograd.Var {
	if prev == nil {
		return v
	}
	return tp.Add(prev(tp), v)
}

// initialise fills v as the plan's Init says (PyTorch's conventions, see plan.Init).
func initialise(b core.Backend, v *autograd.Var, in plan.Init, rng *rand.Rand) error {
	shape := []int(v.Shape())
	data := make([]float32, v.Value.Size())
	uniform := func(lo, hi float64) {
		for i := range data {
			data[i] = float32(lo + (hi-lo)*rng.Float64())
		}
	}
	fanIn, fanOut := plan.Fans(shape)
	switch in.Kind {
	case plan.Zeros:
	case plan.Ones:
		for i := range data {
			data[i] = 1
		}
	case plan.Normal:
		for i := range data {
			data[i] = float32(rng.NormFloat64() * in.Std)
		}
	case plan.Uniform:
		uniform(in.Low, in.High)
	case plan.KaimingUniform:
		if fanIn == 0 {
			return fmt.Errorf("kaiming_uniform needs a shape of rank >= 2, got %v", shape)
		}
		k := math.Sqrt(6 / ((1 + in.A*in.A) * float64(fanIn)))
		uniform(-k, k)
	case plan.GlorotUniform:
		if fanIn+fanOut == 0 {
			return fmt.Errorf("glorot_uniform needs a shape of rank >= 2, got %v", shape)
		}
		gain := in.Gain
		if gain == 0 {
			gain = 1
		}
		k := gain * math.Sqrt(6/float64(fanIn+fanOut))
		uniform(-k, k)
	default:
		return fmt.Errorf("unknown initialiser %q", in.Kind)
	}
	b.Upload(v.Value, data)
	return nil
}

// Merge folds every weight and bias delta into the backbone's weights and removes
// those hooks, so the tower computes the same function with no adaptation overhead.
// Output branches and modules cannot be folded into a weight; Merge reports them.
func (a *Adapted) Merge() error {
	for _, se := range a.Resolved.Edits {
		if se.Kind == plan.OutputBranch || se.Kind == plan.ModuleAfter {
			return fmt.Errorf("plugin %q: edit %d (%s at %s) is not a weight or bias delta and cannot be merged",
				a.Plan.Method, se.Edit, se.Kind, se.Site.Name)
		}
	}
	b := a.vision.Params()[0].Value.Backend()
	tp := autograd.NewTape(b)
	tp.SetGradEnabled(false)
	defer tp.Reset()
	// Low-rank deltas are this linear's only branches: output-branch edits were
	// refused above.
	for _, f := range a.factored {
		b.Axpby(f.linear.W.Value, 1, f.delta(tp).Value, 1)
		f.linear.Branch = nil
	}
	a.factored = nil
	for _, l := range a.vision.Linears() {
		if l.WeightDelta != nil {
			d := l.WeightDelta(tp)
			b.Axpby(l.W.Value, 1, d.Value, 1)
			l.WeightDelta = nil
		}
		if l.BiasDelta != nil {
			if l.B == nil {
				return fmt.Errorf("site %s has no bias to merge a bias delta into", l.Site)
			}
			d := l.BiasDelta(tp)
			b.Axpby(l.B.Value, 1, d.Value, 1)
			l.BiasDelta = nil
		}
	}
	return nil
}
