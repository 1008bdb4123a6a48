package autograd_test

import (
	"math"

	"gonum.org/v1/gonum/mat"
)

// Float64 host computations that the forward values are checked against. They share no
// code with the package: products and Kronecker products go through gonum, the rest are
// plain loops over row-major indices.

// float32c rounds an op constant the way the op's float32 parameter does.
func float32c(v float64) float64 { return float64(float32(v)) }

func mapHost(x []float64, f func(float64) float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = f(v)
	}
	return out
}

// hostMatMul multiplies batch pairs of op(a) [m,k] and op(b) [k,n]; a shared operand
// is one matrix used for every batch entry.
func hostMatMul(a, b []float64, batch, m, k, n int, transA, transB, aShared, bShared bool) []float64 {
	var out []float64
	for i := range batch {
		ao, bo := i*m*k, i*k*n
		if aShared {
			ao = 0
		}
		if bShared {
			bo = 0
		}
		var am, bm mat.Matrix
		if transA {
			am = mat.NewDense(k, m, append([]float64(nil), a[ao:ao+m*k]...)).T()
		} else {
			am = mat.NewDense(m, k, append([]float64(nil), a[ao:ao+m*k]...))
		}
		if transB {
			bm = mat.NewDense(n, k, append([]float64(nil), b[bo:bo+k*n]...)).T()
		} else {
			bm = mat.NewDense(k, n, append([]float64(nil), b[bo:bo+k*n]...))
		}
		var c mat.Dense
		c.Mul(am, bm)
		out = append(out, c.RawMatrix().Data...)
	}
	return out
}

func hostLinear(x, w, bias []float64, rows, in, outF int) []float64 {
	y := hostMatMul(x, w, 1, rows, in, outF, false, true, true, true)
	if bias != nil {
		for r := range rows {
			for j := range outF {
				y[r*outF+j] += bias[j]
			}
		}
	}
	return y
}

// hostReduce sums (or averages) x of the given shape over axes; the result lists the
// remaining axes in row-major order.
func hostReduce(x []float64, shape, axes []int, mean bool) []float64 {
	reduced := make([]bool, len(shape))
	for _, a := range axes {
		reduced[a] = true
	}
	outShape := make([]int, len(shape))
	count := 1
	for i, d := range shape {
		outShape[i] = d
		if reduced[i] {
			outShape[i] = 1
			count *= d
		}
	}
	out := make([]float64, len(x)/count)
	idx := make([]int, len(shape))
	for i, v := range x {
		rem := i
		for ax := len(shape) - 1; ax >= 0; ax-- {
			idx[ax] = rem % shape[ax]
			rem /= shape[ax]
		}
		o := 0
		for ax := range shape {
			if !reduced[ax] {
				o = o*outShape[ax] + idx[ax]
			}
		}
		out[o] += v
	}
	if mean {
		inv := float32c(1 / float64(count))
		for i := range out {
			out[i] *= inv
		}
	}
	return out
}

func hostPermute(x []float64, shape, perm []int) []float64 {
	out := make([]float64, len(x))
	idx := make([]int, len(shape))
	for i, v := range x {
		rem := i
		for ax := len(shape) - 1; ax >= 0; ax-- {
			idx[ax] = rem % shape[ax]
			rem /= shape[ax]
		}
		o := 0
		for _, p := range perm {
			o = o*shape[p] + idx[p]
		}
		out[o] = v
	}
	return out
}

// hostConcat1 joins parts of shape [outer, sizes[i], inner] along axis 1.
func hostConcat1(parts [][]float64, outer int, sizes []int, inner int) []float64 {
	var out []float64
	for o := range outer {
		for i, p := range parts {
			n := sizes[i] * inner
			out = append(out, p[o*n:(o+1)*n]...)
		}
	}
	return out
}

func hostCrossEntropy(x []float64, labels []int, c int, s float64) float64 {
	s = float32c(s)
	total := 0.0
	for r, y := range labels {
		row := x[r*c : (r+1)*c]
		z := 0.0
		for _, v := range row {
			z += math.Exp(v)
		}
		for j, v := range row {
			q := s / float64(c)
			if j == y {
				q += 1 - s
			}
			total -= q * (v - math.Log(z))
		}
	}
	return total / float64(len(labels))
}

