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
		for x := 0; x < w; x++ {
			ax := b.Min.X + x
			j := ax/hs - cx0
			switch {
			case fancyH:
				// Even output samples lean on the left neighbour, odd ones on
				// the right; edges reuse their own sample (libjpeg's special
				// first/last columns reduce to exactly this).
				even := ax%2 == 0
				k := j + 1
				if even {
					k = j - 1
				}
				k = min(max(k, 0), dw-1)
				shift, bias := int32(2), int32(2) // h2v1: biases 1 (even) and 2 (odd), /4
				if even {
					bias = 1
				}
				if h2v2 { // column sums of 3·near+far: biases 8 and 7, /16
					shift, bias = 4, 7
					if even {
						bias = 8
					}
				}
				cb[x] = uint8((3*cs[j] + cs[k] + bias) >> shift)
				cr[x] = uint8((3*cs[dw+j] + cs[dw+k] + bias) >> shift)
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
		ys := m.Y[m.YOffset(b.Min.X, ay):]
		d := dst.row(r)
		for x := 0; x < w; x++ {
			d[3*x], d[3*x+1], d[3*x+2] = yccToRGB(ys[x], cb[x], cr[x])
		}
	}
}
