package autograd

// PatchEmbed is the non-overlapping convolution of a ViT's patch embedding: x
// [N,C,H,W] with w [D,C,P,P] and bias [D] (or nil) gives [N, (H/P)·(W/P), D], patches in
// row-major order like PyTorch's conv followed by flatten(2).transpose(1, 2). It cuts x
// into patches with a reshape and a permute (im2col) and multiplies once.
func (tp *Tape) PatchEmbed(x, w, bias *Var, patch int) *Var {
	xs, ws := x.Shape(), w.Shape()
	if patch <= 0 || len(xs) != 4 || len(ws) != 4 || ws[1] != xs[1] || ws[2] != patch || ws[3] != patch ||
		xs[2]%patch != 0 || xs[3]%patch != 0 {
		shapePanic("patch_embed", "x %v, weight %v, patch %d (want x [N,C,H,W], weight [D,C,P,P], H and W multiples of P)", xs, ws, patch)
	}
	nb, c, gh, gw, d := xs[0], xs[1], xs[2]/patch, xs[3]/patch, ws[0]
	p := tp.Reshape(x, nb, c, gh, patch, gw, patch)
	p = tp.Permute(p, 0, 2, 4, 1, 3, 5)
	p = tp.Reshape(p, nb*gh*gw, c*patch*patch)
	y := tp.Linear(p, tp.Reshape(w, d, c*patch*patch), bias)
	return tp.Reshape(y, nb, gh*gw, d)
}
