package datasets

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/kadapt/kadapt/backbones/preprocess"
)

// TestImageDecodesLikePIL: training reads images through Dataset.Image and must
// see the pixels `host embed` and PIL see. It decoded with image.Decode until
// both went through preprocess.DecodeBytes, and two formats differed: lossy WebP
// came back as YCbCr that the pipeline converted with JPEG's tables instead of
// libwebp's, and a GIF's transparent index became transparent black, cropped to
// its frame. The references are independent of Go: dwebp's output for the WebP
// file (backbones/preprocess/testdata), and for the GIF the colours PIL's
// convert("RGB") gives (the palette colour of the transparent index, the frame
// placed on the logical screen).
func TestImageDecodesLikePIL(t *testing.T) {
	fixtures := filepath.Join("..", "backbones", "preprocess", "testdata", "webp")
	webpData, err := os.ReadFile(filepath.Join(fixtures, "ihc61x45.webp"))
	if err != nil {
		t.Fatal(err)
	}
	refFile, err := os.Open(filepath.Join(fixtures, "ihc61x45.dwebp.png"))
	if err != nil {
		t.Fatal(err)
	}
	webpRef, err := png.Decode(refFile)
	refFile.Close()
	if err != nil {
		t.Fatal(err)
	}

	gifData, gifRef := transparentGIF(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.webp"), webpData)
	writeFile(t, filepath.Join(dir, "b.gif"), gifData)
	writeZip(t, filepath.Join(dir, "images.zip"), []zipMember{{name: "c.webp", data: webpData}, {name: "d.gif", data: gifData}})
	writeFile(t, filepath.Join(dir, "m.csv"), []byte("a.webp,0\nb.gif,0\nimages.zip@c.webp,0\nimages.zip@d.gif,0\n"))
	d, err := LoadManifest(filepath.Join(dir, "m.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i, want := range []image.Image{webpRef, gifRef, webpRef, gifRef} {
		img, err := d.Image(i)
		if err != nil {
			t.Fatalf("%s: %v", d.Samples[i].Source, err)
		}
		// The pipeline converts what it is given with ToRGB; compare what it sees.
		got := preprocess.ToRGB(img)
		if got.Bounds() != want.Bounds() {
			t.Fatalf("%s: bounds %v, want %v", d.Samples[i].Source, got.Bounds(), want.Bounds())
		}
		bad := 0
		for y := want.Bounds().Min.Y; y < want.Bounds().Max.Y; y++ {
			for x := want.Bounds().Min.X; x < want.Bounds().Max.X; x++ {
				g := color.RGBAModel.Convert(got.At(x, y)).(color.RGBA)
				w := color.RGBAModel.Convert(want.At(x, y)).(color.RGBA)
				if g.R != w.R || g.G != w.G || g.B != w.B {
					bad++
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d pixels differ from PIL's decoding", d.Samples[i].Source, bad, want.Bounds().Dx()*want.Bounds().Dy())
		}
	}
}

// transparentGIF is a 6×4 GIF whose 3×2 frame sits at (2,1) and whose palette
// entry 1, the transparent one, is (200,100,50); it returns the file and the RGB
// image PIL's convert("RGB") makes of it.
func transparentGIF(t *testing.T) ([]byte, image.Image) {
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
