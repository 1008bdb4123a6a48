package train

import (
	"fmt"

	"github.com/kadapt/kadapt/core/autograd"
)

// ContrastiveLoss is the supervised contrastive loss of Khosla et al. (2020, their
// L_out), which is SimCLR's NT-Xent when every group holds only the views of one image:
//
//	L = −(1/N) Σ_i (1/|P(i)|) Σ_{p∈P(i)} log( exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ) )
//
// over the rows z_i of x [N, D] after L2 normalisation, where P(i) are the other rows
// with row i's group. Rows whose group has no other member are skipped as anchors (they
// still serve as negatives). It is composed of tape ops, so its gradient is theirs.
func ContrastiveLoss(tp *autograd.Tape, x *autograd.Var, groups []int, temperature float32) *autograd.Var {
	s := x.Shape()
	if len(s) != 2 || s[0] != len(groups) {
		panic(fmt.Sprintf("train: contrastive loss over %v with %d groups (want [N, D] and N groups)", s, len(groups)))
	}
	n := s[0]
	// The self-similarity is masked out of each row's softmax with a large negative
	// constant; exp underflows to exactly zero, so it neither counts nor gets gradient.
	const selfMask = -1e9
	mask := make([]float32, n*n)
	weights := make([]float32, n*n)
	anchors := 0
	for i := range n {
		mask[i*n+i] = selfMask
		var pos []int
		for j := range n {
			if j != i && groups[j] == groups[i] {
				pos = append(pos, j)
			}
		}
		if len(pos) == 0 {
			continue
		}
		anchors++
		for _, j := range pos {
			weights[i*n+j] = 1 / float32(len(pos))
		}
	}
	if anchors == 0 {
		panic("train: contrastive loss with no positive pair")
	}
	for i := range weights {
		weights[i] /= -float32(anchors)
	}
	norm := tp.Sqrt(tp.AddScalar(tp.Sum(tp.Square(x), []int{1}, true), 1e-12))
	z := tp.Div(x, norm)
	sim := tp.Add(tp.Scale(tp.MatMul(z, z, false, true), 1/temperature), tp.Input(mask, n, n))
	return tp.Sum(tp.Mul(tp.LogSoftmax(sim), tp.Input(weights, n, n)), nil, false)
}