// hostKronSum returns Σ_i a_i ⊗ b_i with gonum's Kronecker product.
func hostKronSum(a, b []float64, n, p, q, r, s int) []float64 {
	sum := mat.NewDense(p*r, q*s, nil)
	for i := range n {
		var k mat.Dense
		k.Kronecker(mat.NewDense(p, q, append([]float64(nil), a[i*p*q:(i+1)*p*q]...)),
			mat.NewDense(r, s, append([]float64(nil), b[i*r*s:(i+1)*r*s]...)))
		sum.Add(sum, &k)
	}
	return sum.RawMatrix().Data
}

// hostPatchEmbed is a direct stride-P convolution followed by flatten(2).transpose(1,2).
func hostPatchEmbed(x, w, bias []float64, n, c, h, wd, d, p int) []float64 {
	gh, gw := h/p, wd/p
	out := make([]float64, n*gh*gw*d)
	for b := range n {
		for i := range gh {
			for j := range gw {
				for o := range d {
					s := 0.0
					if bias != nil {
						s = bias[o]
					}
					for ch := range c {
						for u := range p {
							for v := range p {
								s += x[((b*c+ch)*h+i*p+u)*wd+j*p+v] * w[((o*c+ch)*p+u)*p+v]
							}
						}
					}
					out[((b*gh+i)*gw+j)*d+o] = s
				}
			}
		}
	}
	return out
}

// hostMultiHead is hostAttention on the heads of q, k, v [n, l, h·d], which it moves
// to [n·h, l, d] and back.
func hostMultiHead(q, k, v []float64, n, l, h, d int, causal bool, scale float64) []float64 {
	split := func(x []float64) []float64 {
		y := make([]float64, len(x))
		for b := range n {
			for i := range l {
				for hh := range h {
					for e := range d {
						y[((b*h+hh)*l+i)*d+e] = x[(b*l+i)*h*d+hh*d+e]
					}
				}
			}
		}
		return y
	}
	a := hostAttention(split(q), split(k), split(v), n*h, l, l, d, d, causal, scale)
	out := make([]float64, len(a))
	for b := range n {
		for i := range l {
			for hh := range h {
				for e := range d {
					out[(b*l+i)*h*d+hh*d+e] = a[((b*h+hh)*l+i)*d+e]
				}
			}
		}
	}
	return out
}

// hostAttention computes softmax(q·kᵀ·scale + mask)·v for bh independent heads.
func hostAttention(q, k, v []float64, bh, lq, lk, dh, dv int, causal bool, scale float64) []float64 {
	scale = float32c(scale)
	out := make([]float64, bh*lq*dv)
	s := make([]float64, lk)
	for h := range bh {
		for i := range lq {
			mx := math.Inf(-1)
			for j := range lk {
				s[j] = math.Inf(-1)
				if causal && j > i {
					continue
				}
				dot := 0.0
				for e := range dh {
					dot += q[(h*lq+i)*dh+e] * k[(h*lk+j)*dh+e]
				}
				s[j] = dot * scale
				mx = math.Max(mx, s[j])
			}
			z := 0.0
			for j := range s {
				s[j] = math.Exp(s[j] - mx)
				z += s[j]
			}
			for j := range lk {
				for e := range dv {
					out[(h*lq+i)*dv+e] += s[j] / z * v[(h*lk+j)*dv+e]
				}
			}
		}
	}
	return out
}

// hostBatchNorm is BatchNorm1d: batch statistics (biased variance) in training, the
// given running statistics otherwise.
func hostBatchNorm(x, gamma, beta []float64, n, f int, train bool, rm, rv []float32) []float64 {
	out := make([]float64, n*f)
	inv := float32c(1 / float64(n))
	for j := range f {
		var mu, vr float64
		if train {
			for i := range n {
				mu += x[i*f+j]
			}
			mu *= inv
			for i := range n {
				vr += (x[i*f+j] - mu) * (x[i*f+j] - mu)
			}
			vr *= inv
		} else {
			mu, vr = float64(rm[j]), float64(rv[j])
		}
		for i := range n {
			y := (x[i*f+j] - mu) / math.Sqrt(vr+float64(float32(1e-5)))
			if gamma != nil {
				y = y*gamma[j] + beta[j]
			}
			out[i*f+j] = y
		}
	}
	return out
}
