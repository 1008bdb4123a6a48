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
	r := newResolver(p, bb)
	if !r.checkHeader() {
		return nil, r.failure()
	}
	r.checkParams()
	for i := range p.Edits {
		r.checkEdit(i)
	}
	r.checkUnused()
	instances := r.instances()
	trainable := r.trainable(p.Trainable, bb)
	r.checkBudget(instances, trainable, bb, budgetOf(bb))
	if len(r.problems) > 0 {
		return nil, r.failure()
	}
	return &Resolved{Instances: instances, Edits: r.siteEdits(), Trainable: trainable}, nil
}

// resolver is what Resolve learns about a plan step by step; every step adds its
// problems and goes on, so that one run reports them all.
type resolver struct {
	validator
	p        Plan
	bb       Backbone
	method   string
	bbParams map[string]bool

	// specs maps a parameter name to 1 + the index of its first spec.
	specs map[string]int
	// claimed maps a site and edit kind to the edit that claimed it.
	claimed map[siteKey]int
	// layersOf maps a per-layer parameter to the blocks whose sites use it.
	layersOf map[string]map[int]bool
	used     map[string]bool
	// unparsed is set when an expression did not parse: it may be the one that uses a
	// parameter, so unused parameters are not reported.
	unparsed bool
	edits    []parsedEdit // by index into Plan.Edits
}

type siteKey struct{ site, kind string }

// parsedEdit is an edit whose expression parsed: the sites it applies to and the
// plan parameters it names.
type parsedEdit struct {
	e     expr.Expr
	sites []Site
	uses  []string
}

func newResolver(p Plan, bb Backbone) *resolver {
	r := &resolver{p: p, bb: bb, method: p.Method, bbParams: map[string]bool{}, specs: map[string]int{},
		claimed: map[siteKey]int{}, layersOf: map[string]map[int]bool{}, used: map[string]bool{},
		edits: make([]parsedEdit, len(p.Edits))}
	for _, pi := range bb.Params {
		r.bbParams[pi.Name] = true
	}
	return r
}

func (r *resolver) failure() error {
	return &ValidationError{Method: r.method, Problems: r.problems}
}

// budgetOf is bb's budget with DefaultBudget where the host set none.
func budgetOf(bb Backbone) Budget {
	budget := bb.Budget
	if budget.Params <= 0 {
		budget.Params = DefaultBudget.Params
	}
	if budget.Bytes <= 0 {
		budget.Bytes = DefaultBudget.Bytes
	}
	return budget
}

// checkHeader checks the method name, the backbone and the plan's sizes. It reports
// false when the plan is too large to look into: every later step is linear in its
// lists, and an untrusted plugin must not make the host spend without bound.
func (r *resolver) checkHeader() bool {
	p := r.p
	if r.method == "" {
		r.method = "(unnamed)"
		r.addf("plan has no method name")
	}
	r.checkBackbone(r.bb)
	if len(p.Params) > MaxParams || len(p.Edits) > MaxEdits || len(p.Trainable.Patterns) > MaxPatterns {
		r.addf("plan has %d params, %d edits and %d trainable patterns; the limits are %d, %d and %d",
			len(p.Params), len(p.Edits), len(p.Trainable.Patterns), MaxParams, MaxEdits, MaxPatterns)
		return false
	}
	if len(p.Notes) > MaxNotesLen {
		r.addf("notes are %d bytes long, more than %d", len(p.Notes), MaxNotesLen)
	}
	return true
}

// checkParams checks each parameter spec on its own (name, scope, shape, init) and
// indexes them by name, so that edits can tell a parameter from a typo. A duplicate
// name keeps its first spec.
func (r *resolver) checkParams() {
	for i, ps := range r.p.Params {
		where := fmt.Sprintf("param %d (%q)", i, ps.Name)
		switch {
		case !validName(ps.Name):
			r.addf("%s: name must be identifier segments joined by dots, such as q.fast.u, at most %d bytes", where, MaxNameLen)
		case isSiteVar(ps.Name):
			r.addf("%s: name is reserved for a site variable or constant (x, h, W, b, in, out, dim)", where)
		case r.specs[ps.Name] != 0:
			r.addf("%s: name already used by param %d", where, r.specs[ps.Name]-1)
		}
		if _, dup := r.specs[ps.Name]; !dup {
			r.specs[ps.Name] = i + 1
		}
		switch ps.Scope {
		case Shared:
			if r.bbParams[ps.Name] {
				r.addf("%s: name is a backbone parameter's", where)
			}
		case PerLayer:
			if strings.HasPrefix(ps.Name, "blocks.") {
				r.addf("%s: a per-layer parameter is named without its block prefix; the host adds blocks.<i>.", where)
			}
		default:
			r.addf("%s: scope %q is neither %q nor %q", where, ps.Scope, Shared, PerLayer)
		}
		if msg := checkShape(ps.Shape); msg != "" {
			r.addf("%s: %s", where, msg)
		} else if msg := checkInit(ps.Init, ps.Shape); msg != "" {
			r.addf("%s: %s", where, msg)
		}
	}
}

