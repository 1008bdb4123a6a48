package preprocess

import (
	"fmt"
	"image"
	"math"
)

// filter is one of PIL's convolution kernels (libImaging/Resample.c).
type filter struct {
	support float64
	kernel  func(float64) float64
}

// Every product that is followed by an addition is wrapped in an explicit
// float64 conversion here and in axis.compute: Go may otherwise fuse x*y+z
// into one FMA on some platforms (arm64), and the weights must round
// exactly as PIL's plain double arithmetic does on x86-64.
var filters = map[string]filter{
	"box": {0.5, func(x float64) float64 {
		if x > -0.5 && x <= 0.5 {
			return 1
		}
		return 0
	}},
	"bilinear": {1, func(x float64) float64 {
		x = math.Abs(x)
		if x < 1 {
			return 1 - x
		}
		return 0
	}},
	"hamming": {1, func(x float64) float64 {
		x = math.Abs(x)
		if x == 0 {
			return 1
		}
		if x >= 1 {
			return 0
		}
		x = float64(x * math.Pi)
		// PIL writes 0.54f and 0.46f: single-precision constants.
		return float64(math.Sin(x)/x) * (float64(float32(0.54)) + float64(float64(float32(0.46))*math.Cos(x)))
	}},
	"bicubic": {2, func(x float64) float64 {
		const a = -0.5 // PIL's choice; Keys' a = -0.75 is what OpenCV uses
		x = math.Abs(x)
		if x < 1 { // ((a+2)·x - (a+3))·x·x + 1
			t := float64((a + 2) * x)
			t = float64((t - (a + 3)) * x)
			return float64(t*x) + 1
		}
		if x < 2 { // (((x-5)·x + 8)·x - 4)·a
			t := float64((x - 5) * x)
			t = float64((t + 8) * x)
			return (t - 4) * a
		}
		return 0
	}},
	"lanczos": {3, func(x float64) float64 {
		if -3 <= x && x < 3 {
			return sinc(x) * sinc(x/3)
		}
		return 0
	}},
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x = float64(x * math.Pi)
	return math.Sin(x) / x
}

func lookupFilter(name string) (filter, error) {
	if name == "" {
		name = "bicubic"
	}
	f, ok := filters[name]
	if !ok {
		return filter{}, fmt.Errorf("preprocess: resample filter %q is not one of bicubic, bilinear, lanczos, hamming, box", name)
	}
	return f, nil
}

// precisionBits is PIL's PRECISION_BITS (32 - 8 - 2): weights are 22-bit
// fixed point, leaving 2 bits of headroom for kernels with negative lobes.
const precisionBits = 32 - 8 - 2

// axis holds the fixed-point weights of one resampling pass for the output
// positions [from, to) of an inSize → outSize resize. Its buffers are
// reused from one image to the next.
type axis struct {
	ksize int
	shift uint    // fractional bits of the weights
	first []int   // first input index of each output position
	count []int   // number of taps of each output position
	k     []int32 // ksize weights per output position

	firstBuf, countBuf []int
	kBuf               []int32
	wBuf               []float64
}

func growSlice[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	b = b[:n]
	clear(b)
	return b
}

// compute is PIL's precompute_coeffs followed by normalize_coeffs_8bpc, for
// the box [0, inSize] and only the output positions [from, to).
//
// With torch set it follows PyTorch's antialiased uint8 kernel instead (what
// torchvision's resize runs on uint8 tensors): the same float weights, but
// stored as int16 with as many fractional bits as the largest weight of the
// whole axis allows, which rounds some outputs one level differently.
func (a *axis) compute(inSize, outSize, from, to int, f filter, torch bool) {
	lo, hi := from, to
	if torch {
		lo, hi = 0, outSize // the precision depends on every weight of the axis
	}
	n := hi - lo
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1) // antialias: widen the kernel when shrinking
	support := float64(f.support * filterscale)
	ksize := int(math.Ceil(support))*2 + 1
	a.ksize, a.shift = ksize, precisionBits
	a.firstBuf = growSlice(a.firstBuf, n)
	a.countBuf = growSlice(a.countBuf, n)
	a.kBuf = growSlice(a.kBuf, n*ksize)
	a.wBuf = growSlice(a.wBuf, n*ksize)
	w := a.wBuf
	wmax := 0.0
	for i := range n {
		center := float64(float64(float64(lo+i)+0.5) * scale)
		ss := 1 / filterscale
		xmin := max(int(center-support+0.5), 0) // C's (int) truncates, as Go's conversion does
		xmax := min(int(center+support+0.5), inSize) - xmin
		xmax = min(xmax, ksize) // PyTorch clamps; in PIL it cannot exceed ksize anyway
		ww := 0.0
		wi := w[i*ksize : i*ksize+xmax]
		for x := range wi {
			wi[x] = f.kernel(float64(float64(x+xmin)-center+0.5) * ss)
			ww += wi[x]
		}
		if ww != 0 {
			for x := range wi {
				wi[x] /= ww
				wmax = max(wmax, wi[x])
			}
		}
		a.firstBuf[i], a.countBuf[i] = xmin, xmax
	}
	if torch {
		a.shift = 0
		for a.shift < precisionBits && int(0.5+wmax*float64(int(1)<<(a.shift+1))) < 1<<15 {
			a.shift++
		}
	}
	one := float64(int(1) << a.shift)
	for i, v := range w {
		if v < 0 {
			a.kBuf[i] = int32(-0.5 + float64(v*one))
		} else {
			a.kBuf[i] = int32(0.5 + float64(v*one))
		}
	}
	a.first = a.firstBuf[from-lo : to-lo]
	a.count = a.countBuf[from-lo : to-lo]
	a.k = a.kBuf[(from-lo)*ksize : (to-lo)*ksize]
}

