//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
)

// roundBF16 is the reference rounding for bf16 autocast, written without the kernel's
// carry trick: of the two bfloat16 values around f (f's high half, and the next one
// away from zero), take the nearer by exact float64 distance, the one with an even
// last bit on a tie. Past the largest finite value the next one is 2¹²⁸, as IEEE
// rounding treats overflow, and becomes infinity.
func roundBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if f != f {
		return uint16(u>>16) | 0x40
	}
	lo := uint16(u >> 16)
	if uint32(lo)<<16 == u || math.IsInf(float64(f), 0) {
		return lo
	}
	hi := lo + 1
	loV := math.Abs(float64(math.Float32frombits(uint32(lo) << 16)))
	hiV := math.Abs(float64(math.Float32frombits(uint32(hi) << 16)))
	if hi&0x7fff == 0x7f80 {
		hiV = math.Ldexp(1, 128)
	}
	a := math.Abs(float64(f))
	switch dl, dh := a-loV, hiV-a; {
	case dl < dh:
		return lo
	case dh < dl:
		return hi
	case lo&1 == 0:
		return lo
	}
	return hi
}

func bf16Value(h uint16) float64 { return float64(math.Float32frombits(uint32(h) << 16)) }

// checkBF16Rounding runs k_to_bf16 on ties, carries into the exponent, overflow,
// subnormals, signed zeros, infinities, NaN and random bit patterns.
func checkBF16Rounding(t *testing.T, b *Backend) {
	t.Helper()
	one := math.Float32bits(1)
	vals := []float32{
		0, float32(math.Copysign(0, -1)), 1, -1,
		math.Float32frombits(one | 0x8000),  // 1 + 2⁻⁸: a tie, even below
		math.Float32frombits(one | 0x18000), // 1 + 3·2⁻⁸: a tie, even above
		math.Float32frombits(one | 0x8001),  // just past the tie
		math.Float32frombits(one | 0x7fff),  // just short of it
		math.Float32frombits(0x3fffffff),    // carries into the exponent: 2
		math.MaxFloat32, -math.MaxFloat32,   // round to ±infinity
		math.Float32frombits(0x7f7f7fff), // the largest that stays finite
		math.Float32frombits(0x00000001), // smallest subnormal
		math.Float32frombits(0x0000ffff), // a subnormal whose dropped half rounds it up
		float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0x7f800001), // a NaN that rounding would make infinite
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 20000 {
		vals = append(vals, math.Float32frombits(rng.Uint32()))
	}
	x := b.Alloc(core.Shape{len(vals)})
	b.Upload(x, vals)
	d := b.toBF16(x)
	got := make([]float32, d.Size())
	b.Download(got, d)
	bad := 0
	for i, v := range vals {
		w := math.Float32bits(got[i/2])
		g := uint16(w >> (16 * (i % 2)))
		want := roundBF16(v)
		isNaN := want&0x7f80 == 0x7f80 && want&0x7f != 0
		if g != want && !(isNaN && g&0x7f80 == 0x7f80 && g&0x7f != 0) {
			if bad++; bad <= 10 {
				t.Errorf("bf16(%#08x = %g) = %#04x, want %#04x", math.Float32bits(v), v, g, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d conversions wrong", bad, len(vals))
	}
	b.Release(x)
	b.Release(d)
}

// checkBF16Products compares MatMul under bf16 autocast with float64 products of the
// inputs rounded by roundBF16, relative to Σ|a||b|. One-term products must stay exact
// float32 products of the unrounded inputs (Linear's bias broadcast relies on it).
func checkBF16Products(t *testing.T, b *Backend, tol float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		batch, m, k, n int
		transA, transB bool
		shareB         bool
		alpha, beta    float32
	}{
		{1, 7, 33, 5, false, false, false, 1, 0},
		{1, 64, 96, 48, false, true, false, 1, 0},
		{1, 9, 130, 11, true, false, false, 0.5, 1},
		{3, 5, 17, 6, false, false, true, 1, 0},
		{2, 4, 40, 3, true, true, false, 2, 0.25},
		{1, 6, 1, 5, false, false, false, 1, 0},
	} {
		t.Run(fmt.Sprintf("b%d_m%d_k%d_n%d_tA%v_tB%v", c.batch, c.m, c.k, c.n, c.transA, c.transB), func(t *testing.T) {
			as := core.Shape{c.m, c.k}
			if c.transA {
				as = core.Shape{c.k, c.m}
			}
			bs := core.Shape{c.k, c.n}
			if c.transB {
				bs = core.Shape{c.n, c.k}
			}
			if c.batch > 1 {
				as = append(core.Shape{c.batch}, as...)
				if !c.shareB {
					bs = append(core.Shape{c.batch}, bs...)
				}
			}
			ds := core.Shape{c.m, c.n}
			if c.batch > 1 {
				ds = core.Shape{c.batch, c.m, c.n}
			}
			av, bv, dv := randF32(rng, as.Size()), randF32(rng, bs.Size()), randF32(rng, ds.Size())
			at, bt, dt := b.Alloc(as), b.Alloc(bs), b.Alloc(ds)
			b.Upload(at, av)
			b.Upload(bt, bv)
			b.Upload(dt, dv)
			b.MatMul(dt, at, bt, c.transA, c.transB, c.alpha, c.beta)
			got := make([]float32, ds.Size())
			b.Download(got, dt)
			round := func(v float32) float64 {
				if c.k == 1 {
					return float64(v)
				}
				return bf16Value(roundBF16(v))
			}
			for p := range c.batch {
				aOff, bOff := p*c.m*c.k, p*c.k*c.n
				if c.shareB || c.batch == 1 {
					bOff = 0
				}
				for i := range c.m {
					for j := range c.n {
						var s, mag float64
						for l := range c.k {
							ai := aOff + i*c.k + l
							if c.transA {
								ai = aOff + l*c.m + i
							}
							bi := bOff + l*c.n + j
							if c.transB {
								bi = bOff + j*c.k + l
							}
							x, y := round(av[ai]), round(bv[bi])
							s += x * y
							mag += math.Abs(x * y)
						}
						o := p*c.m*c.n + i*c.n + j
						want := float64(c.alpha)*s + float64(c.beta)*float64(dv[o])
						scale := math.Abs(float64(c.alpha))*mag + math.Abs(float64(c.beta)*float64(dv[o]))
						if d := math.Abs(float64(got[o]) - want); d > tol*scale+1e-30 {
							t.Fatalf("[%d,%d,%d] = %g, want %g (|diff| %.3g > %.1g·%.3g)", p, i, j, got[o], want, d, tol, scale)
						}
					}
				}
			}
			for _, x := range []*core.Tensor{at, bt, dt} {
				b.Release(x)
			}
		})
	}
}
