// Package autograd is kadapt's reverse-mode automatic differentiation, written purely
// against core.Backend so that every backend (CPU, CUDA, the float64 reference) trains
// the same graphs.
//
// A Tape records the ops of one forward pass. Each op allocates its output from the
// backend's pool and, when gradients are enabled and some input requires them, records a
// backward closure. Tape.Backward replays the recorded nodes in reverse creation order;
// Each recorded op saves only the tensors its backward closure reads, and
// Tape.ReleaseUnsaved frees the rest of a stretch of work (the backbones call it after
// every transformer block), so a forward pass holds what Backward needs rather than
// every intermediate value. Tape.Reset releases every tensor the tape allocated so that the next step reuses the
// pool instead of growing the heap.
//
// Parameters (NewParam) outlive tapes: their gradients persist and accumulate across
// Backward calls until ZeroGrad, and a frozen parameter (SetTrainable(false)) makes the
// ops that consume it skip the work of its gradient entirely.
//
// Ops panic with a message naming the op and the offending shapes when called with
// inconsistent shapes: such a call is a bug in the graph, not bad user data.
package autograd

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// Var is a node of the graph: a value tensor, an optional gradient, and how to
// propagate that gradient to the node's inputs.
type Var struct {
	Value *core.Tensor
	// Grad is nil until Backward reaches the node. For parameters it persists and
	// accumulates across Backward calls until ZeroGrad. For a Variable the tape owns it
	// and Reset releases it; intermediate nodes lose theirs once Backward has used it.
	Grad *core.Tensor
	Name string

	requiresGrad bool
	param        bool
	trainable    bool
	// ownsGrad marks a gradient the tape allocated for this node (not a parameter's,
	// not a view's), to be released exactly once.
	ownsGrad bool

	// view is the node whose storage Value shares (Reshape). A view's gradient is the
	// reshaped gradient of that node, so nothing needs to be propagated for it.
	view *Var
	// backward adds this node's gradient into its inputs' gradients.
	backward func()
}

// NewParam returns a zero-filled trainable parameter allocated on b. The caller owns
// its value and gradient; no tape ever releases them.
func NewParam(b core.Backend, name string, shape core.Shape) *Var {
	for _, d := range shape {
		if d <= 0 {
			panic(fmt.Sprintf("autograd: NewParam %q: invalid shape %v", name, shape))
		}
	}
	return &Var{Value: allocShape(b, shape), Name: name, param: true, trainable: true, requiresGrad: true}
}

// ParamShape returns a parameter with a name and a shape but no storage: for
// describing a model (its parameter list, its sites) without allocating its weights.
// Its Value has no backend; computing with it panics.
func ParamShape(name string, shape core.Shape) *Var {
	return &Var{Value: core.NewTensor(nil, noStorage(shape.Size()), shape, core.Float32), Name: name, param: true, trainable: true, requiresGrad: true}
}

// noStorage is the storage of a ParamShape: a length and nothing to hold.
type noStorage int

func (n noStorage) Len() int { return int(n) }

// Shape is the shape of the value.
func (v *Var) Shape() core.Shape { return v.Value.Shape() }

// RequiresGrad reports whether Backward computes a gradient for v.
func (v *Var) RequiresGrad() bool {
	if v.param {
		return v.trainable
	}
	return v.requiresGrad
}

// IsParam reports whether v was made by NewParam.
func (v *Var) IsParam() bool { return v.param }

// Trainable reports whether a parameter receives gradients (false for non-parameters).
func (v *Var) Trainable() bool { return v.param && v.trainable }

// SetTrainable freezes or unfreezes a parameter. Ops recorded while a parameter is
// frozen neither allocate nor compute its gradient.
func (v *Var) SetTrainable(on bool) {
	if !v.param {
		panic(fmt.Sprintf("autograd: SetTrainable on %q, which is not a parameter", v.Name))
	}
	v.trainable = on
	v.requiresGrad = on
}

// ZeroGrad zeroes the persistent gradient buffer in place, keeping it allocated so the
// next Backward reuses it.
func (v *Var) ZeroGrad() {
	if v.Grad != nil {
		v.Grad.Backend().Fill(v.Grad, 0)
	}
}

// allocShape allocates a tensor of any rank. A rank-0 (scalar) shape is allocated as
// [1] and viewed as []; both handles share the storage.
func allocShape(b core.Backend, shape core.Shape) *core.Tensor {
	if len(shape) == 0 {
		return b.Alloc(core.Shape{1}).Reshape()
	}
	return b.Alloc(shape)
}

// allocUninitShape is allocShape without the zero fill (core.AllocUninit).
func allocUninitShape(b core.Backend, shape core.Shape) *core.Tensor {
	if len(shape) == 0 {
		return core.AllocUninit(b, core.Shape{1}).Reshape()
	}
	return core.AllocUninit(b, shape)
}
