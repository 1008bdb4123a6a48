package preprocess

import (
	"bytes"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/kadapt/kadapt/backbones/preprocess/preprocesstest"
)

// readRefPNG loads a reference decode stored as PNG.
func readRefPNG(t *testing.T, path string) *RGB {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ToRGB(m)
}

func decodeFile(t *testing.T, path string) *RGB {
	t.Helper()
	img, err := Decode(path)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := img.(*RGB)
	if !ok {
		t.Fatalf("Decode returned %T, want *RGB", img)
	}
	return m
}

// diff returns how many samples differ and by how much at most.
func diff(t *testing.T, got, want *RGB) (n, maxd int) {
	t.Helper()
	if got.Rect.Size() != want.Rect.Size() {
		t.Fatalf("size %v, want %v", got.Rect.Size(), want.Rect.Size())
	}
	for y := range want.Rect.Dy() {
		g, w := got.row(y), want.row(y)
		for i := range w {
			d := int(g[i]) - int(w[i])
			if d != 0 {
				n++
				maxd = max(maxd, d, -d)
			}
		}
	}
	return n, maxd
}

// TestDecodeJPEGMatchesLibjpeg compares with djpeg from libjpeg-turbo 2.1.5
// (default settings, as PIL decodes: ISLOW IDCT, fancy upsampling). The
// mosaic images are constant 16×16 tiles encoded at quality 100, so both
// IDCTs are exact and any difference would come from chroma upsampling or
// colour conversion: they must match bit for bit in all six subsampling
// modes. The ihc crops are real image content, where Go's IDCT and
// libjpeg's ISLOW IDCT round differently: measured 177–350 of 8235 samples
// off, by at most 3 (Go's own YCbCr conversion is off on ~4400 samples by
// up to 7 on the same files).
func TestDecodeJPEGMatchesLibjpeg(t *testing.T) {
	tests := []struct {
		name       string
		maxDiff    int
		maxDiffers int
	}{
		{"mosaic61x45_2x2", 0, 0}, // 4:2:0, h2v2 fancy
		{"mosaic61x45_2x1", 0, 0}, // 4:2:2, h2v1 fancy
		{"mosaic61x45_1x2", 0, 0}, // 4:4:0, h1v2 fancy
		{"mosaic61x45_1x1", 0, 0}, // 4:4:4
		{"mosaic61x45_4x1", 0, 0}, // 4:1:1, replicated
		{"mosaic61x45_4x2", 0, 0}, // 4:1:0, replicated
		{"ihc4x5_2x2", 0, 0},      // chroma 2 samples wide: libjpeg falls back to replication
		{"ihc61x45_2x2", 3, 400},
		{"ihc61x45_prog", 3, 400},
		{"ihc61x45_gray", 1, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeFile(t, filepath.Join("testdata", "jpeg", tc.name+".jpg"))
			want := readRefPNG(t, filepath.Join("testdata", "jpeg", tc.name+".djpeg.png"))
			n, maxd := diff(t, got, want)
			t.Logf("%s: %d of %d samples differ from libjpeg-turbo, max %d", tc.name, n, len(want.Pix), maxd)
			if maxd > tc.maxDiff || n > tc.maxDiffers {
				t.Errorf("%d samples differ by up to %d, want ≤ %d by ≤ %d", n, maxd, tc.maxDiffers, tc.maxDiff)
			}
		})
	}
}

// TestDecodeWebPMatchesLibwebp compares with dwebp (libwebp 1.6, fancy
// upsampling as PIL's WebPAnimDecoder uses it): lossy with odd and even
// sizes, lossy with alpha (alpha dropped, RGB kept unpremultiplied) and
// lossless. All bit-identical.
func TestDecodeWebPMatchesLibwebp(t *testing.T) {
	for _, name := range []string{"ihc61x45", "ihc60x44", "ihc61x45_alpha", "ihc61x45_lossless"} {
		t.Run(name, func(t *testing.T) {
			got := decodeFile(t, filepath.Join("testdata", "webp", name+".webp"))
			want := readRefPNG(t, filepath.Join("testdata", "webp", name+".dwebp.png"))
			if n, maxd := diff(t, got, want); n != 0 {
				t.Errorf("%d samples differ from libwebp, max %d", n, maxd)
			}
		})
	}
}

