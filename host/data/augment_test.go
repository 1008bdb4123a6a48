package data

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randomImage(rng *rand.Rand, h, w int) []float32 {
	img := make([]float32, h*w)
	for i := range img {
		img[i] = float32(rng.Float64())
	}
	return img
}

// Each geometric case has a closed form on the pixel grid.
func TestWarpClosedForms(t *testing.T) {
	const h, w, bg = 6, 6, -0.5
	rng := rand.New(rand.NewPCG(1, 2))
	src := randomImage(rng, h, w)
	at := func(x, y int) float32 {
		if x < 0 || y < 0 || x >= w || y >= h {
			return bg
		}
		return src[y*w+x]
	}
	cases := []struct {
		name string
		wp   Warp
		want func(x, y int) float32
	}{
		{"identity", Warp{Scale: 1}, func(x, y int) float32 { return at(x, y) }},
		{"shift right 2, up 1", Warp{Scale: 1, TX: 2, TY: -1}, func(x, y int) float32 { return at(x-2, y+1) }},
		{"rotate 90°", Warp{Scale: 1, Theta: math.Pi / 2}, func(x, y int) float32 { return at(y, h-1-x) }},
		{"rotate 180°", Warp{Scale: 1, Theta: math.Pi}, func(x, y int) float32 { return at(w-1-x, h-1-y) }},
		// Scaling by 1/2 about the centre 2.5 reads pixel 2.5+2(x−2.5) = 2x−2.5: the
		// mean of columns 2x−3 and 2x−2.
		{"shrink ×½", Warp{Scale: 0.5},
			func(x, y int) float32 {
				sy := 2*y - 3 // 2y−2.5 = sy + ½
				return 0.25 * (at(2*x-3, sy) + at(2*x-2, sy) + at(2*x-3, sy+1) + at(2*x-2, sy+1))
			}},
		{"uniform elastic field = shift", Warp{Scale: 1, DX: constField(h*w, 1), DY: constField(h*w, -2)},
			func(x, y int) float32 { return at(x+1, y-2) }},
	}
	for _, c := range cases {
		dst := make([]float32, h*w)
		c.wp.Apply(dst, src, h, w, bg)
		for y := range h {
			for x := range w {
				if got, want := dst[y*w+x], c.want(x, y); math.Abs(float64(got-want)) > 1e-6 {
					t.Errorf("%s: pixel (%d, %d) = %v, want %v", c.name, x, y, got, want)
				}
			}
		}
	}
}

func constField(n int, v float64) []float64 {
	f := make([]float64, n)
	for i := range f {
		f[i] = v
	}
	return f
}

// The blur is a normalised Gaussian: constants pass unchanged and an impulse far
// from the edges becomes the kernel exp(−d²/2σ²)/Σ, separable in x and y.
func TestGaussianBlur(t *testing.T) {
	const h, w, sigma = 15, 15, 1.3
	c := gaussianBlur(constField(h*w, 2.5), h, w, sigma)
	for i, v := range c {
		if math.Abs(v-2.5) > 1e-12 {
			t.Fatalf("constant field blurred to %v at %d", v, i)
		}
	}
	imp := make([]float64, h*w)
	imp[7*w+7] = 1
	out := gaussianBlur(imp, h, w, sigma)
	r := int(math.Ceil(3 * sigma))
	var norm float64
	for d := -r; d <= r; d++ {
		norm += math.Exp(-float64(d*d) / (2 * sigma * sigma))
	}
	for y := range h {
		for x := range w {
			dx, dy := x-7, y-7
			want := 0.0
			if abs(dx) <= r && abs(dy) <= r {
				want = math.Exp(-float64(dx*dx+dy*dy)/(2*sigma*sigma)) / (norm * norm)
			}
			if math.Abs(out[y*w+x]-want) > 1e-12 {
				t.Errorf("impulse response at (%d, %d) = %v, want %v", x, y, out[y*w+x], want)
			}
		}
	}
}

func abs(v int) int { return max(v, -v) }

// Drawn distortions stay within their bounds, the elastic field has the requested
// RMS amplitude, and the same seed draws the same distortion.
func TestAugmentationDraw(t *testing.T) {
	a := Augmentation{MaxRotate: 15, MaxScale: 0.1, MaxShift: 2, Elastic: 1.5, Sigma: 3}
	for i := range 50 {
		wp := a.Draw(rand.New(rand.NewPCG(uint64(i), 0)), 28, 28)
		if math.Abs(wp.Theta) > 15*math.Pi/180 || math.Abs(wp.Scale-1) > 0.1 || math.Abs(wp.TX) > 2 || math.Abs(wp.TY) > 2 {
			t.Fatalf("draw %d out of bounds: %+v", i, wp)
		}
		var ss float64
		for j := range wp.DX {
			ss += wp.DX[j]*wp.DX[j] + wp.DY[j]*wp.DY[j]
		}
		if rms := math.Sqrt(ss / float64(len(wp.DX))); math.Abs(rms-1.5) > 1e-9 {
			t.Fatalf("draw %d: elastic RMS displacement %v, want 1.5", i, rms)
		}
	}
	w1 := a.Draw(rand.New(rand.NewPCG(7, 0)), 28, 28)
	w2 := a.Draw(rand.New(rand.NewPCG(7, 0)), 28, 28)
	if w1.Theta != w2.Theta || w1.DX[100] != w2.DX[100] {
		t.Fatal("the same seed drew different distortions")
	}
}

// An example's distortion depends on (seed, epoch, example) only: not on which batch
// fetched it or in what order, so resumed runs redraw what uninterrupted ones drew.
func TestAugmentedDrawsPerEpochAndExample(t *testing.T) {
	const side = 28
	rng := rand.New(rand.NewPCG(9, 9))
	base := &Mem{ExShape: []int{1, side, side}}
	for i := range 3 {
		base.X = append(base.X, randomImage(rng, side, side)...)
		base.Labels = append(base.Labels, []int{i})
	}
	d := &Augmented{Mem: base, Aug: DigitAugmentation, Seed: 4, Side: side, Background: -0.42}
	fetch := func(epoch int, idx ...int) [][]float32 {
		d.SetEpoch(epoch)
		x := make([]float32, len(idx)*side*side)
		if err := d.Fetch(idx, x, make([][]int, len(idx))); err != nil {
			t.Fatal(err)
		}
		out := make([][]float32, len(idx))
		for i := range idx {
			out[i] = x[i*side*side : (i+1)*side*side]
		}
		return out
	}
	same := func(a, b []float32) bool {
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	e1 := fetch(1, 0, 2)
	again := fetch(1, 2, 0)
	if !same(e1[0], again[1]) || !same(e1[1], again[0]) {
		t.Fatal("the same epoch drew different distortions in another batch order")
	}
	if e2 := fetch(2, 0); same(e1[0], e2[0]) {
		t.Fatal("epochs 1 and 2 drew the same distortion")
	}
	if same(e1[0], base.X[:side*side]) {
		t.Fatal("the image came back undistorted")
	}
}
