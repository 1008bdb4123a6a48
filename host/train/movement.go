package train

import (
	"math"
	"regexp"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// A method can declare a trainable parameter that, by the scale of its initialisation,
// never trains: KAdaptation's first parametrisation received about 1e-8 of a LoRA
// factor's effective learning rate, and its accuracy equalled the linear probe's to
// every digit. The movement diagnostic makes that visible in every run: per group of
// trainable parameters it records how far the group moved and how much gradient
// reached it, and flags the groups that did not move.
//
// Groups are the trainable parameters' names with the block index replaced by *
// (adapt.blocks.*.q.fast.u is the plan's per-layer q.fast.u over every block;
// blocks.*.attn.q.bias is that backbone bias in every block), and the head's weight
// and bias together as "head".

// MovementEpsPerScalar sets the floor of the relative change's denominator: a group of
// N scalars is measured against max(‖θ_start‖, MovementEpsPerScalar·√N), so a group
// that starts at zero (LoRA's B, KAdaptation's v, biases) counts as having moved once
// its root-mean-square entry passes MovementEpsPerScalar·MovedThreshold.
const MovementEpsPerScalar = 1e-3

// MovedThreshold is the relative change below which a group did not move. Float32
// resolves about 1e-7 relative per entry, and one plain SGD step at the paper's
// learning rates moves a trained parameter by 1e-4 to 1e-2 relative, so 1e-4 over a
// whole run is far below anything that trains and far above rounding.
const MovedThreshold = 1e-4

// GroupMovement is one group's line of the diagnostic.
type GroupMovement struct {
	Group  string `json:"group"`
	Params int64  `json:"params"` // scalars in the group
	// StartNorm is ‖θ_start‖ over the group; RelChange is ‖θ_end − θ_start‖ /
	// max(‖θ_start‖, MovementEpsPerScalar·√Params), θ_end being the weights after the
	// last step (before the selected epoch's weights are restored).
	StartNorm float64 `json:"start_norm"`
	RelChange float64 `json:"rel_change"`
	// GradNormFirst and GradNormLast are the group's gradient norm at the first and
	// last optimizer step, before clipping.
	GradNormFirst float64 `json:"grad_norm_first"`
	GradNormLast  float64 `json:"grad_norm_last"`
	Moved         bool    `json:"moved"` // RelChange ≥ MovedThreshold
	// Note says why a group receives no gradient by design (NoGradientByDesign).
	Note string `json:"note,omitempty"`
}

// NoGradientByDesign are backbone groups that no method can train, with the reason:
// full fine-tuning trains them (the paper counts them) and they stay where they
// started.
var NoGradientByDesign = map[string]string{
	"blocks.*.attn.k.bias": "softmax ignores a key bias: it shifts all of a query's attention logits alike",
	"ln_post.bias":         "the head's BatchNorm subtracts a shift shared by every example",
	"norm.bias":            "the head's BatchNorm subtracts a shift shared by every example",
}

// Movement is the diagnostic of a run.
type Movement struct {
	// FromStep is the optimizer step the measurement starts at: 0, or the step a
	// resumed run continued from (the start weights are this process's).
	FromStep int             `json:"from_step"`
	Groups   []GroupMovement `json:"groups"`
}

// Inert lists the groups that did not move.
func (m *Movement) Inert() []GroupMovement {
	var out []GroupMovement
	if m == nil {
		return nil
	}
	for _, g := range m.Groups {
		if !g.Moved {
			out = append(out, g)
		}
	}
	return out
}

var blockIndex = regexp.MustCompile(`(^|\.)blocks\.[0-9]+\.`)

// MovementGroup is the group a trainable parameter's name belongs to.
func MovementGroup(name string) string {
	if name == "head.weight" || name == "head.bias" {
		return "head"
	}
	return blockIndex.ReplaceAllString(name, "${1}blocks.*.")
}

// movementTracker holds a run's start weights on the host and one gradient-norm
// accumulator per group on the backend, filled every step without a device sync and
// read at the first step and at the end.
type movementTracker struct {
	b        core.Backend
	fromStep int
	groups   []trackedGroup
	seen     bool // the first step's norms were read
}

type trackedGroup struct {
	name      string
	params    []*autograd.Var
	start     [][]float32
	size      int64
	sumSq     *core.Tensor
	gradFirst float64
}

func newMovementTracker(b core.Backend, params []*autograd.Var, fromStep int) *movementTracker {
	t := &movementTracker{b: b, fromStep: fromStep}
	index := map[string]int{}
	for _, p := range params {
		name := MovementGroup(p.Name)
		i, ok := index[name]
		if !ok {
			i = len(t.groups)
			index[name] = i
			t.groups = append(t.groups, trackedGroup{name: name, sumSq: b.Alloc(core.Shape{1})})
		}
		g := &t.groups[i]
		d := make([]float32, p.Value.Size())
		b.Download(d, p.Value)
		g.params = append(g.params, p)
		g.start = append(g.start, d)
		g.size += int64(len(d))
	}
	return t
}

// afterBackward accumulates the step's squared gradient norms per group.
func (t *movementTracker) afterBackward() {
	for i := range t.groups {
		g := &t.groups[i]
		t.b.Fill(g.sumSq, 0)
		for _, p := range g.params {
			if p.Grad != nil {
				t.b.SumSquares(g.sumSq, p.Grad, true)
			}
		}
	}
	if !t.seen {
		t.seen = true
		for i := range t.groups {
			t.groups[i].gradFirst = t.norm(t.groups[i].sumSq)
		}
	}
}

func (t *movementTracker) norm(sumSq *core.Tensor) float64 {
	var v [1]float32
	t.b.Download(v[:], sumSq)
	return math.Sqrt(float64(v[0]))
}

// result measures the current weights against the start weights; nil when this
// process ran no step (a resumed run that had already finished).
func (t *movementTracker) result() *Movement {
	if !t.seen {
		return nil
	}
	m := &Movement{FromStep: t.fromStep}
	for _, g := range t.groups {
		var start, diff float64
		for j, p := range g.params {
			d := make([]float32, p.Value.Size())
			t.b.Download(d, p.Value)
			for k, s := range g.start[j] {
				start += float64(s) * float64(s)
				e := float64(d[k]) - float64(s)
				diff += e * e
			}
		}
		gm := GroupMovement{Group: g.name, Params: g.size, StartNorm: math.Sqrt(start)}
		gm.RelChange = math.Sqrt(diff) / math.Max(gm.StartNorm, MovementEpsPerScalar*math.Sqrt(float64(g.size)))
		gm.GradNormFirst, gm.GradNormLast = g.gradFirst, t.norm(g.sumSq)
		gm.Moved = gm.RelChange >= MovedThreshold
		if !gm.Moved {
			gm.Note = NoGradientByDesign[g.name]
		}
		m.Groups = append(m.Groups, gm)
	}
	return m
}

func (t *movementTracker) release() {
	for _, g := range t.groups {
		t.b.Release(g.sumSq)
	}
}