// testImage is a small NRGBA image with every kind of sample value.
func testImage() *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, 7, 5))
	for y := range 5 {
		for x := range 7 {
			o := m.PixOffset(x, y)
			m.Pix[o], m.Pix[o+1], m.Pix[o+2], m.Pix[o+3] = uint8(x*40), uint8(y*60), uint8(255-x*y*7), 255
		}
	}
	return m
}

// TestDecodeFormats round-trips a small image through Go's encoders for
// every lossless format (exact) and JPEG (close to the source), through a
// file and through DecodeReader.
func TestDecodeFormats(t *testing.T) {
	src := testImage()
	pal := image.NewPaletted(src.Rect, palette.WebSafe)
	for y := range 5 {
		for x := range 7 {
			pal.SetColorIndex(x, y, uint8((x*5+y*11)%len(palette.WebSafe)))
		}
	}
	gray := image.NewGray(src.Rect)
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 7)
	}
	enc := func(f func(*bytes.Buffer) error) []byte {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	tests := []struct {
		name string
		data []byte
		want image.Image
		tol  int
	}{
		{"rgb.png", enc(func(b *bytes.Buffer) error { return png.Encode(b, src) }), src, 0},
		{"gray.png", enc(func(b *bytes.Buffer) error { return png.Encode(b, gray) }), gray, 0},
		{"palette.png", enc(func(b *bytes.Buffer) error { return png.Encode(b, pal) }), pal, 0},
		{"palette.gif", enc(func(b *bytes.Buffer) error { return gif.Encode(b, pal, nil) }), pal, 0},
		{"rgb.bmp", enc(func(b *bytes.Buffer) error { return bmp.Encode(b, src) }), src, 0},
		{"gray.bmp", enc(func(b *bytes.Buffer) error { return bmp.Encode(b, gray) }), gray, 0},
		{"rgb.tif", enc(func(b *bytes.Buffer) error { return tiff.Encode(b, src, nil) }), src, 0},
		{"gray.tif", enc(func(b *bytes.Buffer) error { return tiff.Encode(b, gray, &tiff.Options{Compression: tiff.Deflate}) }), gray, 0},
		// Go's encoder always subsamples chroma 4:2:0, which costs up to ~40
		// levels on this image's sharp colour steps; exactness of JPEG
		// decoding is TestDecodeJPEGMatchesLibjpeg's business.
		{"rgb.jpg", enc(func(b *bytes.Buffer) error { return jpeg.Encode(b, src, &jpeg.Options{Quality: 100}) }), src, 48},
		{"gray.jpg", enc(func(b *bytes.Buffer) error { return jpeg.Encode(b, gray, &jpeg.Options{Quality: 100}) }), gray, 2},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			want := NewRGB(tc.want.Bounds())
			for y := range 5 {
				for x := range 7 {
					r, g, b, _ := tc.want.At(x, y).RGBA()
					o := want.PixOffset(x, y)
					want.Pix[o], want.Pix[o+1], want.Pix[o+2] = uint8(r>>8), uint8(g>>8), uint8(b>>8)
				}
			}
			got := decodeFile(t, path)
			if _, maxd := diff(t, got, want); maxd > tc.tol {
				t.Errorf("file: max difference %d, want ≤ %d", maxd, tc.tol)
			}
			img, err := DecodeReader(bytes.NewReader(tc.data), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := diff(t, img.(*RGB), got); n != 0 {
				t.Errorf("DecodeReader and Decode disagree on %d samples", n)
			}
		})
	}
}

// TestDecodeGIFLikePIL checks the two places where Go's GIF decoder and
// PIL's convert("RGB") part ways: the transparent index keeps its palette
// colour (Go turns it into transparent black), and a frame smaller than the
// logical screen is placed on it, the rest filled with the transparent
// index (or index 0 without transparency).
func TestDecodeGIFLikePIL(t *testing.T) {
	data, want := preprocesstest.TransparentGIF(t)
	img, err := DecodeBytes(data, "t.gif")
	if err != nil {
		t.Fatal(err)
	}
	got := img.(*RGB)
	if got.Rect != want.Bounds() {
		t.Fatalf("bounds %v, want the %v logical screen", got.Rect, want.Bounds())
	}
	for y := range got.Rect.Dy() {
		for x := range got.Rect.Dx() {
			r, g, b, _ := want.At(x, y).RGBA()
			o := got.PixOffset(x, y)
			if w := [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}; [3]uint8(got.Pix[o:o+3]) != w {
				t.Errorf("(%d,%d) = %v, want %v", x, y, got.Pix[o:o+3], w)
			}
		}
	}
}