func (r *resolver) specOf(name string) (ParamSpec, bool) {
	i, ok := r.specs[name]
	if !ok || i == 0 {
		return ParamSpec{}, false
	}
	return r.p.Params[i-1], true
}

// checkEdit checks edit i: its kind, the sites its pattern selects, its expression's
// names, and the expression's shape at each of those sites.
func (r *resolver) checkEdit(i int) {
	ed := r.p.Edits[i]
	where := fmt.Sprintf("edit %d (%s %s)", i, ed.Site, ed.Kind)
	wantKind, knownKind := siteKindFor[ed.Kind]
	if !knownKind {
		r.addf("%s: unknown kind %q (want weight_delta, bias_delta, output_branch or module_after)", where, ed.Kind)
	}
	sites := r.matchSites(where, ed, wantKind, knownKind)
	r.claimSites(where, i, ed.Kind, sites)
	e, err := expr.Parse(ed.Expr)
	if err != nil {
		r.addf("%s: expression %q: %v", where, ed.Expr, err)
		r.unparsed = true
		return
	}
	uses, namesKnown := r.checkNames(where, ed.Kind, e)
	r.edits[i] = parsedEdit{e: e, sites: sites, uses: uses}
	r.recordLayers(uses, sites)
	if namesKnown && knownKind {
		r.checkShapes(where, ed, e, uses, sites)
	}
}

// matchSites returns the backbone sites ed's glob selects. A pattern that also
// selects sites of the other kind is a problem rather than silently narrowed: the
// plugin meant something the backbone does not have.
func (r *resolver) matchSites(where string, ed Edit, wantKind string, knownKind bool) []Site {
	g, err := CompileGlob(ed.Site)
	if err != nil {
		r.addf("%s: site: %v", where, err)
		return nil
	}
	var sites []Site
	var wrong []string
	for _, s := range r.bb.Sites {
		if !g.Match(s.Name) {
			continue
		}
		if knownKind && s.Kind != wantKind {
			wrong = append(wrong, s.Name)
			continue
		}
		sites = append(sites, s)
	}
	switch {
	case len(wrong) > 0:
		r.addf("%s: matches %d %s site(s) such as %s, but %s edits apply to %s sites",
			where, len(wrong), otherKind(wantKind), wrong[0], ed.Kind, wantKind)
	case len(sites) == 0:
		r.addf("%s: pattern matches no site of backbone %q", where, r.bb.Name)
	}
	return sites
}

// claimSites gives each site at most one edit of each kind: the host would apply
// two, and their order would be the plan's accident; one expression says it.
func (r *resolver) claimSites(where string, edit int, kind string, sites []Site) {
	for _, s := range sites {
		k := siteKey{s.Name, kind}
		if j, dup := r.claimed[k]; dup {
			r.addf("%s: site %s already has a %s edit from edit %d; combine them in one expression", where, s.Name, kind, j)
			continue
		}
		r.claimed[k] = edit
	}
}

// checkNames sorts the identifiers of e into plan parameters and the site
// variables an edit of kind sees, and reports the rest. It returns the parameters e
// uses and whether every name was known.
func (r *resolver) checkNames(where, kind string, e expr.Expr) (uses []string, known bool) {
	known = true
	for _, id := range expr.Idents(e) {
		if _, isParam := r.specOf(id); isParam {
			uses = append(uses, id)
			r.used[id] = true
			continue
		}
		if slices.Contains(siteVars[kind], id) {
			continue
		}
		known = false
		if isSiteVar(id) {
			r.addf("%s: %s is not available in a %s edit, which sees %s and the plan's parameters",
				where, id, kind, strings.Join(siteVars[kind], ", "))
		} else {
			r.addf("%s: %s is not a parameter of the plan", where, id)
		}
	}
	return uses, known
}

// recordLayers notes the blocks in which each per-layer parameter is used: the host
// creates one instance per such block and no more.
func (r *resolver) recordLayers(uses []string, sites []Site) {
	for _, name := range uses {
		if ps, _ := r.specOf(name); ps.Scope == PerLayer {
			if r.layersOf[name] == nil {
				r.layersOf[name] = map[int]bool{}
			}
			for _, s := range sites {
				r.layersOf[name][s.Layer] = true
			}
		}
	}
}

