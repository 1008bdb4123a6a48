package optim

import (
	"math"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// clipEps keeps the clip coefficient finite when every gradient is zero; PyTorch's
// clip_grad_norm_ uses the same 1e-6.
const clipEps = 1e-6

// ClipGradNorm scales the gradients of params so that their global L2 norm (over all
// of them together) is at most maxNorm: every gradient is multiplied by
// min(1, maxNorm/(norm+1e-6)), as torch.nn.utils.clip_grad_norm_ does. Parameters
// without a gradient are skipped. It runs entirely as backend ops, so on a GPU nothing
// waits for the host; the returned tensor [1] holds the norm before clipping and
// belongs to the caller (download it for logging, then Release it).
//
// A maxNorm of +Inf only measures the norm; a negative or NaN maxNorm is treated as 0,
// which zeroes the gradients (a negative bound would otherwise flip their signs).
func ClipGradNorm(b core.Backend, params []*autograd.Var, maxNorm float32) *core.Tensor {
	one := core.Shape{1}
	norm := b.Alloc(one)
	for _, p := range params {
		if p != nil && p.Grad != nil {
			b.SumSquares(norm, p.Grad, true)
		}
	}
	b.Unary(core.Sqrt, norm, norm)
	if math.IsInf(float64(maxNorm), 1) {
		return norm
	}
	if !(maxNorm >= 0) {
		maxNorm = 0
	}

	// coef = min(1, maxNorm/(norm+eps)). The interface has Maximum but no Minimum, so
	// compute neg = max(-coef, -1) = -min(coef, 1) and scale by neg·(-1).
	c := b.Alloc(one)
	coef := b.Alloc(one)
	b.Fill(c, clipEps)
	b.Binary(core.Add, coef, norm, c)
	b.Fill(c, -maxNorm)
	neg := b.Alloc(one)
	b.Binary(core.Div, neg, c, coef)
	b.Fill(c, -1)
	b.Binary(core.Maximum, coef, neg, c)
	for _, p := range params {
		if p != nil && p.Grad != nil {
			b.ScaleBy(p.Grad, coef, -1)
		}
	}
	b.Release(c)
	b.Release(neg)
	b.Release(coef)
	return norm
}