// TestToRGBConversions checks each source pixel type against values worked
// out from PIL's conversion rules.
func TestToRGBConversions(t *testing.T) {
	r1 := image.Rect(0, 0, 1, 1)
	gray16 := image.NewGray16(r1)
	gray16.SetGray16(0, 0, color.Gray16{Y: 0xabcd})
	nrgba := image.NewNRGBA(r1)
	nrgba.SetNRGBA(0, 0, color.NRGBA{200, 100, 50, 0}) // alpha dropped, not composited
	rgba := image.NewRGBA(r1)
	rgba.SetRGBA(0, 0, color.RGBA{100, 50, 25, 128}) // premultiplied: straight is ≈ 199, 100, 50
	nrgba64 := image.NewNRGBA64(r1)
	nrgba64.SetNRGBA64(0, 0, color.NRGBA64{0x1234, 0x5678, 0x9abc, 0x0001})
	rgba64 := image.NewRGBA64(r1)
	rgba64.SetRGBA64(0, 0, color.RGBA64{0xff00, 0x8080, 0x00ff, 0xffff})
	pal := image.NewPaletted(r1, color.Palette{color.NRGBA{1, 2, 3, 4}})
	ycc := image.NewYCbCr(r1, image.YCbCrSubsampleRatio444)
	ycc.Y[0], ycc.Cb[0], ycc.Cr[0] = 76, 85, 255 // JFIF's pure red
	cmyk := func(c, m, y, k uint8) *image.CMYK {
		i := image.NewCMYK(r1)
		i.SetCMYK(0, 0, color.CMYK{c, m, y, k})
		return i
	}
	tests := []struct {
		name string
		img  image.Image
		want [3]uint8
	}{
		{"gray16 keeps the high byte", gray16, [3]uint8{0xab, 0xab, 0xab}},
		{"nrgba drops alpha", nrgba, [3]uint8{200, 100, 50}},
		{"rgba unpremultiplies", rgba, [3]uint8{199, 99, 49}},
		{"nrgba64 high bytes", nrgba64, [3]uint8{0x12, 0x56, 0x9a}},
		{"rgba64 opaque high bytes", rgba64, [3]uint8{0xff, 0x80, 0x00}},
		{"palette keeps colour of transparent entry", pal, [3]uint8{1, 2, 3}},
		// libjpeg: R = 76 + round(1.402·127) = 254; G = 76 + ⌊(-0.34414·-43
		// - 0.71414·127)·2^16 + 2^15⌋/2^16 = 76 - 76 = 0; B = 76 + round(1.772·-43) = 0.
		{"ycbcr as libjpeg", ycc, [3]uint8{254, 0, 0}},
		{"cmyk white", cmyk(0, 0, 0, 0), [3]uint8{255, 255, 255}},
		{"cmyk black", cmyk(0, 0, 0, 255), [3]uint8{0, 0, 0}},
		{"cmyk cyan", cmyk(255, 0, 0, 0), [3]uint8{0, 255, 255}},
		// nk = 191; 191 - MULDIV255(128, 191) = 191 - 96 = 95; 191 - MULDIV255(64, 191) = 191 - 48 = 143.
		{"cmyk mixed", cmyk(128, 64, 0, 64), [3]uint8{95, 143, 191}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ToRGB(tc.img)
			if g := [3]uint8(got.Pix[:3]); g != tc.want {
				t.Errorf("%v, want %v", g, tc.want)
			}
		})
	}
}

