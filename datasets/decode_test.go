package datasets

import (
	"image"
	"image/color"
	"path/filepath"
	"testing"

	"github.com/kadapt/kadapt/backbones/preprocess"
	"github.com/kadapt/kadapt/backbones/preprocess/preprocesstest"
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
	webpData, webpRef := preprocesstest.LossyWebP(t)
	gifData, gifRef := preprocesstest.TransparentGIF(t)
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