// clip8 is PIL's clip8: drop the fraction and saturate.
func clip8(v int32, shift uint) uint8 {
	v >>= shift
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resizeWindow resamples src to outW×outH exactly as PIL's ImagingResample
// does for an 8-bit RGB image with the full-image box, but computes only the
// output rectangle win (which must lie inside outW×outH), writing it to dst
// with a tight stride. s holds buffers reused between calls.
//
// PIL always runs the horizontal pass first, rounding to 8 bits in between,
// and skips a pass whose size does not change; since every output sample
// depends only on its own row and column weights, restricting both passes
// to the window gives bit-identical values.
func resizeWindow(dst []uint8, src *RGB, outW, outH int, win image.Rectangle, f filter, torch bool, s *scratch) {
	inW, inH := src.Rect.Dx(), src.Rect.Dy()
	ww, wh := win.Dx(), win.Dy()
	needH := outW != inW
	needV := outH != inH

	// Rows of the source the window needs, and where they land in the
	// horizontally resampled intermediate.
	vert := &s.vert
	rowLo, rowHi := win.Min.Y, win.Max.Y
	if needV {
		vert.compute(inH, outH, win.Min.Y, win.Max.Y, f, torch)
		rowLo, rowHi = inH, 0
		for i := range wh {
			rowLo = min(rowLo, vert.first[i])
			rowHi = max(rowHi, vert.first[i]+vert.count[i])
		}
	}
	rows := rowHi - rowLo

	// Horizontal pass into mid: rows × ww pixels.
	var mid []uint8
	midStride := 3 * ww
	if needH {
		hor := &s.hor
		hor.compute(inW, outW, win.Min.X, win.Max.X, f, torch)
		s.tmp = growSlice(s.tmp, rows*midStride)
		mid = s.tmp
		half := int32(1) << (hor.shift - 1)
		for r := range rows {
			in := src.row(rowLo + r)
			out := mid[r*midStride : (r+1)*midStride]
			for x := range ww {
				k := hor.k[x*hor.ksize : x*hor.ksize+hor.count[x]]
				p := in[3*hor.first[x] : 3*(hor.first[x]+len(k))]
				s0, s1, s2 := half, half, half
				for t, c := range k {
					q := p[3*t : 3*t+3 : 3*t+3]
					s0 += int32(q[0]) * c
					s1 += int32(q[1]) * c
					s2 += int32(q[2]) * c
				}
				out[3*x], out[3*x+1], out[3*x+2] = clip8(s0, hor.shift), clip8(s1, hor.shift), clip8(s2, hor.shift)
			}
		}
	} else {
		// No horizontal change: read the window's columns straight from src.
		mid = src.Pix[rowLo*src.Stride+3*win.Min.X:]
		midStride = src.Stride
	}

	dstStride := 3 * ww
	if !needV {
		for r := range wh {
			copy(dst[r*dstStride:(r+1)*dstStride], mid[r*midStride:r*midStride+3*ww])
		}
		return
	}
	// Vertical pass, one tap at a time across the whole row so that mid is
	// read sequentially.
	half := int32(1) << (vert.shift - 1)
	s.acc = growSlice(s.acc, 3*ww)
	acc := s.acc
	for r := range wh {
		for x := range acc {
			acc[x] = half
		}
		for t, c := range vert.k[r*vert.ksize : r*vert.ksize+vert.count[r]] {
			o := (vert.first[r] - rowLo + t) * midStride
			in := mid[o : o+3*ww]
			for x, v := range in {
				acc[x] += int32(v) * c
			}
		}
		out := dst[r*dstStride : (r+1)*dstStride]
		for x, v := range acc {
			out[x] = clip8(v, vert.shift)
		}
	}
}

// Resize resizes img to width×height with PIL's Image.resize on an RGB
// image (PIL's convolution resampler, antialiased when shrinking), using the
// named filter ("bicubic" when empty). img is converted with ToRGB first.
func Resize(img image.Image, width, height int, resample string) (*RGB, error) {
	f, err := lookupFilter(resample)
	if err != nil {
		return nil, err
	}
	if width <= 0 || height <= 0 || int64(width)*int64(height) > MaxPixels {
		return nil, fmt.Errorf("preprocess: cannot resize to %dx%d", width, height)
	}
	src := ToRGB(img)
	if src.Rect.Empty() {
		return nil, fmt.Errorf("preprocess: cannot resize an empty %dx%d image", src.Rect.Dx(), src.Rect.Dy())
	}
	out := &RGB{Pix: make([]uint8, 3*width*height), Stride: 3 * width, Rect: image.Rect(0, 0, width, height)}
	resizeWindow(out.Pix, src, width, height, out.Rect, f, false, new(scratch))
	return out, nil
}