// TestYCbCrUpsampling checks jpegYCbCrInto and webpYCbCrInto on random
// planes against a per-pixel restatement of libjpeg's and libwebp's
// formulas, including odd sizes and non-zero origins.
func TestYCbCrUpsampling(t *testing.T) {
	s := uint32(99)
	fill := func(b []uint8) {
		for i := range b {
			s = s*1664525 + 1013904223
			b[i] = uint8(s >> 24)
		}
	}
	clampi := func(v, lo, hi int) int { return min(max(v, lo), hi) }
	jpegRef := func(m *image.YCbCr, x, y int) [3]uint8 {
		hs, vs := subsampling(m.SubsampleRatio)
		cx0, cy0 := m.Rect.Min.X/hs, m.Rect.Min.Y/vs
		dw := (m.Rect.Max.X+hs-1)/hs - cx0
		dh := (m.Rect.Max.Y+vs-1)/vs - cy0
		j, i := x/hs-cx0, y/vs-cy0
		at := func(p []uint8, i, j int) int { return int(p[i*m.CStride+j]) }
		up := func(p []uint8) uint8 {
			// libjpeg's triangle filters written out: 3/4 nearer + 1/4 farther
			// in each upsampled direction, with its alternating biases.
			switch {
			case hs == 2 && vs == 2 && dw > 2:
				fi := clampi(i-1+2*(y%2), 0, dh-1)
				fj := clampi(j-1+2*(x%2), 0, dw-1)
				sum := 9*at(p, i, j) + 3*at(p, fi, j) + 3*at(p, i, fj) + at(p, fi, fj)
				return uint8((sum + 8 - x%2) / 16)
			case hs == 2 && vs == 1 && dw > 2:
				fj := clampi(j-1+2*(x%2), 0, dw-1)
				return uint8((3*at(p, i, j) + at(p, i, fj) + 1 + x%2) / 4)
			case hs == 1 && vs == 2:
				fi := clampi(i-1+2*(y%2), 0, dh-1)
				return uint8((3*at(p, i, j) + at(p, fi, j) + 1 + y%2) / 4)
			}
			return uint8(at(p, i, j))
		}
		cb, cr := float64(up(m.Cb))-128, float64(up(m.Cr))-128
		yy := float64(m.Y[m.YOffset(x, y)])
		fix := func(f float64) float64 { return float64(int(f*65536 + 0.5)) }
		c := func(v float64) uint8 { return uint8(min(max(v, 0), 255)) }
		return [3]uint8{
			c(yy + float64(int((fix(1.402)*cr+32768))>>16)),
			c(yy + float64((int(-fix(0.34414)*cb-fix(0.71414)*cr)+32768)>>16)),
			c(yy + float64(int((fix(1.772)*cb+32768))>>16)),
		}
	}
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	}
	for _, r := range []image.Rectangle{image.Rect(0, 0, 13, 9), image.Rect(0, 0, 4, 6), image.Rect(2, 4, 17, 11)} {
		for _, ratio := range ratios {
			m := image.NewYCbCr(r, ratio)
			fill(m.Y)
			fill(m.Cb)
			fill(m.Cr)
			got := ToRGB(m)
			for y := r.Min.Y; y < r.Max.Y; y++ {
				for x := r.Min.X; x < r.Max.X; x++ {
					o := got.PixOffset(x, y)
					if g, w := [3]uint8(got.Pix[o:o+3]), jpegRef(m, x, y); g != w {
						t.Fatalf("%v %v at (%d,%d): %v, want %v", r, ratio, x, y, g, w)
					}
				}
			}
		}
	}

	// libwebp: 9/3/3/1 weights rounded in two stages, edges single-row.
	webpRef := func(m *image.YCbCr, x, y int) [3]uint8 {
		h := m.Rect.Dy()
		uvh, uvw := (h+1)/2, (m.Rect.Dx()+1)/2
		near, far := y/2, y/2-1
		if y%2 == 1 {
			near, far = (y-1)/2, (y+1)/2
		}
		far = clampi(far, 0, uvh-1)
		up := func(p []uint8) int32 {
			n := func(j int) int32 { return int32(p[near*m.CStride+clampi(j, 0, uvw-1)]) }
			f := func(j int) int32 { return int32(p[far*m.CStride+clampi(j, 0, uvw-1)]) }
			if x == 0 || (x == m.Rect.Dx()-1 && x%2 == 1) {
				j := x / 2
				return (3*n(j) + f(j) + 2) >> 2
			}
			// Pixel x lies between chroma columns (x-1)/2 and (x+1)/2 and is
			// nearer the first when odd: 9/16 near-near, 3/16 near row × far
			// column and far row × near column, 1/16 far-far, rounded first
			// to eighths of the diagonal pair and then averaged.
			nc, fc := (x-1)/2, (x+1)/2
			if x%2 == 0 {
				nc, fc = fc, nc
			}
			diag := (n(nc) + 3*n(fc) + 3*f(nc) + f(fc) + 8) >> 3
			return (diag + n(nc)) >> 1
		}
		u, v := up(m.Cb), up(m.Cr)
		yv := int32(m.Y[y*m.YStride+x])
		cl := func(z int32) uint8 { return uint8(min(max(z>>6, 0), 255)) }
		return [3]uint8{
			cl(yv*19077>>8 + v*26149>>8 - 14234),
			cl(yv*19077>>8 - u*6419>>8 - v*13320>>8 + 8708),
			cl(yv*19077>>8 + u*33050>>8 - 17685),
		}
	}
	for _, size := range [][2]int{{13, 9}, {12, 8}, {1, 1}, {2, 3}} {
		m := image.NewYCbCr(image.Rect(0, 0, size[0], size[1]), image.YCbCrSubsampleRatio420)
		fill(m.Y)
		fill(m.Cb)
		fill(m.Cr)
		got := NewRGB(m.Rect)
		webpYCbCrInto(got, m)
		for y := range size[1] {
			for x := range size[0] {
				o := got.PixOffset(x, y)
				if g, w := [3]uint8(got.Pix[o:o+3]), webpRef(m, x, y); g != w {
					t.Fatalf("webp %v at (%d,%d): %v, want %v", size, x, y, g, w)
				}
			}
		}
	}
}

