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

// run normalises rows [lo, hi). Each row's two sums run strictly in element order (so
// results do not depend on how rows are grouped), four rows at a time: a float64 sum
// is one chain of dependent additions, and four independent chains keep the adder
// busy where one waits out each addition's latency.
func (k layerNormKernel) run(lo, hi int) {
	r := lo
	for ; r+4 <= hi; r += 4 {
		mu, rstd := k.stats4(r)
		for j := range 4 {
			k.normalize(r+j, mu[j], rstd[j])
		}
	}
	for ; r < hi; r++ {
		mu, rstd := k.stats(r)
		k.normalize(r, mu, rstd)
	}
}

// stats returns row r's mean and 1/std, in two passes: the one-pass E[x²]-E[x]²
// cancels badly for activations with a large mean, which ViT residual streams have.
func (k layerNormKernel) stats(r int) (mu, rstd float64) {
	n := float64(k.cols)
	x := k.x[r*k.cols : (r+1)*k.cols]
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	mu = s / n
	var ss float64
	for _, v := range x {
		c := float64(v) - mu
		ss += c * c
	}
	return mu, 1 / math.Sqrt(ss/n+k.eps)
}

// stats4 is stats for rows r to r+3, with the same operations in the same order per row.
func (k layerNormKernel) stats4(r int) (mu, rstd [4]float64) {
	n, c := float64(k.cols), k.cols
	x0 := k.x[r*c : (r+1)*c]
	x1 := k.x[(r+1)*c : (r+2)*c][:len(x0)]
	x2 := k.x[(r+2)*c : (r+3)*c][:len(x0)]
	x3 := k.x[(r+3)*c : (r+4)*c][:len(x0)]
	var s0, s1, s2, s3 float64
	for i, v := range x0 {
		s0 += float64(v)
		s1 += float64(x1[i])
		s2 += float64(x2[i])
		s3 += float64(x3[i])
	}
	m0, m1, m2, m3 := s0/n, s1/n, s2/n, s3/n
	var q0, q1, q2, q3 float64
	for i, v := range x0 {
		c0 := float64(v) - m0
		c1 := float64(x1[i]) - m1
		c2 := float64(x2[i]) - m2
		c3 := float64(x3[i]) - m3
		q0 += c0 * c0
		q1 += c1 * c1
		q2 += c2 * c2
		q3 += c3 * c3
	}
	mu = [4]float64{m0, m1, m2, m3}
	for j, q := range [4]float64{q0, q1, q2, q3} {
		rstd[j] = 1 / math.Sqrt(q/n+k.eps)
	}
	return mu, rstd
}

// normalize records row r's statistics and writes its normalised, affine-transformed
// values.
func (k layerNormKernel) normalize(r int, mu, rstd float64) {
	x := k.x[r*k.cols : (r+1)*k.cols]
	d := k.d[r*k.cols : (r+1)*k.cols]
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
// dx = rstd·(g - mean(g) - x̂·mean(g·x̂)). The two row sums run in element order,
// four rows at a time as in layerNormKernel.
func (k layerNormGradKernel) run(lo, hi int) {
	r := lo
	for ; r+4 <= hi; r += 4 {
		sg, sgx := k.sums4(r)
		for j := range 4 {
			k.write(r+j, sg[j], sgx[j])
		}
	}
	for ; r < hi; r++ {
		sg, sgx := k.sums(r)
		k.write(r, sg, sgx)
	}
}

// sums returns mean(g) and mean(g·x̂) over row r.
func (k layerNormGradKernel) sums(r int) (sg, sgx float64) {
	x := k.x[r*k.cols : (r+1)*k.cols]
	dy := k.dy[r*k.cols : (r+1)*k.cols]
	mu, rs := float64(k.mean[r]), float64(k.rstd[r])
	for i, v := range x {
		g := float64(dy[i])
		if k.gamma != nil {
			g *= float64(k.gamma[i])
		}
		sg += g
		sgx += g * (float64(v) - mu) * rs
	}
	n := float64(k.cols)
	return sg / n, sgx / n
}

// sums4 is sums for rows r to r+3, with the same operations in the same order per row.
func (k layerNormGradKernel) sums4(r int) (sg, sgx [4]float64) {
	c := k.cols
	var x, dy [4][]float32
	var mu, rs [4]float64
	for j := range 4 {
		x[j] = k.x[(r+j)*c : (r+j+1)*c]
		dy[j] = k.dy[(r+j)*c : (r+j+1)*c][:len(x[j])]
		mu[j], rs[j] = float64(k.mean[r+j]), float64(k.rstd[r+j])
	}
	x0, x1, x2, x3 := x[0], x[1][:len(x[0])], x[2][:len(x[0])], x[3][:len(x[0])]
	d0, d1, d2, d3 := dy[0][:len(x0)], dy[1][:len(x0)], dy[2][:len(x0)], dy[3][:len(x0)]
	var a0, a1, a2, a3, b0, b1, b2, b3 float64
	if k.gamma != nil {
		gm := k.gamma[:len(x0)]
		for i := range x0 {
			gi := float64(gm[i])
			g0, g1, g2, g3 := float64(d0[i])*gi, float64(d1[i])*gi, float64(d2[i])*gi, float64(d3[i])*gi
			a0 += g0
			a1 += g1
			a2 += g2
			a3 += g3
			b0 += g0 * (float64(x0[i]) - mu[0]) * rs[0]
			b1 += g1 * (float64(x1[i]) - mu[1]) * rs[1]
			b2 += g2 * (float64(x2[i]) - mu[2]) * rs[2]
			b3 += g3 * (float64(x3[i]) - mu[3]) * rs[3]
		}
	} else {
		for i := range x0 {
			g0, g1, g2, g3 := float64(d0[i]), float64(d1[i]), float64(d2[i]), float64(d3[i])
			a0 += g0
			a1 += g1
			a2 += g2
			a3 += g3
			b0 += g0 * (float64(x0[i]) - mu[0]) * rs[0]
			b1 += g1 * (float64(x1[i]) - mu[1]) * rs[1]
			b2 += g2 * (float64(x2[i]) - mu[2]) * rs[2]
			b3 += g3 * (float64(x3[i]) - mu[3]) * rs[3]
		}
	}
	n := float64(c)
	return [4]float64{a0 / n, a1 / n, a2 / n, a3 / n}, [4]float64{b0 / n, b1 / n, b2 / n, b3 / n}
}

// write computes row r's dx from its means of g and g·x̂.
func (k layerNormGradKernel) write(r int, sg, sgx float64) {
	x := k.x[r*k.cols : (r+1)*k.cols]
	dy := k.dy[r*k.cols : (r+1)*k.cols]
	dx := k.dx[r*k.cols : (r+1)*k.cols]
	mu, rs := float64(k.mean[r]), float64(k.rstd[r])
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
