package ref

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

func (*backend) LayerNorm(dst, mean, rstd, x, gamma, beta *core.Tensor, eps float32) {
	const op = "LayerNorm"
	d, xs := vals(dst, op, "dst"), vals(x, op, "x")
	sameShape(op, dst, x)
	D := lastAxis(op, x)
	nrows := 0
	if D > 0 {
		nrows = len(xs) / D
	}
	var mu, rs, g, b []float64
	if mean != nil {
		mu = vals(mean, op, "mean")
	}
	if rstd != nil {
		rs = vals(rstd, op, "rstd")
	}
	if gamma != nil {
		g = vals(gamma, op, "gamma")
	}
	if beta != nil {
		b = vals(beta, op, "beta")
	}
	if (mu != nil && len(mu) != nrows) || (rs != nil && len(rs) != nrows) ||
		(g != nil && len(g) != D) || (b != nil && len(b) != D) {
		panic(fmt.Sprintf("ref: LayerNorm: x %v needs mean and rstd of %d and gamma and beta of %d; got %v, %v, %v, %v",
			x, nrows, D, mean, rstd, gamma, beta))
	}
	for r := range nrows {
		row := xs[r*D : (r+1)*D]
		m := 0.0
		for _, v := range row {
			m += v
		}
		m /= float64(D)
		vr := 0.0
		for _, v := range row {
			vr += (v - m) * (v - m)
		}
		vr /= float64(D)
		inv := 1 / math.Sqrt(vr+float64(eps))
		for j, v := range row {
			y := (v - m) * inv
			if g != nil {
				y *= g[j]
			}
			if b != nil {
				y += b[j]
			}
			d[r*D+j] = y
		}
		if mu != nil {
			mu[r] = m
		}
		if rs != nil {
			rs[r] = inv
		}
	}
}

func (*backend) LayerNormGrad(dx, dgamma, dbeta, dy, x, mean, rstd, gamma *core.Tensor, accumulate bool) {
	const op = "LayerNormGrad"
	d, g, xs := vals(dx, op, "dx"), vals(dy, op, "dy"), vals(x, op, "x")
	mu, rs := vals(mean, op, "mean"), vals(rstd, op, "rstd")
	sameShape(op, dx, x)
	sameShape(op, dy, x)
	D := lastAxis(op, x)
	nrows := 0
	if D > 0 {
		nrows = len(xs) / D
	}
	var gm, dg, db []float64
	if gamma != nil {
		gm = vals(gamma, op, "gamma")
	}
	if dgamma != nil {
		dg = vals(dgamma, op, "dgamma")
	}
	if dbeta != nil {
		db = vals(dbeta, op, "dbeta")
	}
	if len(mu) != nrows || len(rs) != nrows || (gm != nil && len(gm) != D) ||
		(dg != nil && len(dg) != D) || (db != nil && len(db) != D) {
		panic(fmt.Sprintf("ref: LayerNormGrad: x %v needs mean and rstd of %d and gamma, dgamma, dbeta of %d; got %v, %v, %v, %v, %v",
			x, nrows, D, mean, rstd, gamma, dgamma, dbeta))
	}
	xhat := make([]float64, D)
	gh := make([]float64, D)
	for r := range nrows {
		off := r * D
		meanG, meanGX := 0.0, 0.0
		for j := range D {
			xhat[j] = (xs[off+j] - mu[r]) * rs[r]
			gh[j] = g[off+j]
			if gm != nil {
				gh[j] *= gm[j]
			}
			meanG += gh[j]
			meanGX += gh[j] * xhat[j]
			if dg != nil {
				dg[j] += g[off+j] * xhat[j]
			}
			if db != nil {
				db[j] += g[off+j]
			}
		}
		meanG /= float64(D)
		meanGX /= float64(D)
		for j := range D {
			v := rs[r] * (gh[j] - meanG - xhat[j]*meanGX)
			if accumulate {
				d[off+j] += v
			} else {
				d[off+j] = v
			}
		}
	}
}
