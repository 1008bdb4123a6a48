package cpu

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

type layerNormKernel struct {
	d, mean, rstd, x, gamma, beta []float32
	cols                          int
	eps                           float64
}

func (k layerNormKernel) run(lo, hi int) {
	n := float64(k.cols)
	for r := lo; r < hi; r++ {
		x := k.x[r*k.cols : (r+1)*k.cols]
		d := k.d[r*k.cols : (r+1)*k.cols]
		// Two passes: the one-pass E[x²]-E[x]² cancels badly for activations with a
		// large mean, which ViT residual streams have.
		var s float64
		for _, v := range x {
			s += float64(v)
		}
		mu := s / n
		var ss float64
		for _, v := range x {
			c := float64(v) - mu
			ss += c * c
		}
		rstd := 1 / math.Sqrt(ss/n+k.eps)
		if k.mean != nil {
			k.mean[r] = float32(mu)
		}
		if k.rstd != nil {
			k.rstd[r] = float32(rstd)
		}
		switch {
		case k.gamma != nil && k.beta != nil:
			g, be := k.gamma[:len(x)], k.beta[:len(x)]
			for i, v := range x {
				d[i] = float32((float64(v)-mu)*rstd*float64(g[i]) + float64(be[i]))
			}
		case k.gamma != nil:
			g := k.gamma[:len(x)]
			for i, v := range x {
				d[i] = float32((float64(v) - mu) * rstd * float64(g[i]))
			}
		case k.beta != nil:
			be := k.beta[:len(x)]
			for i, v := range x {
				d[i] = float32((float64(v)-mu)*rstd + float64(be[i]))
			}
		default:
			for i, v := range x {
				d[i] = float32((float64(v) - mu) * rstd)
			}
		}
	}
}

// LayerNorm normalises x over its last axis, optionally with affine gamma and beta,
// and records each row's mean and 1/std in mean and rstd (either may be nil).
func (b *Backend) LayerNorm(dst, mean, rstd, x, gamma, beta *core.Tensor, eps float32) {
	checkSameSize("LayerNorm", dst, x)
	rows, cols := lastAxis(x)
	for _, p := range [...]struct {
		name string
		t    *core.Tensor
		want int
	}{{"mean", mean, rows}, {"rstd", rstd, rows}, {"gamma", gamma, cols}, {"beta", beta, cols}} {
		if p.t != nil && p.t.Size() != p.want {
			panic(fmt.Sprintf("cpu: LayerNorm: %s has shape %v, want %d elements for x %v", p.name, p.t.Shape(), p.want, x.Shape()))
		}
	}
	if rows == 0 {
		return
	}
	k := layerNormKernel{
		d: b.f32(dst, "LayerNorm"), mean: b.opt(mean, "LayerNorm"), rstd: b.opt(rstd, "LayerNorm"),
		x: b.f32(x, "LayerNorm"), gamma: b.opt(gamma, "LayerNorm"), beta: b.opt(beta, "LayerNorm"),
		cols: cols, eps: float64(eps),
	}
	forEach(k, rows, cols)
}

type layerNormGradKernel struct {
	dx, dy, x, mean, rstd, gamma []float32
	cols                         int
	acc                          bool
}

// run computes dx for rows [lo, hi): with x̂ = (x-μ)·rstd and g = dy·γ,
// dx = rstd·(g - mean(g) - x̂·mean(g·x̂)).
func (k layerNormGradKernel) run(lo, hi int) {
	n := float64(k.cols)
	for r := lo; r < hi; r++ {
		x := k.x[r*k.cols : (r+1)*k.cols]
		dy := k.dy[r*k.cols : (r+1)*k.cols]
		dx := k.dx[r*k.cols : (r+1)*k.cols]
		mu, rs := float64(k.mean[r]), float64(k.rstd[r])
		var sg, sgx float64
		for i, v := range x {
			g := float64(dy[i])
			if k.gamma != nil {
				g *= float64(k.gamma[i])
			}
			sg += g
			sgx += g * (float64(v) - mu) * rs
		}
		sg /= n
		sgx /= n
		for i, v := range x {
			g := float64(dy[i])
			if k.gamma != nil {
				g *= float64(k.gamma[i])
			}
			xh := (float64(v) - mu) * rs
			out := float32(rs * (g - sg - xh*sgx))
			if k.acc {
				dx[i] += out
			} else {
				dx[i] = out
			}
		}
	}
}

