package train

import (
	"math"
	"math/rand/v2"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// Head is the paper's classifier for every method: BatchNorm1d(D, affine=False)
// followed by Linear(D, C). It is always trainable and costs (D+1)·C parameters.
type Head struct {
	BN   *autograd.BatchNorm
	W, B *autograd.Var
}

// NewHead allocates a head with zero weights (see InitZero, InitRandom, InitFromText).
func NewHead(b core.Backend, dim, classes int) *Head {
	return &Head{
		BN: autograd.NewBatchNorm(b, "head.bn", dim, false),
		W:  autograd.NewParam(b, "head.weight", core.Shape{classes, dim}),
		B:  autograd.NewParam(b, "head.bias", core.Shape{classes}),
	}
}

// Forward maps features [N, D] to logits [N, C].
func (h *Head) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.Linear(h.BN.Forward(tp, x), h.W, h.B)
}

// Params are the head's trainable parameters.
func (h *Head) Params() []*autograd.Var { return []*autograd.Var{h.W, h.B} }

// InitRandom draws the weight like PyTorch's nn.Linear default (uniform ±1/√D), bias 0.
func (h *Head) InitRandom(seed uint64) {
	s := h.W.Shape()
	bound := 1 / math.Sqrt(float64(s[1]))
	rng := rand.New(rand.NewPCG(seed, 0x68656164))
	w := make([]float32, s.Size())
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * bound)
	}
	h.W.Value.Backend().Upload(h.W.Value, w)
	h.B.Value.Backend().Fill(h.B.Value, 0)
}

// InitFromText sets each class's weight row to its L2-normalised text embedding
// (averaged over prompt templates and re-normalised by the caller), bias 0, as the
// paper initialises every method's head.
func (h *Head) InitFromText(classEmbeds [][]float32) {
	s := h.W.Shape()
	w := make([]float32, 0, s.Size())
	for _, row := range classEmbeds {
		w = append(w, row...)
	}
	h.W.Value.Backend().Upload(h.W.Value, w)
	h.B.Value.Backend().Fill(h.B.Value, 0)
}
