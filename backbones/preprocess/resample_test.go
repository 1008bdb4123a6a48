package preprocess

import (
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestResizeMatchesPIL compares with outputs of Pillow's own Resample.c
// (and PyTorch's int16 variant of it for the torchvision backend), built as
// a small C program; testdata/README.md says how. Every case must match
// exactly, for the whole image and for an off-centre window of it (the
// pipeline only computes the crop).
func TestResizeMatchesPIL(t *testing.T) {
	for _, g := range goldenResizes {
		name := fmt.Sprintf("%s_%s_%dx%d_%dx%d", g.backend, g.filter, g.inW, g.inH, g.outW, g.outH)
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "resize", name+".rgb"))
			if err != nil {
				t.Fatal(err)
			}
			if len(want) != 3*g.outW*g.outH {
				t.Fatalf("golden has %d bytes, want %d", len(want), 3*g.outW*g.outH)
			}
			src := synthRGB(g.inW, g.inH, uint32(g.inW*1000+g.inH))
			f, err := lookupFilter(g.filter)
			if err != nil {
				t.Fatal(err)
			}
			torch := g.backend == "torchvision"
			full := image.Rect(0, 0, g.outW, g.outH)
			win := image.Rect(g.outW/3, g.outH/4, g.outW-1, g.outH)
			for _, r := range []image.Rectangle{full, win} {
				got := make([]uint8, 3*r.Dx()*r.Dy())
				resizeWindow(got, src, g.outW, g.outH, r, f, torch, new(scratch))
				bad := 0
				for y := range r.Dy() {
					for x := range 3 * r.Dx() {
						w := want[3*g.outW*(r.Min.Y+y)+3*r.Min.X+x]
						if got[3*r.Dx()*y+x] != w {
							if bad < 3 {
								t.Errorf("window %v: sample (%d,%d): %d, want %d", r, x/3, y, got[3*r.Dx()*y+x], w)
							}
							bad++
						}
					}
				}
				if bad > 0 {
					t.Errorf("window %v: %d samples differ", r, bad)
				}
			}
			if !torch {
				m, err := Resize(src, g.outW, g.outH, g.filter)
				if err != nil {
					t.Fatal(err)
				}
				if string(m.Pix) != string(want) {
					t.Errorf("Resize differs from resizeWindow")
				}
			}
		})
	}
}

// refResize is an independent, deliberately plain transcription of PIL's
// algorithm for one channel: per output sample it recomputes the float64
// kernel weights (support widened by the scale when shrinking, normalised
// to sum 1), quantises them to 22 fractional bits, and applies the
// horizontal pass (rounded and clipped to 8 bits) before the vertical one.
func refResize(src [][]float64, outW, outH int, kernel func(float64) float64, support float64) [][]uint8 {
	inH, inW := len(src), len(src[0])
	weights := func(in, out, i int) (lo int, w []float64) {
		scale := float64(in) / float64(out)
		fs := math.Max(scale, 1)
		sup := support * fs
		center := (float64(i) + 0.5) * scale
		lo = int(math.Max(math.Trunc(center-sup+0.5), 0))
		hi := int(math.Min(math.Trunc(center+sup+0.5), float64(in)))
		sum := 0.0
		for x := lo; x < hi; x++ {
			v := kernel((float64(x) - center + 0.5) / fs)
			w = append(w, v)
			sum += v
		}
		for k := range w {
			w[k] = math.Round(w[k]/sum*(1<<22)) / (1 << 22) // round half away from zero
		}
		return lo, w
	}
	apply := func(vals []float64) uint8 {
		s := 0.5 // PIL's 1<<21 rounding offset
		for _, v := range vals {
			s += v
		}
		return uint8(math.Max(0, math.Min(255, math.Floor(s))))
	}
	mid := make([][]float64, inH)
	for y := range inH {
		mid[y] = make([]float64, outW)
		for x := range outW {
			if outW == inW {
				mid[y][x] = src[y][x]
				continue
			}
			lo, w := weights(inW, outW, x)
			terms := make([]float64, len(w))
			for k := range w {
				terms[k] = src[y][lo+k] * w[k]
			}
			mid[y][x] = float64(apply(terms))
		}
	}
	out := make([][]uint8, outH)
	for y := range outH {
		out[y] = make([]uint8, outW)
		for x := range outW {
			if outH == inH {
				out[y][x] = uint8(mid[y][x])
				continue
			}
			lo, w := weights(inH, outH, y)
			terms := make([]float64, len(w))
			for k := range w {
				terms[k] = mid[lo+k][x] * w[k]
			}
			out[y][x] = apply(terms)
		}
	}
	return out
}