// checkShapes infers e's shape at each site and compares it with what an edit of
// its kind must produce there, so that a wrong plan fails here, with the site
// named, and never during training.
func (r *resolver) checkShapes(where string, ed Edit, e expr.Expr, uses []string, sites []Site) {
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
			ps, _ := r.specOf(name)
			vars[name] = ps.Shape
		}
		want := siteShapes(ed.Kind, s, vars)
		got, err := expr.Infer(e, vars, siteConsts(ed.Kind, s))
		if err != nil {
			r.addf("%s: at site %s: %v in %q", where, s.Name, err, ed.Expr)
			continue
		}
		if !got.Equal(want) {
			r.addf("%s: at site %s the expression has shape %v; a %s must be %v", where, s.Name, got, ed.Kind, want)
		}
	}
}

// siteShapes adds to vars the shapes of the site variables an edit of kind sees at
// s (Any standing for the activations' rows) and returns the shape the edit's
// expression must have.
func siteShapes(kind string, s Site, vars map[string]expr.Shape) (want expr.Shape) {
	if kind == ModuleAfter {
		vars["h"] = expr.Shape{expr.Any, s.Dim}
		return expr.Shape{expr.Any, s.Dim}
	}
	vars["W"] = expr.Shape{s.Out, s.In}
	vars["b"] = expr.Shape{s.Out}
	switch kind {
	case WeightDelta:
		want = expr.Shape{s.Out, s.In}
	case BiasDelta:
		want = expr.Shape{s.Out}
	case OutputBranch:
		vars["x"] = expr.Shape{expr.Any, s.In}
		want = expr.Shape{expr.Any, s.Out}
	}
	return want
}

// siteConsts are the integer constants an edit of kind sees at s.
func siteConsts(kind string, s Site) map[string]float64 {
	if kind == ModuleAfter {
		return map[string]float64{"dim": float64(s.Dim)}
	}
	return map[string]float64{"in": float64(s.In), "out": float64(s.Out)}
}

// checkUnused reports parameters no edit uses: a plugin that declares one has a
// bug, and the host would train a tensor that changes nothing.
func (r *resolver) checkUnused() {
	for i, ps := range r.p.Params {
		// An expression that did not parse may be the one using it: say nothing.
		if r.specs[ps.Name] == i+1 && !r.used[ps.Name] && !r.unparsed && validName(ps.Name) {
			r.addf("param %d (%q): no edit uses it", i, ps.Name)
		}
	}
}

// instances lists the tensors to create, a shared parameter once and a per-layer
// one per block that uses it, and checks that their names collide neither with each
// other nor with the backbone's, since the checkpoint holds them side by side.
func (r *resolver) instances() []Instance {
	var instances []Instance
	owner := map[string]string{}
	claim := func(name, by string) {
		if r.bbParams[name] {
			r.addf("%s: instance %s has a backbone parameter's name", by, name)
		} else if prev, dup := owner[name]; dup && prev != by {
			r.addf("%s: instance %s has the same name as an instance of %s", by, name, prev)
		}
		owner[name] = by
	}
	for i, ps := range r.p.Params {
		if r.specs[ps.Name] != i+1 || !r.used[ps.Name] {
			continue
		}
		by := fmt.Sprintf("param %d (%q)", i, ps.Name)
		if ps.Scope != PerLayer {
			instances = append(instances, Instance{Name: ps.Name, Spec: ps, Layer: -1})
			claim(ps.Name, by)
			continue
		}
		var layers []int
		for l := range r.layersOf[ps.Name] {
			layers = append(layers, l)
		}
		sort.Ints(layers)
		for _, l := range layers {
			name := fmt.Sprintf("blocks.%d.%s", l, ps.Name)
			instances = append(instances, Instance{Name: name, Spec: ps, Layer: l})
			claim(name, by)
		}
	}
	return instances
}

// siteEdits expands the valid plan's edits to one per site, with the site's
// constants substituted and each parameter bound to its instance there, so that the
// host compiles them without interpreting globs or scopes.
func (r *resolver) siteEdits() []SiteEdit {
	var out []SiteEdit
	for i, ed := range r.p.Edits {
		pe := r.edits[i]
		for _, s := range pe.sites {
			bind := map[string]string{}
			for _, name := range pe.uses {
				if ps, _ := r.specOf(name); ps.Scope == PerLayer {
					bind[name] = fmt.Sprintf("blocks.%d.%s", s.Layer, name)
				} else {
					bind[name] = name
				}
			}
			out = append(out, SiteEdit{Site: s, Kind: ed.Kind, Edit: i, Expr: expr.Subst(pe.e, siteConsts(ed.Kind, s)), Bind: bind})
		}
	}
	return out
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
