package plan

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kadapt/kadapt/plugins/expr"
)

// Limits on untrusted plans; generous for any real method.
const (
	MaxParams   = 4096
	MaxEdits    = 4096
	MaxPatterns = 4096
	MaxNameLen  = 256
	MaxRank     = 8
	MaxNotesLen = 1 << 16
	maxProblems = 50
)

// Budget bounds what a plan may make the host allocate, computed from the plan
// before anything is: each shape is already bounded (expr.MaxElements), but a plan
// of many such parameters, or a per-layer one repeated over every block, is not.
type Budget struct {
	// Params bounds the elements of all new parameter instances together.
	Params int64
	// Bytes bounds their float32 memory: values, and for trainable ones a gradient
	// and two optimizer moments; unfrozen backbone parameters count their gradient
	// and moments too.
	Bytes int64
}

// DefaultBudget is far above any parameter-efficient method (a LoRA of rank 64 on
// every linear of ViT-L is 19 M parameters) and fits a workstation.
var DefaultBudget = Budget{Params: 1 << 28, Bytes: 16 << 30}

// ValidationError lists every problem found in a plan.
type ValidationError struct {
	Method   string
	Problems []string
}

func (e *ValidationError) Error() string {
	head := fmt.Sprintf("plugin %q: invalid plan", e.Method)
	if len(e.Problems) == 1 {
		return head + ": " + e.Problems[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d problems):", head, len(e.Problems))
	for i, p := range e.Problems {
		if i == maxProblems {
			fmt.Fprintf(&b, "\n\t… and %d more", len(e.Problems)-maxProblems)
			break
		}
		b.WriteString("\n\t")
		b.WriteString(p)
	}
	return b.String()
}

// Resolved is a valid plan expanded against a backbone: everything the host needs to
// create parameters and compile edits, with no globs or scopes left to interpret.
type Resolved struct {
	// Instances are the new parameters to create: shared ones once, per-layer ones
	// once per block that uses them, in the order of Plan.Params, then by block.
	Instances []Instance
	// Edits are the plan's edits at each site they match, in the order of
	// Plan.Edits, then of Backbone.Sites.
	Edits []SiteEdit
	// Trainable lists the backbone's own parameters that train, in Backbone.Params
	// order.
	Trainable []string
}

// Instance is one tensor of a new parameter.
type Instance struct {
	Name  string // the spec's name (shared) or blocks.<Layer>.<name> (per-layer)
	Spec  ParamSpec
	Layer int // -1 for a shared parameter
}

// SiteEdit is one edit at one site.
type SiteEdit struct {
	Site Site
	Kind string
	Edit int // index into Plan.Edits
	// Expr is the edit's expression with the site's constants (in, out, dim)
	// substituted, ready for expr.Eval.
	Expr expr.Expr
	// Bind maps each plan parameter the expression names to the instance to use here.
	Bind map[string]string
}

// siteVars lists the site variables and constants each edit kind sees.
var siteVars = map[string][]string{
	WeightDelta:  {"W", "b", "in", "out"},
	BiasDelta:    {"W", "b", "in", "out"},
	OutputBranch: {"x", "W", "b", "in", "out"},
	ModuleAfter:  {"h", "dim"},
}

var siteKindFor = map[string]string{
	WeightDelta: Linear, BiasDelta: Linear, OutputBranch: Linear, ModuleAfter: Residual,
}

func isSiteVar(name string) bool {
	switch name {
	case "x", "h", "W", "b", "in", "out", "dim":
		return true
	}
	return false
}

type validator struct {
	problems []string
}

func (v *validator) addf(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// Validate checks p against bb and reports every problem at once in a
// *ValidationError that names the plugin and each offending entry.
func Validate(p Plan, bb Backbone) error {
	_, err := Resolve(p, bb)
	return err
}

// CountTrainable returns the number of trainable scalars p adds and unfreezes: its
// trainable parameters (shared ones once, per-layer ones once per block using them)
// plus the trainable backbone parameters.
func CountTrainable(p Plan, bb Backbone) (int64, error) {
	r, err := Resolve(p, bb)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, in := range r.Instances {
		if in.Spec.Trainable {
			n += size(in.Spec.Shape)
		}
	}
	shapes := map[string][]int{}
	for _, pi := range bb.Params {
		shapes[pi.Name] = pi.Shape
	}
	for _, name := range r.Trainable {
		n += size(shapes[name])
	}
	return n, nil
}

func size(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

// checkShape reports what is wrong with a shape, or "".
func checkShape(shape []int) string {
	if len(shape) > MaxRank {
		return fmt.Sprintf("shape %v has rank %d, more than %d", shape, len(shape), MaxRank)
	}
	n := int64(1)
	for _, d := range shape {
		if d <= 0 {
			return fmt.Sprintf("shape %v has a non-positive dimension", shape)
		}
		if n > expr.MaxElements/int64(d) {
			return fmt.Sprintf("shape %v has more than %d elements", shape, int64(expr.MaxElements))
		}
		n *= int64(d)
	}
	return ""
}

// validName reports whether name is a single identifier of the expression language.
func validName(name string) bool {
	if name == "" || len(name) > MaxNameLen {
		return false
	}
	e, err := expr.Parse(name)
	if err != nil {
		return false
	}
	id, ok := e.(*expr.Ident)
	return ok && id.Name == name
}

func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// checkInit reports what is wrong with an initialiser for shape, or "".
func checkInit(in Init, shape []int) string {
	if !finite(in.Std, in.Low, in.High, in.A, in.Gain) {
		return "init has a non-finite field"
	}
	unused := func(names ...string) string {
		vals := map[string]float64{"std": in.Std, "low": in.Low, "high": in.High, "a": in.A, "gain": in.Gain}
		for _, n := range names {
			if vals[n] != 0 {
				return fmt.Sprintf("init %s does not use %s (it is %g)", in.Kind, n, vals[n])
			}
		}
		return ""
	}
	switch in.Kind {
	case Zeros, Ones:
		return unused("std", "low", "high", "a", "gain")
	case Normal:
		if in.Std <= 0 {
			return fmt.Sprintf("init normal needs std > 0, got %g", in.Std)
		}
		return unused("low", "high", "a", "gain")
	case Uniform:
		if !(in.Low < in.High) {
			return fmt.Sprintf("init uniform needs low < high, got [%g, %g]", in.Low, in.High)
		}
		return unused("std", "a", "gain")
	case KaimingUniform:
		if len(shape) < 2 {
			return fmt.Sprintf("init kaiming_uniform needs a shape of rank 2 or more for its fan-in, got %v", shape)
		}
		if in.A < 0 {
			return fmt.Sprintf("init kaiming_uniform needs a >= 0, got %g", in.A)
		}
		return unused("std", "low", "high", "gain")
	case GlorotUniform:
		if len(shape) < 2 {
			return fmt.Sprintf("init glorot_uniform needs a shape of rank 2 or more for its fans, got %v", shape)
		}
		if in.Gain < 0 {
			return fmt.Sprintf("init glorot_uniform needs gain >= 0, got %g", in.Gain)
		}
		return unused("std", "low", "high", "a")
	case "":
		return "init has no kind"
	}
	return fmt.Sprintf("unknown init kind %q (want zeros, ones, normal, uniform, kaiming_uniform or glorot_uniform)", in.Kind)
}

// blockOf returns i for a name blocks.<i>.…, or -1.
func blockOf(name string) int {
	rest, ok := strings.CutPrefix(name, "blocks.")
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || strconv.Itoa(i) != num {
		return -1
	}
	return i
}

func (v *validator) checkBackbone(bb Backbone) {
	if bb.Layers <= 0 {
		v.addf("backbone %q: %d layers", bb.Name, bb.Layers)
	}
	seen := map[string]bool{}
	for _, s := range bb.Sites {
		if seen[s.Name] {
			v.addf("backbone %q: site %q listed twice", bb.Name, s.Name)
		}
		seen[s.Name] = true
		switch {
		case s.Kind == Linear && (s.In <= 0 || s.Out <= 0):
			v.addf("backbone %q: linear site %q has in %d, out %d", bb.Name, s.Name, s.In, s.Out)
		case s.Kind == Residual && s.Dim <= 0:
			v.addf("backbone %q: residual site %q has dim %d", bb.Name, s.Name, s.Dim)
		case s.Kind != Linear && s.Kind != Residual:
			v.addf("backbone %q: site %q has unknown kind %q", bb.Name, s.Name, s.Kind)
		}
		if s.Layer < 0 || s.Layer >= bb.Layers {
			v.addf("backbone %q: site %q is in layer %d of %d", bb.Name, s.Name, s.Layer, bb.Layers)
		}
	}
	seen = map[string]bool{}
	for _, pi := range bb.Params {
		if seen[pi.Name] {
			v.addf("backbone %q: parameter %q listed twice", bb.Name, pi.Name)
		}
		seen[pi.Name] = true
		if msg := checkShape(pi.Shape); msg != "" {
			v.addf("backbone %q: parameter %q: %s", bb.Name, pi.Name, msg)
		}
	}
}

// Resolve validates p against bb and expands it, within bb.Budget. On any problem
// it returns a *ValidationError listing them all.
func Resolve(p Plan, bb Backbone) (*Resolved, error) {
	budget := bb.Budget
	if budget.Params <= 0 {
		budget.Params = DefaultBudget.Params
	}
	if budget.Bytes <= 0 {
		budget.Bytes = DefaultBudget.Bytes
	}
	v := &validator{}
	method := p.Method
	if method == "" {
		method = "(unnamed)"
		v.addf("plan has no method name")
	}
	v.checkBackbone(bb)
	if len(p.Params) > MaxParams || len(p.Edits) > MaxEdits || len(p.Trainable.Patterns) > MaxPatterns {
		v.addf("plan has %d params, %d edits and %d trainable patterns; the limits are %d, %d and %d",
			len(p.Params), len(p.Edits), len(p.Trainable.Patterns), MaxParams, MaxEdits, MaxPatterns)
		return nil, &ValidationError{Method: method, Problems: v.problems}
	}
	if len(p.Notes) > MaxNotesLen {
		v.addf("notes are %d bytes long, more than %d", len(p.Notes), MaxNotesLen)
	}

	bbParams := map[string]bool{}
	for _, pi := range bb.Params {
		bbParams[pi.Name] = true
	}

	// Parameters.
	specs := map[string]int{}
	for i, ps := range p.Params {
		where := fmt.Sprintf("param %d (%q)", i, ps.Name)
		switch {
		case !validName(ps.Name):
			v.addf("%s: name must be identifier segments joined by dots, such as q.fast.u, at most %d bytes", where, MaxNameLen)
		case isSiteVar(ps.Name):
			v.addf("%s: name is reserved for a site variable or constant (x, h, W, b, in, out, dim)", where)
		case specs[ps.Name] != 0:
			v.addf("%s: name already used by param %d", where, specs[ps.Name]-1)
		}
		if _, dup := specs[ps.Name]; !dup {
			specs[ps.Name] = i + 1
		}
		switch ps.Scope {
		case Shared:
			if bbParams[ps.Name] {
				v.addf("%s: name is a backbone parameter's", where)
			}
		case PerLayer:
			if strings.HasPrefix(ps.Name, "blocks.") {
				v.addf("%s: a per-layer parameter is named without its block prefix; the host adds blocks.<i>.", where)
			}
		default:
			v.addf("%s: scope %q is neither %q nor %q", where, ps.Scope, Shared, PerLayer)
		}
		if msg := checkShape(ps.Shape); msg != "" {
			v.addf("%s: %s", where, msg)
		} else if msg := checkInit(ps.Init, ps.Shape); msg != "" {
			v.addf("%s: %s", where, msg)
		}
	}
	specOf := func(name string) (ParamSpec, bool) {
		i, ok := specs[name]
		if !ok || i == 0 {
			return ParamSpec{}, false
		}
		return p.Params[i-1], true
	}

	// Edits.
	type siteKey struct{ site, kind string }
	claimed := map[siteKey]int{}
	layersOf := map[string]map[int]bool{} // per-layer parameter → blocks using it
	used := map[string]bool{}
	unparsed := false
	type parsedEdit struct {
		e     expr.Expr
		sites []Site
		uses  []string
	}
	parsed := make([]parsedEdit, len(p.Edits))
	for i, ed := range p.Edits {
		where := fmt.Sprintf("edit %d (%s %s)", i, ed.Site, ed.Kind)
		wantKind, okKind := siteKindFor[ed.Kind]
		if !okKind {
			v.addf("%s: unknown kind %q (want weight_delta, bias_delta, output_branch or module_after)", where, ed.Kind)
		}
		g, err := CompileGlob(ed.Site)
		var sites []Site
		if err != nil {
			v.addf("%s: site: %v", where, err)
		} else {
			var wrong []string
			for _, s := range bb.Sites {
				if !g.Match(s.Name) {
					continue
				}
				if okKind && s.Kind != wantKind {
					wrong = append(wrong, s.Name)
					continue
				}
				sites = append(sites, s)
			}
			switch {
			case len(wrong) > 0:
				v.addf("%s: matches %d %s site(s) such as %s, but %s edits apply to %s sites",
					where, len(wrong), otherKind(wantKind), wrong[0], ed.Kind, wantKind)
			case len(sites) == 0:
				v.addf("%s: pattern matches no site of backbone %q", where, bb.Name)
			}
		}
		for _, s := range sites {
			k := siteKey{s.Name, ed.Kind}
			if j, dup := claimed[k]; dup {
				v.addf("%s: site %s already has a %s edit from edit %d; combine them in one expression", where, s.Name, ed.Kind, j)
				continue
			}
			claimed[k] = i
		}
		e, err := expr.Parse(ed.Expr)
		if err != nil {
			v.addf("%s: expression %q: %v", where, ed.Expr, err)
			unparsed = true
			continue
		}
		var uses []string
		ok := true
		for _, id := range expr.Idents(e) {
			if _, isParam := specOf(id); isParam {
				uses = append(uses, id)
				used[id] = true
				continue
			}
			if slices.Contains(siteVars[ed.Kind], id) {
				continue
			}
			ok = false
			if isSiteVar(id) {
				v.addf("%s: %s is not available in a %s edit, which sees %s and the plan's parameters",
					where, id, ed.Kind, strings.Join(siteVars[ed.Kind], ", "))
			} else {
				v.addf("%s: %s is not a parameter of the plan", where, id)
			}
		}
		parsed[i] = parsedEdit{e: e, sites: sites, uses: uses}
		for _, name := range uses {
			if ps, _ := specOf(name); ps.Scope == PerLayer {
				if layersOf[name] == nil {
					layersOf[name] = map[int]bool{}
				}
				for _, s := range sites {
					layersOf[name][s.Layer] = true
				}
			}
		}
		if !ok || !okKind {
			continue
		}
		// Sites with equal sizes give equal shapes: check each size once.
		checked := map[[3]int]bool{}
		for _, s := range sites {
			key := [3]int{s.In, s.Out, s.Dim}
			if checked[key] {
				continue
			}
			checked[key] = true
			vars := map[string]expr.Shape{}
			for _, name := range uses {
				ps, _ := specOf(name)
				vars[name] = ps.Shape
			}
			consts := map[string]float64{}
			var want expr.Shape
			if ed.Kind == ModuleAfter {
				vars["h"] = expr.Shape{expr.Any, s.Dim}
				consts["dim"] = float64(s.Dim)
				want = expr.Shape{expr.Any, s.Dim}
			} else {
				vars["W"] = expr.Shape{s.Out, s.In}
				vars["b"] = expr.Shape{s.Out}
				consts["in"], consts["out"] = float64(s.In), float64(s.Out)
				switch ed.Kind {
				case WeightDelta:
					want = expr.Shape{s.Out, s.In}
				case BiasDelta:
					want = expr.Shape{s.Out}
				case OutputBranch:
					vars["x"] = expr.Shape{expr.Any, s.In}
					want = expr.Shape{expr.Any, s.Out}
				}
			}
			got, err := expr.Infer(e, vars, consts)
			if err != nil {
				v.addf("%s: at site %s: %v in %q", where, s.Name, err, ed.Expr)
				continue
			}
			if !got.Equal(want) {
				v.addf("%s: at site %s the expression has shape %v; a %s must be %v", where, s.Name, got, ed.Kind, want)
			}
		}
	}
	for i, ps := range p.Params {
		// An expression that did not parse may be the one using it: say nothing.
		if specs[ps.Name] == i+1 && !used[ps.Name] && !unparsed && validName(ps.Name) {
			v.addf("param %d (%q): no edit uses it", i, ps.Name)
		}
	}

	// Instances, and their names against each other and the backbone's.
	var instances []Instance
	owner := map[string]string{}
	claim := func(name, by string) {
		if bbParams[name] {
			v.addf("%s: instance %s has a backbone parameter's name", by, name)
		} else if prev, dup := owner[name]; dup && prev != by {
			v.addf("%s: instance %s has the same name as an instance of %s", by, name, prev)
		}
		owner[name] = by
	}
	for i, ps := range p.Params {
		if specs[ps.Name] != i+1 || !used[ps.Name] {
			continue
		}
		by := fmt.Sprintf("param %d (%q)", i, ps.Name)
		if ps.Scope != PerLayer {
			instances = append(instances, Instance{Name: ps.Name, Spec: ps, Layer: -1})
			claim(ps.Name, by)
			continue
		}
		var layers []int
		for l := range layersOf[ps.Name] {
			layers = append(layers, l)
		}
		sort.Ints(layers)
		for _, l := range layers {
			name := fmt.Sprintf("blocks.%d.%s", l, ps.Name)
			instances = append(instances, Instance{Name: name, Spec: ps, Layer: l})
			claim(name, by)
		}
	}

	trainable := v.trainable(p.Trainable, bb)
	v.checkBudget(instances, trainable, bb, budget)

	if len(v.problems) > 0 {
		return nil, &ValidationError{Method: method, Problems: v.problems}
	}

	r := &Resolved{Instances: instances, Trainable: trainable}
	for i, ed := range p.Edits {
		pe := parsed[i]
		for _, s := range pe.sites {
			consts := map[string]float64{"in": float64(s.In), "out": float64(s.Out)}
			if ed.Kind == ModuleAfter {
				consts = map[string]float64{"dim": float64(s.Dim)}
			}
			bind := map[string]string{}
			for _, name := range pe.uses {
				if ps, _ := specOf(name); ps.Scope == PerLayer {
					bind[name] = fmt.Sprintf("blocks.%d.%s", s.Layer, name)
				} else {
					bind[name] = name
				}
			}
			r.Edits = append(r.Edits, SiteEdit{Site: s, Kind: ed.Kind, Edit: i, Expr: expr.Subst(pe.e, consts), Bind: bind})
		}
	}
	return r, nil
}

// checkBudget adds a problem when the plan's new parameters or their memory exceed
// budget. Every shape is below expr.MaxElements and there are at most MaxParams
// specs over a bounded number of blocks, so the sums cannot overflow int64.
func (v *validator) checkBudget(instances []Instance, trainable []string, bb Backbone, budget Budget) {
	const f32 = 4
	var elems, bytes int64
	for _, in := range instances {
		n := size(in.Spec.Shape)
		elems += n
		bytes += f32 * n
		if in.Spec.Trainable {
			bytes += 3 * f32 * n // gradient, two moments
		}
	}
	shapes := map[string][]int{}
	for _, pi := range bb.Params {
		shapes[pi.Name] = pi.Shape
	}
	for _, name := range trainable {
		bytes += 3 * f32 * size(shapes[name])
	}
	if elems > budget.Params {
		v.addf("the plan's parameters have %d elements over %d instances, more than the budget of %d (raise it with --plan-max-params or limits.plan_params)",
			elems, len(instances), budget.Params)
	}
	if bytes > budget.Bytes {
		v.addf("the plan needs about %d MiB for parameters, gradients and optimizer state, more than the budget of %d MiB (raise it with --plan-max-memory-mib or limits.plan_memory_mib)",
			bytes>>20, budget.Bytes>>20)
	}
}

func otherKind(k string) string {
	if k == Linear {
		return Residual
	}
	return Linear
}

// trainable checks the trainable spec and returns the backbone parameters it selects.
func (v *validator) trainable(t TrainableSpec, bb Backbone) []string {
	from, to := t.FromLayer, t.ToLayer
	if from != 0 || to != 0 {
		if to == 0 {
			v.addf("trainable: from_layer %d needs a to_layer", from)
		} else if from < 0 || from >= to || to > bb.Layers {
			v.addf("trainable: layer range [%d, %d) is not within [0, %d)", from, to, bb.Layers)
		}
	}
	inRange := func(name string) bool {
		l := blockOf(name)
		return to == 0 || l < 0 || (from <= l && l < to)
	}
	var globs []*Glob
	switch t.Mode {
	case TrainNone, TrainAll:
		if len(t.Patterns) > 0 {
			v.addf("trainable: mode %q takes no patterns (got %d); use mode %q", t.Mode, len(t.Patterns), TrainPatterns)
		}
		if t.Mode == TrainNone && to != 0 {
			v.addf("trainable: mode none takes no layer range")
		}
	case TrainPatterns:
		if len(t.Patterns) == 0 {
			v.addf("trainable: mode patterns needs at least one pattern")
		}
		for i, pat := range t.Patterns {
			g, err := CompileGlob(pat)
			if err != nil {
				v.addf("trainable: pattern %d: %v", i, err)
				continue
			}
			hit := false
			for _, pi := range bb.Params {
				if g.Match(pi.Name) && inRange(pi.Name) {
					hit = true
					break
				}
			}
			if !hit {
				v.addf("trainable: pattern %d (%q) matches no parameter of backbone %q", i, pat, bb.Name)
			}
			globs = append(globs, g)
		}
	case "":
		v.addf("trainable: no mode (want none, all or patterns)")
	default:
		v.addf("trainable: unknown mode %q (want none, all or patterns)", t.Mode)
	}
	var names []string
	for _, pi := range bb.Params {
		if !inRange(pi.Name) {
			continue
		}
		sel := t.Mode == TrainAll
		for _, g := range globs {
			if g.Match(pi.Name) {
				sel = true
				break
			}
		}
		if sel {
			names = append(names, pi.Name)
		}
	}
	return names
}
