package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
)

// TestLayerNormRowGrouping checks that LayerNorm and LayerNormGrad, which reduce four
// rows at a time, give every row exactly the bits they give it alone (one row takes
// the single-row path), with and without affine parameters, on odd widths. The
// float64 reference comparisons are TestLayerNorm's.
func TestLayerNormRowGrouping(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	b := newBackend()
	for _, cols := range []int{1, 7, 33, 768} {
		// The float64 statistics themselves, before rounding to float32 hides a
		// difference in their last bits.
		xs, dys, gs := randn(rng, 4*cols), randn(rng, 4*cols), randn(rng, cols)
		means, rstds := make([]float32, 4), make([]float32, 4)
		for r := range 4 {
			means[r], rstds[r] = rng.Float32(), 1+rng.Float32()
		}
		fk := layerNormKernel{x: xs, cols: cols, eps: 1e-5}
		mu4, rstd4 := fk.stats4(0)
		for _, gamma := range [][]float32{gs, nil} {
			gk := layerNormGradKernel{x: xs, dy: dys, mean: means, rstd: rstds, gamma: gamma, cols: cols}
			sg4, sgx4 := gk.sums4(0)
			for r := range 4 {
				mu, rstd := fk.stats(r)
				sg, sgx := gk.sums(r)
				if mu != mu4[r] || rstd != rstd4[r] || sg != sg4[r] || sgx != sgx4[r] {
					t.Fatalf("cols %d, row %d: four rows at once give mean %v, rstd %v, mean(g) %v, mean(g·x̂) %v; one row %v, %v, %v, %v",
						cols, r, mu4[r], rstd4[r], sg4[r], sgx4[r], mu, rstd, sg, sgx)
				}
			}
		}
		for _, affine := range []bool{true, false} {
			const rows = 11 // two groups of four and three single rows
			s := core.Shape{rows, cols}
			xs, dys := randn(rng, rows*cols), randn(rng, rows*cols)
			for i := range xs {
				xs[i] = 3 + 2*xs[i] // a mean far from zero, as residual streams have
			}
			var gamma, beta, dgamma, dbeta *core.Tensor
			if affine {
				gamma, beta = upload(b, core.Shape{cols}, randn(rng, cols)), upload(b, core.Shape{cols}, randn(rng, cols))
				dgamma, dbeta = b.Alloc(core.Shape{cols}), b.Alloc(core.Shape{cols})
			}
			x, y, dx := upload(b, s, xs), b.Alloc(s), b.Alloc(s)
			mean, rstd := b.Alloc(core.Shape{rows}), b.Alloc(core.Shape{rows})
			b.LayerNorm(y, mean, rstd, x, gamma, beta, 1e-5)
			b.LayerNormGrad(dx, dgamma, dbeta, upload(b, s, dys), x, mean, rstd, gamma, false)
			all := [][]float32{download(b, y), download(b, dx), download(b, mean), download(b, rstd)}
			for r := 0; r < rows; r++ {
				row := core.Shape{1, cols}
				x1, y1, dx1 := upload(b, row, xs[r*cols:(r+1)*cols]), b.Alloc(row), b.Alloc(row)
				m1, r1 := b.Alloc(core.Shape{1}), b.Alloc(core.Shape{1})
				b.LayerNorm(y1, m1, r1, x1, gamma, beta, 1e-5)
				b.LayerNormGrad(dx1, nil, nil, upload(b, row, dys[r*cols:(r+1)*cols]), x1, m1, r1, gamma, false)
				one := [][]float32{download(b, y1), download(b, dx1), download(b, m1), download(b, r1)}
				for q, name := range []string{"y", "dx", "mean", "rstd"} {
					w := cols
					if q >= 2 {
						w = 1
					}
					got, want := all[q][r*w:(r+1)*w], one[q]
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("cols %d, affine %v: row %d's %s[%d] = %v among %d rows, %v alone",
								cols, affine, r, name, i, got[i], rows, want[i])
						}
					}
				}
			}
		}
	}
}
