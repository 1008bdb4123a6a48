package data

import (
	"math"
	"math/rand/v2"
)

// Augmentation draws a random geometric distortion per image, as digit-recognition
// pretraining has used since Simard et al. (2003): an affine map (rotation, scale,
// shift) composed with an elastic displacement field, resampled bilinearly.
type Augmentation struct {
	MaxRotate float64 // degrees, drawn uniformly in ±MaxRotate
	MaxScale  float64 // relative, scale drawn in 1 ± MaxScale
	MaxShift  float64 // pixels, each axis drawn in ±MaxShift
	Elastic   float64 // α: displacement amplitude in pixels (0 = no elastic part)
	Sigma     float64 // σ of the Gaussian that smooths the displacement field
}

// Warp is one drawn distortion. The output pixel (x, y) reads the input at
//
//	c + R(−θ)·((x, y) − c − t)/s + (dx, dy)(x, y)
//
// with c the image centre, so θ rotates the content, s scales it about c and t moves
// it; pixels read from outside the image take the background value.
type Warp struct {
	Theta, Scale, TX, TY float64
	DX, DY               []float64 // per output pixel; nil for none
}

// Draw returns a distortion for an h×w image.
func (a Augmentation) Draw(rng *rand.Rand, h, w int) Warp {
	uniform := func(r float64) float64 { return (2*rng.Float64() - 1) * r }
	wp := Warp{Theta: uniform(a.MaxRotate) * math.Pi / 180, Scale: 1 + uniform(a.MaxScale),
		TX: uniform(a.MaxShift), TY: uniform(a.MaxShift)}
	if a.Elastic > 0 {
		wp.DX, wp.DY = make([]float64, h*w), make([]float64, h*w)
		for i := range wp.DX {
			wp.DX[i], wp.DY[i] = uniform(1), uniform(1)
		}
		wp.DX = gaussianBlur(wp.DX, h, w, a.Sigma)
		wp.DY = gaussianBlur(wp.DY, h, w, a.Sigma)
		// Simard et al. normalise the smoothed field to unit norm before scaling by α;
		// rescaling by its RMS keeps α the typical displacement in pixels whatever σ is.
		var ss float64
		for i := range wp.DX {
			ss += wp.DX[i]*wp.DX[i] + wp.DY[i]*wp.DY[i]
		}
		k := a.Elastic / math.Max(math.Sqrt(ss/float64(len(wp.DX))), 1e-12)
		for i := range wp.DX {
			wp.DX[i] *= k
			wp.DY[i] *= k
		}
	}
	return wp
}

// Apply writes the warped src (h×w, row-major) into dst.
func (wp Warp) Apply(dst, src []float32, h, w int, background float32) {
	cx, cy := float64(w-1)/2, float64(h-1)/2
	cos, sin := math.Cos(wp.Theta), math.Sin(wp.Theta)
	at := func(x, y int) float64 {
		if x < 0 || y < 0 || x >= w || y >= h {
			return float64(background)
		}
		return float64(src[y*w+x])
	}
	for y := range h {
		for x := range w {
			ox, oy := (float64(x)-cx-wp.TX)/wp.Scale, (float64(y)-cy-wp.TY)/wp.Scale
			sx, sy := cx+cos*ox+sin*oy, cy-sin*ox+cos*oy
			if wp.DX != nil {
				sx += wp.DX[y*w+x]
				sy += wp.DY[y*w+x]
			}
			x0, y0 := math.Floor(sx), math.Floor(sy)
			fx, fy := sx-x0, sy-y0
			ix, iy := int(x0), int(y0)
			v := (1-fy)*((1-fx)*at(ix, iy)+fx*at(ix+1, iy)) + fy*((1-fx)*at(ix, iy+1)+fx*at(ix+1, iy+1))
			dst[y*w+x] = float32(v)
		}
	}
}

// gaussianBlur convolves an h×w field with a normalised Gaussian of standard
// deviation sigma (separable, truncated at 3σ, edges clamped).
func gaussianBlur(f []float64, h, w int, sigma float64) []float64 {
	if sigma <= 0 {
		return f
	}
	r := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*r+1)
	var sum float64
	for i := range k {
		d := float64(i - r)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	clamp := func(v, n int) int { return min(max(v, 0), n-1) }
	tmp := make([]float64, len(f))
	for y := range h {
		for x := range w {
			var s float64
			for i, kv := range k {
				s += kv * f[y*w+clamp(x+i-r, w)]
			}
			tmp[y*w+x] = s
		}
	}
	out := make([]float64, len(f))
	for y := range h {
		for x := range w {
			var s float64
			for i, kv := range k {
				s += kv * tmp[clamp(y+i-r, h)*w+x]
			}
			out[y*w+x] = s
		}
	}
	return out
}

// DigitAugmentation is the distortion the demo task and `host pretrain` draw: small
// rotations, scalings and shifts and a gentle elastic field, which keep a digit
// legible (a 12° turn leaves a 6 a 6).
var DigitAugmentation = Augmentation{MaxRotate: 12, MaxScale: 0.1, MaxShift: 2, Elastic: 1.5, Sigma: 4}

// Augmented is the square grey images of Mem, each redrawn with a distortion each
// epoch; the draw is a function of (Seed, epoch, example), so resumed runs repeat
// it (an EpochSplit).
type Augmented struct {
	*Mem
	Aug        Augmentation
	Seed       uint64
	Side       int     // width and height of an image
	Background float32 // the value of pixels drawn from outside the image
	epoch      int
}

func (d *Augmented) SetEpoch(epoch int) { d.epoch = epoch }

func (d *Augmented) Fetch(idx []int, x []float32, labels [][]int) error {
	if err := d.Mem.Fetch(idx, x, labels); err != nil {
		return err
	}
	per := d.Side * d.Side
	src := make([]float32, per)
	for i, j := range idx {
		rng := rand.New(rand.NewPCG(d.Seed^0x617567, uint64(d.epoch)<<32|uint64(j)))
		copy(src, x[i*per:(i+1)*per])
		d.Aug.Draw(rng, d.Side, d.Side).Apply(x[i*per:(i+1)*per], src, d.Side, d.Side, d.Background)
	}
	return nil
}
