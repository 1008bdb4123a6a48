package preprocess

import (
	"fmt"
	"image"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// rawConfig keeps the 8-bit samples as they are (no rescale, no
// normalisation), so the output shows where every pixel went.
func rawConfig(cropH, cropW int, backend string) Config {
	return Config{CropHeight: cropH, CropWidth: cropW, RescaleFactor: 1, DoCenterCrop: true, Backend: backend}
}

// TestCenterCrop checks crop offsets and zero padding against offsets
// worked out by hand from HF's slow processor (top = (h - ch) // 2, so
// padding puts the extra row first) and torchvision's center_crop
// (int(round((h - ch) / 2)) with halves to even, padding puts the extra
// row last).
func TestCenterCrop(t *testing.T) {
	tests := []struct {
		backend           string
		w, h, cw, ch      int
		wantLeft, wantTop int // where output (0,0) is in the image
	}{
		{"pil", 9, 7, 4, 4, 2, 1},          // 5/2 → 2, 3/2 → 1
		{"torchvision", 9, 7, 4, 4, 2, 2},  // round(2.5) = 2, round(1.5) = 2
		{"torchvision", 11, 9, 4, 4, 4, 2}, // round(3.5) = 4, round(2.5) = 2
		{"pil", 11, 9, 4, 4, 3, 2},
		{"pil", 3, 2, 6, 5, -2, -2},         // -3 // 2 = -2, -3 // 2 = -2
		{"torchvision", 3, 2, 6, 5, -1, -1}, // pads 3 // 2 = 1 before
		{"pil", 4, 4, 8, 2, -2, 1},
		{"torchvision", 4, 4, 8, 2, -2, 1},
	}
	for _, tc := range tests {
		src := synthRGB(tc.w, tc.h, 3)
		got, err := Process(src, rawConfig(tc.ch, tc.cw, tc.backend))
		if err != nil {
			t.Fatal(err)
		}
		plane := tc.cw * tc.ch
		for c := range 3 {
			for oy := range tc.ch {
				for ox := range tc.cw {
					x, y := ox+tc.wantLeft, oy+tc.wantTop
					want := 0.0
					if x >= 0 && y >= 0 && x < tc.w && y < tc.h {
						want = float64(src.Pix[src.PixOffset(x, y)+c])
					}
					if g := got[c*plane+oy*tc.cw+ox]; float64(g) != want {
						t.Fatalf("%+v: channel %d (%d,%d) = %v, want %v", tc, c, ox, oy, g, want)
					}
				}
			}
		}
	}
}

// TestNormalize checks the lookup tables against the closed form
// (v·factor - mean)/std in float64; float32 rounding is all that may differ.
func TestNormalize(t *testing.T) {
	for _, backend := range []string{"pil", "torchvision"} {
		cfg := CLIPConfig(224)
		cfg.Backend = backend
		p, err := prepare(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for c := range 3 {
			for v := range 256 {
				want := (float64(v)/255 - float64(CLIPMean[c])) / float64(CLIPStd[c])
				if d := math.Abs(float64(p.lut[c][v]) - want); d > 1e-6 {
					t.Errorf("%s: channel %d value %d: %v, want %v", backend, c, v, p.lut[c][v], want)
				}
			}
		}
		// Rescale only: HF's slow path rounds 51/255 once (float32 0.2);
		// torch multiplies float32(51) by float32(1/255) = 0.0039215689,
		// giving 0.2000000118, which rounds up to the float32 above 0.2.
		want := map[string]float32{"pil": 0.2, "torchvision": math.Nextafter32(0.2, 1)}[backend]
		cfg.DoNormalize = false
		p, _ = prepare(cfg)
		if p.lut[1][51] != want || p.lut[2][255] != 1 {
			t.Errorf("%s: rescale only: %v, %v, want %v, 1", backend, p.lut[1][51], p.lut[2][255], want)
		}
	}
}

// TestProcessMatchesSteps runs the pipeline step by step through public
// pieces (full-size Resize, then crop and normalise by hand) and compares
// with Process, which resamples only the crop window.
func TestProcessMatchesSteps(t *testing.T) {
	type tc struct {
		w, h   int
		cfg    Config
		origin image.Point
	}
	small := CLIPConfig(16)
	small.CropHeight, small.CropWidth = 12, 15
	pad := CLIPConfig(8)
	pad.CropHeight, pad.CropWidth = 11, 9 // larger than the resized 8x… image: padding
	exact := CLIPConfig(10)
	exact.ResizeTo = &[2]int{7, 13}
	lanczos := small
	lanczos.Resample = "lanczos"
	tests := []tc{
		{50, 37, small, image.Point{}},
		{37, 50, small, image.Point{3, 5}},
		{20, 21, pad, image.Point{}},
		{40, 30, exact, image.Point{}},
		{9, 9, lanczos, image.Point{-2, 7}},
	}
	for i, tc := range tests {
		base := synthRGB(tc.w, tc.h, uint32(i))
		src := &RGB{Pix: base.Pix, Stride: base.Stride, Rect: base.Rect.Add(tc.origin)}
		got, err := Process(src, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		rw, rh := tc.cfg.resizeSize(tc.w, tc.h)
		resized, err := Resize(base, rw, rh, tc.cfg.Resample)
		if err != nil {
			t.Fatal(err)
		}
		oh, ow := tc.cfg.OutputSize(tc.w, tc.h)
		top, left := (rh-oh)>>1, (rw-ow)>>1
		if len(got) != 3*oh*ow {
			t.Fatalf("case %d: %d values, want %d", i, len(got), 3*oh*ow)
		}
		for c := range 3 {
			for y := range oh {
				for x := range ow {
					v := 0.0
					if sx, sy := x+left, y+top; sx >= 0 && sy >= 0 && sx < rw && sy < rh {
						v = float64(resized.Pix[resized.PixOffset(sx, sy)+c])
					}
					want := (v/255 - float64(tc.cfg.Mean[c])) / float64(tc.cfg.Std[c])
					if g := got[(c*oh+y)*ow+x]; math.Abs(float64(g)-want) > 1e-6 {
						t.Fatalf("case %d: channel %d (%d,%d) = %v, want %v", i, c, x, y, g, want)
					}
				}
			}
		}
		// A non-*RGB image of the same pixels goes through ToRGB first.
		nrgba := image.NewNRGBA(src.Rect)
		for y := range tc.h {
			for x := range tc.w {
				o, n := base.PixOffset(x, y), nrgba.PixOffset(x+tc.origin.X, y+tc.origin.Y)
				copy(nrgba.Pix[n:n+3], base.Pix[o:o+3])
				nrgba.Pix[n+3] = 9
			}
		}
		again, err := Pipeline(tc.cfg)(nrgba)
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if again[j] != got[j] {
				t.Fatalf("case %d: Pipeline on NRGBA differs at %d", i, j)
			}
		}
	}
}

func TestProcessErrors(t *testing.T) {
	img := synthRGB(8, 8, 1)
	if err := ProcessInto(make([]float32, 10), img, CLIPConfig(4)); err == nil || !strings.Contains(err.Error(), "48") {
		t.Errorf("short destination: %v", err)
	}
	if _, err := Process(img, Config{}); err == nil {
		t.Error("zero Config accepted")
	}
	if _, err := Pipeline(Config{})(img); err == nil {
		t.Error("Pipeline with zero Config accepted")
	}
	if _, err := Process(NewRGB(image.Rect(0, 0, 0, 5)), CLIPConfig(4)); err == nil {
		t.Error("empty image accepted")
	}
	noCrop := CLIPConfig(224)
	noCrop.DoCenterCrop = false
	if _, err := Process(NewRGB(image.Rect(0, 0, 1, 400000)), noCrop); err == nil {
		t.Error("224x89600000 output accepted")
	}
}

// TestProcessIntoAllocs: the data loader's steady state must not allocate.
func TestProcessIntoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	img := synthRGB(120, 90, 1)
	cfg := CLIPConfig(64)
	dst := make([]float32, 3*64*64)
	p, err := prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if err := p.into(dst, img); err != nil {
			t.Fatal(err)
		}
	})
	// A GC during the run may empty the pool once; anything systematic fails.
	if allocs > 0.5 {
		t.Errorf("%v allocations per call", allocs)
	}
}