// TestDecodeErrors feeds truncated, corrupt and oversized files; every
// error must name the file, and nothing may panic.
func TestDecodeErrors(t *testing.T) {
	var pngData, jpgData, gifData, bmpData bytes.Buffer
	src := testImage()
	if err := png.Encode(&pngData, src); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&jpgData, src, nil); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&gifData, src, nil); err != nil {
		t.Fatal(err)
	}
	if err := bmp.Encode(&bmpData, src); err != nil {
		t.Fatal(err)
	}
	webpData, err := os.ReadFile(filepath.Join("testdata", "webp", "ihc61x45.webp"))
	if err != nil {
		t.Fatal(err)
	}
	// A PNG header claiming 100000×100000 pixels: must be refused before any
	// pixel buffer is allocated.
	huge := append([]byte(nil), pngData.Bytes()[:33]...)
	copy(huge[16:], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})

	dir := t.TempDir()
	cases := map[string][]byte{
		"empty.png":       {},
		"unknown.ico":     []byte("\x00\x00\x01\x00 not supported"),
		"corrupt.tif":     []byte("II*\x00 not a directory"),
		"truncated.png":   pngData.Bytes()[:pngData.Len()/2],
		"truncated.jpg":   jpgData.Bytes()[:jpgData.Len()/2],
		"truncated.gif":   gifData.Bytes()[:gifData.Len()/2],
		"truncated.bmp":   bmpData.Bytes()[:bmpData.Len()/2],
		"truncated.webp":  webpData[:len(webpData)/2],
		"header-only.jpg": jpgData.Bytes()[:20],
		"garbage.png":     append(append([]byte(nil), pngData.Bytes()[:8]...), bytes.Repeat([]byte{0x5a}, 64)...),
		"huge.png":        huge,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Decode(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if _, err := ProcessFile(path, CLIPConfig(224)); err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("ProcessFile error %v does not name %s", err, path)
			}
		})
	}
	if _, err := Decode(filepath.Join(dir, "missing.png")); err == nil || !strings.Contains(err.Error(), "missing.png") {
		t.Errorf("missing file: %v", err)
	}
}

// TestDecodeMutations flips bytes of valid files of every format; decoding
// may fail but must return (no panic escapes DecodeBytes) and name the input.
func TestDecodeMutations(t *testing.T) {
	var seeds [][]byte
	for _, p := range []string{"jpeg/ihc61x45_2x2.jpg", "jpeg/ihc61x45_prog.jpg", "webp/ihc61x45.webp", "webp/ihc61x45_lossless.webp", "webp/ihc61x45_alpha.webp"} {
		b, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	var b bytes.Buffer
	if err := gif.Encode(&b, testImage(), nil); err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, b.Bytes())
	b = bytes.Buffer{}
	if err := bmp.Encode(&b, testImage()); err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, b.Bytes())
	s := uint32(1)
	rnd := func(n int) int { s = s*1664525 + 1013904223; return int(s>>8) % n }
	for i, seed := range seeds {
		for range 150 {
			data := append([]byte(nil), seed...)
			for range 1 + rnd(4) {
				data[rnd(len(data))] = byte(rnd(256))
			}
			if rnd(4) == 0 {
				data = data[:rnd(len(data))+1]
			}
			img, err := DecodeBytes(data, "mutant")
			if err != nil && !strings.Contains(err.Error(), "mutant") {
				t.Fatalf("seed %d: error %q does not name the input", i, err)
			}
			if err == nil && img.Bounds().Empty() {
				t.Fatalf("seed %d: empty image without error", i)
			}
		}
	}
}
