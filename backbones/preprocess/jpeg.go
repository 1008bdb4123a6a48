package preprocess

import "image"

// libjpeg's jdcolor.c tables: SCALEBITS = 16 fixed point, each Cr→R and Cb→B
// term already rounded, the G terms summed before one rounding shift.
var ycc = func() (t struct{ crR, cbB, crG, cbG [256]int32 }) {
	const (
		scaleBits = 16
		oneHalf   = 1 << (scaleBits - 1)
	)
	fix := func(x float64) int32 { return int32(x*(1<<scaleBits) + 0.5) }
	for i := range 256 {
		x := int32(i) - 128
		t.crR[i] = (fix(1.40200)*x + oneHalf) >> scaleBits
		t.cbB[i] = (fix(1.77200)*x + oneHalf) >> scaleBits
		t.crG[i] = -fix(0.71414) * x
		t.cbG[i] = -fix(0.34414)*x + oneHalf
	}
	return t
}()

func clampU8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// yccToRGB is libjpeg's ycc_rgb_convert for one pixel.
func yccToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y)
	return clampU8(yy + ycc.crR[cr]),
		clampU8(yy + (ycc.cbG[cb]+ycc.crG[cr])>>16),
		clampU8(yy + ycc.cbB[cb])
}

// subsampling returns the horizontal and vertical chroma subsampling factors.
func subsampling(r image.YCbCrSubsampleRatio) (hs, vs int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 2, 1
	case image.YCbCrSubsampleRatio420:
		return 2, 2
	case image.YCbCrSubsampleRatio440:
		return 1, 2
	case image.YCbCrSubsampleRatio411:
		return 4, 1
	case image.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 1, 1
}

// jpegYCbCrInto converts m as libjpeg-turbo decodes it with its defaults (the
// ones PIL uses): 2:1 chroma is upsampled with jdsample.c's "fancy" triangle
// filters, whose rounding biases alternate between neighbouring output
// samples, image edges replicate the last real chroma sample, 4:1 chroma is
// replicated, and the result goes through the jdcolor.c tables.
func jpegYCbCrInto(dst *RGB, m *image.YCbCr) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return
	}
	hs, vs := subsampling(m.SubsampleRatio)
	// The chroma grid of image.YCbCr.COffset, relative to the image origin.
	cx0, cy0 := b.Min.X/hs, b.Min.Y/vs
	dw := (b.Max.X+hs-1)/hs - cx0
	dh := (b.Max.Y+vs-1)/vs - cy0
	// libjpeg only uses the 2:1 triangle filters when a component is more
	// than two samples wide (jdsample.c); 4:1 is always plain replication.
	fancyH := hs == 2 && dw > 2
	fancyV := vs == 2 && (hs == 1 || fancyH)
	h2v2 := fancyH && fancyV

	cs := make([]int32, 2*dw) // per chroma column: Cb then Cr, after the vertical step
	cb, cr := make([]uint8, w), make([]uint8, w)
	for r := 0; r < h; r++ {
		ay := b.Min.Y + r
		near := ay/vs - cy0
		nearRow := near * m.CStride
		if fancyV {
			far := near + 1
			if ay%2 == 0 {
				far = near - 1
			}
			far = min(max(far, 0), dh-1)
			farRow := far * m.CStride
			for j := 0; j < dw; j++ {
				cs[j] = 3*int32(m.Cb[nearRow+j]) + int32(m.Cb[farRow+j])
				cs[dw+j] = 3*int32(m.Cr[nearRow+j]) + int32(m.Cr[farRow+j])
			}
		} else {
			for j := 0; j < dw; j++ {
				cs[j] = int32(m.Cb[nearRow+j])
				cs[dw+j] = int32(m.Cr[nearRow+j])
			}
		}
		if fancyH && b.Min.X%2 == 0 {
			upsampleH(cb, cs[:dw], h2v2)
			upsampleH(cr, cs[dw:], h2v2)
		} else {
			for x := 0; x < w; x++ {
				ax := b.Min.X + x
				j := ax/hs - cx0
				switch {
				case fancyH:
					k := j + 1
					if ax%2 == 0 {
						k = j - 1
					}
					k = min(max(k, 0), dw-1)
					cb[x] = fancyH2(cs[j], cs[k], ax%2 == 0, h2v2)
					cr[x] = fancyH2(cs[dw+j], cs[dw+k], ax%2 == 0, h2v2)
				case fancyV: // 1:2, jdsample.c h1v2_fancy_upsample
					bias := int32(2)
					if ay%2 == 0 {
						bias = 1
					}
					cb[x] = uint8((cs[j] + bias) >> 2)
					cr[x] = uint8((cs[dw+j] + bias) >> 2)
				default:
					cb[x], cr[x] = uint8(cs[j]), uint8(cs[dw+j])
				}
			}
		}
		ys := m.Y[m.YOffset(b.Min.X, ay):]
		d := dst.row(r)
		for x := 0; x < w; x++ {
			d[3*x], d[3*x+1], d[3*x+2] = yccToRGB(ys[x], cb[x], cr[x])
		}
	}
}

// fancyH2 is one output sample of libjpeg's 2:1 horizontal triangle filter:
// 3/4 of its own column c plus 1/4 of the neighbour n (the left one for
// even samples, the right one for odd ones; at the edges n is c itself,
// which is what libjpeg's special first and last columns compute). After a
// vertical step (h2v2) the inputs are column sums 3·near+far and the biases
// are 8 and 7 sixteenths, else (h2v1) 1 and 2 quarters.
func fancyH2(c, n int32, even, h2v2 bool) uint8 {
	if h2v2 {
		if even {
			return uint8((3*c + n + 8) >> 4)
		}
		return uint8((3*c + n + 7) >> 4)
	}
	if even {
		return uint8((3*c + n + 1) >> 2)
	}
	return uint8((3*c + n + 2) >> 2)
}

// upsampleH is fancyH2 across a row that starts on an even column: chroma
// column j becomes output samples 2j and 2j+1.
func upsampleH(dst []uint8, cs []int32, h2v2 bool) {
	dw := len(cs)
	for j, c := range cs {
		l, r := cs[max(j-1, 0)], cs[min(j+1, dw-1)]
		x := 2 * j
		dst[x] = fancyH2(c, l, true, h2v2)
		if x+1 < len(dst) {
			dst[x+1] = fancyH2(c, r, false, h2v2)
		}
	}
}
