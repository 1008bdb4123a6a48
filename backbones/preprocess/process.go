package preprocess

import (
	"fmt"
	"image"
	"sync"
)

// prepared is a validated Config with its per-channel lookup table: every
// output value is a function of one 8-bit sample, so rescale and normalise
// are computed once per possible sample.
type prepared struct {
	cfg Config
	f   filter
	lut [3][256]float32
}

func prepare(cfg Config) (*prepared, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &prepared{cfg: cfg}
	if cfg.DoResize {
		p.f, _ = lookupFilter(cfg.Resample) // validated above
	}
	if cfg.Backend == "torchvision" {
		// HF's fast processor folds the rescale into the normalisation:
		// mean and std become float32 tensors times float32(1/factor), and
		// (x - mean)/std runs in float32; without normalisation it is
		// float32(x)·float32(factor).
		inv := float32(1 / rescale64(cfg.RescaleFactor))
		for c := range 3 {
			m, s := float32(cfg.Mean[c]*inv), float32(cfg.Std[c]*inv) // no FMA with the subtraction
			for v := range 256 {
				x := float32(v)
				if cfg.DoNormalize {
					x = (x - m) / s
				} else {
					x *= float32(rescale64(cfg.RescaleFactor))
				}
				p.lut[c][v] = x
			}
		}
		return p, nil
	}
	// HF's slow processor rescales in float64 (uint8 → float64 times the
	// Python float factor) and casts to float32; normalising is then float32
	// arithmetic.
	scale := rescale64(cfg.RescaleFactor)
	for c := range 3 {
		for v := range 256 {
			x := float32(float64(v) * scale)
			if cfg.DoNormalize {
				x = (x - cfg.Mean[c]) / cfg.Std[c]
			}
			p.lut[c][v] = x
		}
	}
	return p, nil
}

// rescale64 widens the factor back to the float64 HF holds: Config stores it
// as float32, and the common 1/255 must round exactly as Python's 1/255 does.
func rescale64(f float32) float64 {
	if f == float32(1.0/255) {
		return 1.0 / 255
	}
	return float64(f)
}

// scratch holds the buffers one ProcessInto call needs, pooled so that the
// steady state of a data loader allocates nothing.
type scratch struct {
	rgb, pix, tmp []uint8
	acc           []int32
	hor, vert     axis
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (p *prepared) into(dst []float32, img image.Image) error {
	cfg := &p.cfg
	b := img.Bounds()
	if b.Empty() {
		return fmt.Errorf("preprocess: empty %dx%d image", b.Dx(), b.Dy())
	}
	if int64(b.Dx())*int64(b.Dy()) > MaxPixels {
		return fmt.Errorf("preprocess: %dx%d image exceeds %d pixels", b.Dx(), b.Dy(), MaxPixels)
	}
	rw, rh := cfg.resizeSize(b.Dx(), b.Dy())
	if rw <= 0 || rh <= 0 || int64(rw)*int64(rh) > MaxPixels {
		return fmt.Errorf("preprocess: %dx%d image would be resized to %dx%d", b.Dx(), b.Dy(), rw, rh)
	}
	oh, ow := cfg.OutputSize(b.Dx(), b.Dy())
	plane := oh * ow
	if len(dst) != 3*plane {
		return fmt.Errorf("preprocess: destination has %d elements, want 3×%d×%d = %d", len(dst), oh, ow, 3*plane)
	}
	top, left := 0, 0
	if cfg.DoCenterCrop {
		top, left = cropOffset(rh, oh, cfg.Backend), cropOffset(rw, ow, cfg.Backend)
	}
	win := image.Rect(left, top, left+ow, top+oh).Intersect(image.Rect(0, 0, rw, rh))

	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	src, ok := img.(*RGB)
	if !ok {
		s.rgb = growSlice(s.rgb, 3*b.Dx()*b.Dy())
		src = &RGB{Pix: s.rgb, Stride: 3 * b.Dx(), Rect: b}
		convertInto(src, img)
	}
	pix := growSlice(s.pix, 3*win.Dx()*win.Dy())
	s.pix = pix
	resizeWindow(pix, src, rw, rh, win, p.f, cfg.Backend == "torchvision", s)

	if win.Dx() != ow || win.Dy() != oh {
		for c := range 3 {
			pad := p.lut[c][0] // HF pads with zero samples before rescaling
			for i := range dst[c*plane : (c+1)*plane] {
				dst[c*plane+i] = pad
			}
		}
	}
	r, g, bl := dst[:plane], dst[plane:2*plane], dst[2*plane:]
	lr, lg, lb := &p.lut[0], &p.lut[1], &p.lut[2]
	for y := range win.Dy() {
		o := (win.Min.Y-top+y)*ow + win.Min.X - left
		row := pix[3*y*win.Dx() : 3*(y+1)*win.Dx()]
		for x := range win.Dx() {
			r[o+x] = lr[row[3*x]]
			g[o+x] = lg[row[3*x+1]]
			bl[o+x] = lb[row[3*x+2]]
		}
	}
	return nil
}

func (p *prepared) process(img image.Image) ([]float32, error) {
	b := img.Bounds()
	h, w := p.cfg.OutputSize(b.Dx(), b.Dy())
	if h <= 0 || w <= 0 || int64(h)*int64(w) > MaxPixels {
		return nil, fmt.Errorf("preprocess: %dx%d image gives a %dx%d output", b.Dx(), b.Dy(), h, w)
	}
	dst := make([]float32, 3*h*w)
	if err := p.into(dst, img); err != nil {
		return nil, err
	}
	return dst, nil
}

// cropOffset is where a crop of length n starts in an axis of length size
// (negative: the image starts -offset samples into the zero padding).
func cropOffset(size, n int, backend string) int {
	d := size - n
	if backend != "torchvision" {
		// HF: (size - n) // 2 with Python's floor division; for a too-small
		// image that puts the extra padding sample before it.
		return d >> 1
	}
	if d < 0 {
		// torchvision pads (n - size) // 2 before and the rest after.
		return -((-d) >> 1)
	}
	// int(round(d / 2.0)): Python rounds halves to even.
	if h := d >> 1; d%2 == 1 && h%2 == 1 {
		return h + 1
	}
	return d >> 1
}

// ProcessInto preprocesses img into dst, a [3,H,W] channel-major RGB tensor
// with H, W = cfg.OutputSize(width, height) (the crop size when cropping).
// Its working buffers are pooled, so in the steady state it allocates
// nothing and a data loader can fill one batch buffer in place.
func ProcessInto(dst []float32, img image.Image, cfg Config) error {
	p, err := prepare(cfg)
	if err != nil {
		return err
	}
	return p.into(dst, img)
}

// Process preprocesses img into a new [3,H,W] tensor.
func Process(img image.Image, cfg Config) ([]float32, error) {
	p, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	return p.process(img)
}

// ProcessFile decodes the image at path and preprocesses it; errors name
// the file.
func ProcessFile(path string, cfg Config) ([]float32, error) {
	img, err := Decode(path)
	if err != nil {
		return nil, err
	}
	out, err := Process(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return out, nil
}

// Pipeline returns Process bound to cfg, with the configuration checked and
// the lookup tables built once. An invalid cfg makes every call fail with the
// validation error.
func Pipeline(cfg Config) func(image.Image) ([]float32, error) {
	p, err := prepare(cfg)
	return func(img image.Image) ([]float32, error) {
		if err != nil {
			return nil, err
		}
		return p.process(img)
	}
}