// layerNormParamKernel sums dγ = Σ dy·x̂ and dβ = Σ dy over rows for columns [lo, hi).
// Splitting columns rather than rows keeps each sum in one goroutine, in row order, so
// the result does not depend on the number of workers.
type layerNormParamKernel struct {
	dgamma, dbeta, dy, x, mean, rstd []float32
	accG, accB                       []float64
	rows, cols                       int
}

func (k layerNormParamKernel) run(lo, hi int) {
	accG, accB := k.accG[lo:hi], k.accB[lo:hi]
	clear(accG)
	clear(accB)
	for r := 0; r < k.rows; r++ {
		dy := k.dy[r*k.cols+lo : r*k.cols+hi]
		mu, rs := float64(k.mean[r]), float64(k.rstd[r])
		if k.dgamma != nil {
			x := k.x[r*k.cols+lo : r*k.cols+hi]
			for i, g := range dy {
				accG[i] += float64(g) * (float64(x[i]) - mu) * rs
			}
		}
		if k.dbeta != nil {
			for i, g := range dy {
				accB[i] += float64(g)
			}
		}
	}
	if k.dgamma != nil {
		for i, v := range accG {
			k.dgamma[lo+i] = float32(float64(k.dgamma[lo+i]) + v)
		}
	}
	if k.dbeta != nil {
		for i, v := range accB {
			k.dbeta[lo+i] = float32(float64(k.dbeta[lo+i]) + v)
		}
	}
}

// LayerNormGrad computes dx (+)= ∂L/∂x and adds ∂L/∂γ, ∂L/∂β into dgamma and dbeta.
// dx, dgamma, dbeta and gamma may each be nil.
func (b *Backend) LayerNormGrad(dx, dgamma, dbeta, dy, x, mean, rstd, gamma *core.Tensor, accumulate bool) {
	checkSameSize("LayerNormGrad", dy, x)
	rows, cols := lastAxis(x)
	for _, p := range [...]struct {
		name string
		t    *core.Tensor
		want int
	}{{"dx", dx, rows * cols}, {"mean", mean, rows}, {"rstd", rstd, rows},
		{"gamma", gamma, cols}, {"dgamma", dgamma, cols}, {"dbeta", dbeta, cols}} {
		if p.t != nil && p.t.Size() != p.want {
			panic(fmt.Sprintf("cpu: LayerNormGrad: %s has shape %v, want %d elements for x %v", p.name, p.t.Shape(), p.want, x.Shape()))
		}
	}
	if mean == nil || rstd == nil {
		panic("cpu: LayerNormGrad: mean and rstd from the forward pass are required")
	}
	if rows == 0 {
		return
	}
	dyd, xd := b.f32(dy, "LayerNormGrad"), b.f32(x, "LayerNormGrad")
	md, rd := b.f32(mean, "LayerNormGrad"), b.f32(rstd, "LayerNormGrad")
	if dx != nil {
		forEach(layerNormGradKernel{
			dx: b.f32(dx, "LayerNormGrad"), dy: dyd, x: xd, mean: md, rstd: rd,
			gamma: b.opt(gamma, "LayerNormGrad"), cols: cols, acc: accumulate,
		}, rows, cols)
	}
	if dgamma == nil && dbeta == nil {
		return
	}
	sp := b.getScratch(2 * cols)
	k := layerNormParamKernel{
		dgamma: b.opt(dgamma, "LayerNormGrad"), dbeta: b.opt(dbeta, "LayerNormGrad"),
		dy: dyd, x: xd, mean: md, rstd: rd,
		accG: (*sp)[:cols], accB: (*sp)[cols:], rows: rows, cols: cols,
	}
	forEach(k, cols, rows)
	b.putScratch(sp)
}