func TestProcessFile(t *testing.T) {
	path := filepath.Join("testdata", "camera.png")
	got, err := ProcessFile(path, CLIPConfig(32))
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Process(img, CLIPConfig(32))
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ProcessFile differs from Decode+Process at %d", i)
		}
	}
	// Grayscale: the three channels hold the same samples.
	for i := range 32 * 32 {
		for c := 1; c < 3; c++ {
			v0 := float64(got[i])*float64(CLIPStd[0]) + float64(CLIPMean[0])
			vc := float64(got[c*32*32+i])*float64(CLIPStd[c]) + float64(CLIPMean[c])
			if math.Abs(v0-vc) > 1e-6 {
				t.Fatalf("channel %d differs from channel 0 at %d", c, i)
			}
		}
	}
}

// TestProcessConcurrent shares one Pipeline between goroutines working on
// images of different sizes (so pooled buffers change hands and sizes); each
// result must equal the serial one.
func TestProcessConcurrent(t *testing.T) {
	run := Pipeline(CLIPConfig(24))
	imgs := []*RGB{synthRGB(40, 30, 1), synthRGB(25, 61, 2), synthRGB(24, 24, 3), synthRGB(90, 11, 4)}
	want := make([][]float32, len(imgs))
	for i, m := range imgs {
		var err error
		if want[i], err = run(m); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for n := range 20 {
				i := (g + n) % len(imgs)
				got, err := run(imgs[i])
				if err == nil {
					for j := range got {
						if got[j] != want[i][j] {
							err = fmt.Errorf("image %d differs at %d", i, j)
							break
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
