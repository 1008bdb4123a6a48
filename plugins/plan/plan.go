// Package plan holds what a method plugin and the host exchange, independent of the
// transport: the description of a backbone (its sites and parameters) that the host
// sends, and the plan (new parameters, trainable backbone parameters, edits at sites)
// that the plugin answers with.
//
// Validate checks a plan against a backbone, reporting every problem at once; Resolve
// does the same and expands the plan's globs and per-layer parameters into the
// concrete list of parameter instances and site edits the host compiles;
// CountTrainable counts what a plan trains.
//
// # Sites and names
//
// Per block i a backbone has the linear sites blocks.i.attn.{q,k,v,out} and
// blocks.i.mlp.{fc1,fc2} and the residual-branch sites blocks.i.attn and blocks.i.mlp.
// Its parameters are named blocks.i.ln1.{weight,bias}, blocks.i.attn.q.weight, …,
// embed.patch.weight, embed.cls, embed.pos, ln_pre.*, ln_post.* (norm.* for a plain
// ViT) and proj.
//
// # Edits
//
// An edit names sites by a glob and gives an expression (package expr) whose meaning
// depends on its kind:
//
//	weight_delta   ΔW added to a linear site's weight: [Out, In]; sees W, b, in, out
//	bias_delta     Δb added to a linear site's bias: [Out]; sees W, b, in, out
//	output_branch  added to a linear site's output, a function of its input x [*, In]
//	               giving [*, Out]; sees x, W, b, in, out
//	module_after   replaces a residual branch's output h [*, Dim] by the expression's
//	               value, [*, Dim]; sees h, dim
//
// Besides these, an expression refers to the plan's parameters by name. A shared
// parameter is one tensor wherever it is used. A per-layer parameter is written
// without a block prefix (q.fast.u) and has one instance per block that an edit using
// it touches, named blocks.<i>.<name> by the host.
//
// # Globs
//
// Site and parameter patterns are globs: * matches any run of characters (dots
// included), ? one character, and {a,b} either alternative; everything else matches
// itself. So blocks.*.attn.{q,v} matches the q and v sites of every block and *.ln*
// matches blocks.3.ln1.weight.
package plan

// Edit kinds.
const (
	WeightDelta  = "weight_delta"
	BiasDelta    = "bias_delta"
	OutputBranch = "output_branch"
	ModuleAfter  = "module_after"
)

// Site kinds.
const (
	Linear   = "linear"
	Residual = "residual"
)

// Parameter scopes.
const (
	Shared   = "shared"
	PerLayer = "per_layer"
)

// Trainable modes.
const (
	TrainNone     = "none"
	TrainAll      = "all"
	TrainPatterns = "patterns"
)

// Init kinds.
const (
	Zeros          = "zeros"
	Ones           = "ones"
	Normal         = "normal"
	Uniform        = "uniform"
	KaimingUniform = "kaiming_uniform"
	GlorotUniform  = "glorot_uniform"
)

// Backbone describes a pretrained model to a plugin: its sizes, its sites and its own
// parameters.
type Backbone struct {
	Name     string      `json:"name"`
	Layers   int         `json:"layers"`
	Width    int         `json:"width"`
	Heads    int         `json:"heads"`
	MLPDim   int         `json:"mlp_dim"`
	EmbedDim int         `json:"embed_dim"`
	Sites    []Site      `json:"sites"`
	Params   []ParamInfo `json:"params"`
	// Budget bounds what plans for this backbone may allocate; zero fields mean
	// DefaultBudget's. It is the host's setting and never sent to plugins.
	Budget Budget `json:"-"`
}

// Site is a place in the backbone where edits attach.
type Site struct {
	Name  string `json:"name"`  // e.g. "blocks.3.attn.q"
	Kind  string `json:"kind"`  // Linear or Residual
	Layer int    `json:"layer"` // the block the site belongs to
	In    int    `json:"in,omitempty"`
	Out   int    `json:"out,omitempty"`
	Dim   int    `json:"dim,omitempty"`
}

// ParamInfo is one of the backbone's own parameters.
type ParamInfo struct {
	Name  string `json:"name"` // e.g. "blocks.3.attn.q.weight"
	Shape []int  `json:"shape"`
}

// Plan is a method's answer: what to add to and change in a backbone.
type Plan struct {
	Method    string        `json:"method"`
	Version   string        `json:"version"`
	Params    []ParamSpec   `json:"params"`
	Trainable TrainableSpec `json:"trainable"`
	Edits     []Edit        `json:"edits"`
	Notes     string        `json:"notes,omitempty"`
}

// ParamSpec declares a new parameter.
type ParamSpec struct {
	Name      string `json:"name"`
	Shape     []int  `json:"shape"`
	Init      Init   `json:"init"`
	Scope     string `json:"scope"` // Shared or PerLayer
	Trainable bool   `json:"trainable"`
}

// Init says how a new parameter starts. The fields that a kind does not use must be
// zero. With fanIn and fanOut as Fans computes them (PyTorch's convention):
//
//	zeros, ones      constant
//	normal           N(0, Std²), Std > 0
//	uniform          U(Low, High), Low < High
//	kaiming_uniform  U(-k, k), k = √(6 / ((1 + A²)·fanIn)), A ≥ 0 (PyTorch's kaiming_uniform_)
//	glorot_uniform   U(-k, k), k = Gain·√(6 / (fanIn + fanOut)), Gain 0 meaning 1
type Init struct {
	Kind string  `json:"kind"`
	Std  float64 `json:"std,omitempty"`
	Low  float64 `json:"low,omitempty"`
	High float64 `json:"high,omitempty"`
	A    float64 `json:"a,omitempty"`
	Gain float64 `json:"gain,omitempty"`
}

// Fans returns a shape's fan-in and fan-out as PyTorch computes them: dimension 1 and
// dimension 0, each times the product of the dimensions after the second. Shapes of
// rank below 2 have no fans and give 0, 0.
func Fans(shape []int) (fanIn, fanOut int) {
	if len(shape) < 2 {
		return 0, 0
	}
	field := 1
	for _, d := range shape[2:] {
		field *= d
	}
	return shape[1] * field, shape[0] * field
}

// TrainableSpec selects which of the backbone's own parameters train.
type TrainableSpec struct {
	Mode     string   `json:"mode"`               // TrainNone, TrainAll or TrainPatterns
	Patterns []string `json:"patterns,omitempty"` // globs over backbone parameter names
	// FromLayer and ToLayer, when ToLayer > 0, restrict block parameters
	// (blocks.<i>.…) to FromLayer ≤ i < ToLayer; parameters outside the blocks are
	// selected by Mode and Patterns alone.
	FromLayer int `json:"from_layer,omitempty"`
	ToLayer   int `json:"to_layer,omitempty"`
}

// Edit changes the backbone at every site its glob matches.
type Edit struct {
	Site string `json:"site"` // glob over site names
	Kind string `json:"kind"` // WeightDelta, BiasDelta, OutputBranch or ModuleAfter
	Expr string `json:"expr"`
}