// TestResizeReference compares every filter, upscaling, downscaling and
// mixed, against refResize.
func TestResizeReference(t *testing.T) {
	keys := func(x float64) float64 { // Keys' cubic with a = -0.5, in its textbook form
		x = math.Abs(x)
		switch {
		case x < 1:
			return 1.5*x*x*x - 2.5*x*x + 1
		case x < 2:
			return -0.5*x*x*x + 2.5*x*x - 4*x + 2
		}
		return 0
	}
	tri := func(x float64) float64 { return math.Max(0, 1-math.Abs(x)) }
	box := func(x float64) float64 {
		if x > -0.5 && x <= 0.5 {
			return 1
		}
		return 0
	}
	sizes := [][4]int{{16, 12, 5, 7}, {5, 4, 19, 11}, {9, 30, 20, 30}, {31, 8, 31, 3}, {7, 7, 7, 7}, {40, 3, 9, 8}}
	for _, tc := range []struct {
		name    string
		kernel  func(float64) float64
		support float64
	}{{"bicubic", keys, 2}, {"bilinear", tri, 1}, {"box", box, 0.5}} {
		for _, s := range sizes {
			src := synthRGB(s[0], s[1], 7)
			got, err := Resize(src, s[2], s[3], tc.name)
			if err != nil {
				t.Fatal(err)
			}
			for c := range 3 {
				plane := make([][]float64, s[1])
				for y := range plane {
					plane[y] = make([]float64, s[0])
					for x := range plane[y] {
						plane[y][x] = float64(src.Pix[src.PixOffset(x, y)+c])
					}
				}
				want := refResize(plane, s[2], s[3], tc.kernel, tc.support)
				for y := range s[3] {
					for x := range s[2] {
						if g := got.Pix[got.PixOffset(x, y)+c]; g != want[y][x] {
							t.Fatalf("%s %v: channel %d at (%d,%d): %d, want %d", tc.name, s, c, x, y, g, want[y][x])
						}
					}
				}
			}
		}
	}
}

// TestResizeHandValues checks a few results worked out by hand from PIL's
// definition.
func TestResizeHandValues(t *testing.T) {
	row := func(v ...uint8) *RGB {
		m := NewRGB(image.Rect(0, 0, len(v), 1))
		for i, x := range v {
			m.Pix[3*i], m.Pix[3*i+1], m.Pix[3*i+2] = x, x, x
		}
		return m
	}
	tests := []struct {
		name   string
		src    *RGB
		w      int
		filter string
		want   []uint8
	}{
		// 4→2 bilinear: scale 2 widens the triangle to support 2; output 0
		// is centred at 1.0 and sees inputs 0..2 with weights 3:3:1, so
		// (70·3 + 140)/7 = 50; output 1 (centre 3.0) sees inputs 1..3 with
		// weights 1:3:3, (70 + 3·140 + 3·210)/7 = 160.
		{"bilinear halve", row(0, 70, 140, 210), 2, "bilinear", []uint8{50, 160}},
		// 2→4 bicubic: output 0 sits at 0.25 and uses inputs 0 and 1 with
		// kernel values 0.8671875 and -0.0703125, renormalised to sum 1:
		// 100·1.0882 - 200·0.0882 = 91.2; output 1 (at 0.75) has kernel
		// values 0.8671875 and 0.2265625: 100·0.7929 + 200·0.2071 = 120.7.
		// Outputs 2 and 3 mirror them: 179.3 and 208.8.
		{"bicubic double", row(100, 200), 4, "bicubic", []uint8{91, 121, 179, 209}},
		// A constant image stays constant through any filter.
		{"constant lanczos", row(77, 77, 77, 77, 77), 3, "lanczos", []uint8{77, 77, 77}},
		// Same size: PIL skips the pass, so the image is unchanged.
		{"identity", row(1, 250, 3), 3, "bicubic", []uint8{1, 250, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resize(tc.src, tc.w, 1, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.want {
				if g := got.Pix[3*i]; g != w {
					t.Errorf("output %d = %d, want %d", i, g, w)
				}
			}
		})
	}
}

func TestResizeErrors(t *testing.T) {
	src := synthRGB(4, 4, 1)
	for _, tc := range []struct {
		w, h   int
		filter string
	}{{0, 4, "bicubic"}, {4, -1, "bicubic"}, {4, 4, "nearest"}, {1 << 14, 1 << 14, "bicubic"}} {
		if _, err := Resize(src, tc.w, tc.h, tc.filter); err == nil {
			t.Errorf("Resize(%d, %d, %q) succeeded", tc.w, tc.h, tc.filter)
		}
	}
}
