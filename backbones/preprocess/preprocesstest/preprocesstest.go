// Package preprocesstest holds the images on which Go's standard decoders and PIL
// part ways, each with the pixels PIL's Image.open(...).convert("RGB") gives, for the
// tests of every package an image passes through on its way to the model
// (preprocess itself, datasets, host/data). Only _test.go files import it.
package preprocesstest

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TransparentGIF is a 6×4 GIF whose 3×2 frame sits at (2,1) and whose palette entry
// 1, the transparent one, is (200,100,50); it returns the file and the RGB image
// PIL's convert("RGB") makes of it: the transparent index keeps its palette colour
// (Go's decoder gives transparent black) and the frame is placed on the logical
// screen, the rest filled with the transparent index (Go's gives the frame alone).
func TransparentGIF(t testing.TB) ([]byte, image.Image) {
	t.Helper()
	pal := color.Palette{color.RGBA{10, 20, 30, 255}, color.RGBA{200, 100, 50, 0}, color.RGBA{0, 255, 0, 255}}
	frame := image.NewPaletted(image.Rect(2, 1, 5, 3), pal)
	for i := range frame.Pix {
		frame.Pix[i] = uint8(i % 3)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{frame}, Delay: []int{0},
		Config: image.Config{ColorModel: pal, Width: 6, Height: 4}}); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	// Go's encoder blanks the transparent entry; other encoders keep its colour in
	// the global colour table, which starts at byte 13.
	if data[10]&0x80 == 0 {
		t.Fatal("encoder wrote no global colour table")
	}
	copy(data[13+3:], []byte{200, 100, 50})
	want := image.NewRGBA(image.Rect(0, 0, 6, 4))
	colours := []color.RGBA{{10, 20, 30, 255}, {200, 100, 50, 255}, {0, 255, 0, 255}}
	for y := range 4 {
		for x := range 6 {
			c := colours[1] // the screen outside the frame: the transparent index
			if (image.Point{x, y}).In(frame.Rect) {
				c = colours[frame.ColorIndexAt(x, y)]
			}
			want.SetRGBA(x, y, c)
		}
	}
	return data, want
}

// LossyWebP returns a lossy WebP file and libwebp's decoding of it (dwebp 1.6, the
// decoder PIL links), from preprocess's testdata: Go's x/image/webp returns YCbCr
// that converting with JPEG's tables gets wrong.
func LossyWebP(t testing.TB) ([]byte, image.Image) {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("preprocesstest: cannot locate its own source for the testdata folder")
	}
	dir := filepath.Join(filepath.Dir(here), "..", "testdata", "webp")
	data, err := os.ReadFile(filepath.Join(dir, "ihc61x45.webp"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "ihc61x45.dwebp.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return data, want
}
