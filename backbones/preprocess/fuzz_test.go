package preprocess

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// FuzzDecodeBytes feeds every decoder (JPEG, PNG, GIF, BMP, TIFF, WebP, told apart by
// content) with arbitrary bytes: an image within MaxPixels or an error, never a
// panic that escapes; small images then go through the whole CLIP pipeline.
func FuzzDecodeBytes(f *testing.F) {
	for _, dir := range []string{"testdata/jpeg", "testdata/webp"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for i, p := range files {
			if i >= 6 {
				break
			}
			if data, err := os.ReadFile(p); err == nil && len(data) < 64<<10 {
				f.Add(data)
			}
		}
	}
	img := image.NewNRGBA(image.Rect(0, 0, 5, 3))
	for i := range img.Pix {
		img.Pix[i] = uint8(37 * i)
	}
	var pb, gb, bb, tb bytes.Buffer
	png.Encode(&pb, img)
	gif.Encode(&gb, img, nil)
	bmp.Encode(&bb, img)
	tiff.Encode(&tb, img, nil)
	f.Add(pb.Bytes())
	f.Add(gb.Bytes())
	f.Add(bb.Bytes())
	f.Add(tb.Bytes())
	gray := image.NewGray16(image.Rect(0, 0, 1, 9))
	gray.SetGray16(0, 4, color.Gray16{Y: 40000})
	pb.Reset()
	png.Encode(&pb, gray)
	f.Add(pb.Bytes())
	pipeline := Pipeline(CLIPConfig(16))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeBytes(data, "x")
		if err != nil {
			return
		}
		b := m.Bounds()
		if b.Empty() || int64(b.Dx())*int64(b.Dy()) > MaxPixels {
			t.Fatalf("decoded %v", b)
		}
		if b.Dx()*b.Dy() > 1<<16 {
			return // the pipeline's cost grows with the image; keep the fuzzer fast
		}
		px, err := pipeline(m)
		if err != nil {
			t.Fatalf("decoded %v but preprocessing failed: %v", b, err)
		}
		if len(px) != 3*16*16 {
			t.Fatalf("%d values, want 3×16×16", len(px))
		}
	})
}

// FuzzLoadConfig feeds preprocessor_config.json, which comes with models: a
// config is an error or one Process can honour with a bounded output.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(`{"crop_size": {"height": 224, "width": 224}, "do_center_crop": true, "do_normalize": true, "do_resize": true,
"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
"rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224}}`))
	f.Add([]byte(`{"size": {"height": 8, "width": 1000000000}, "resample": 0, "image_std": [0, 1, 1]}`))
	f.Add([]byte(`{"size": 32, "crop_size": 16, "do_rescale": false, "image_processor_type": "x"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := filepath.Join(t.TempDir(), "preprocessor_config.json")
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(p)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loaded a config that does not validate: %v", err)
		}
		h, w := c.OutputSize(7, 5)
		if h <= 0 || w <= 0 || h > maxSide*maxSide || w > maxSide*maxSide {
			t.Fatalf("output %dx%d", h, w)
		}
	})
}

// TestDecodeOnlyRegularFiles: `host embed --images` on a FIFO hung in open.
func TestDecodeOnlyRegularFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe.png")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 2)
	go func() {
		_, err := Decode(fifo)
		done <- err
		_, err = Decode("/dev/zero")
		done <- err
	}()
	for _, want := range []string{"pipe.png", "/dev/zero"} {
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("Decode(%s): %v", want, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Decode(%s) hangs", want)
		}
	}
}
