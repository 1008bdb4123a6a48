package preprocess

import "image"

// VP8 stores BT.601 limited-range YUV, not JFIF's full range, so lossy WebP
// needs libwebp's conversion (dsp/yuv.h): 14-bit fixed-point products
// (MultHi emulates _mm_mulhi_epu16) and 6 fractional bits before clipping.
func webpMultHi(v, coeff int32) int32 { return (v * coeff) >> 8 }

func webpClip8(v int32) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func webpYUVToRGB(y, u, v int32) (uint8, uint8, uint8) {
	yy := webpMultHi(y, 19077)
	return webpClip8(yy + webpMultHi(v, 26149) - 14234),
		webpClip8(yy - webpMultHi(u, 6419) - webpMultHi(v, 13320) + 8708),
		webpClip8(yy + webpMultHi(u, 33050) - 17685)
}

// webpYCbCrInto converts the 4:2:0 planes of a lossy WebP as libwebp's
// WebPDecode does by default (what PIL calls through WebPAnimDecoder): the
// "fancy" upsampler of dsp/upsampling.c, which mixes the nearer chroma row
// (weight 3/4) with the farther one, and the nearer column with the farther
// one the same way, rounding in two stages. The first row, and the last row
// of an even height, use a single chroma row. m must start at the origin, as
// x/image/webp's images do.
func webpYCbCrInto(dst *RGB, m *image.YCbCr) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	if w <= 0 || h <= 0 {
		return
	}
	uvh := (h + 1) / 2
	last := (w - 1) >> 1 // the last chroma column
	for r := 0; r < h; r++ {
		// Row 2k-1 is nearer chroma row k-1, row 2k nearer chroma row k.
		near, far := r/2, r/2-1
		if r%2 == 1 {
			near, far = (r-1)/2, (r+1)/2
		}
		far = min(max(far, 0), uvh-1)
		ys := m.Y[r*m.YStride:]
		d := dst.row(r)
		put := func(x int, u, v int32) {
			d[3*x], d[3*x+1], d[3*x+2] = webpYUVToRGB(int32(ys[x]), u, v)
		}
		nu, nv := m.Cb[near*m.CStride:], m.Cr[near*m.CStride:]
		fu, fv := m.Cb[far*m.CStride:], m.Cr[far*m.CStride:]
		edge := func(p, q []uint8, j int) int32 { return (3*int32(p[j]) + int32(q[j]) + 2) >> 2 }
		put(0, edge(nu, fu, 0), edge(nv, fv, 0))
		for j := 1; j <= last; j++ {
			// diag12 and diag03 are libwebp's two diagonal averages of the
			// 2×2 chroma neighbourhood (n = near row, f = far row).
			mix := func(n, f []uint8) (int32, int32) {
				tl, t, l, c := int32(n[j-1]), int32(n[j]), int32(f[j-1]), int32(f[j])
				avg := tl + t + l + c + 8
				diag12 := (avg + 2*(t+l)) >> 3
				diag03 := (avg + 2*(tl+c)) >> 3
				return (diag12 + tl) >> 1, (diag03 + t) >> 1
			}
			u0, u1 := mix(nu, fu)
			v0, v1 := mix(nv, fv)
			put(2*j-1, u0, v0)
			put(2*j, u1, v1) // 2*last <= w-1, so this pixel exists
		}
		if w%2 == 0 && w > 1 {
			put(w-1, edge(nu, fu, last), edge(nv, fv, last))
		}
	}
}
