package preprocess

import (
	"image"
)

// synthRGB is a deterministic test image: a checkerboard of 4×4 cells that
// alternate between a smooth ramp and LCG noise, so resampling meets both
// gentle gradients (rounding ties) and full-range jumps (clipping).
func synthRGB(w, h int, seed uint32) *RGB {
	m := NewRGB(image.Rect(0, 0, w, h))
	s := seed
	for y := range h {
		for x := range w {
			for c := range 3 {
				s = s*1664525 + 1013904223
				v := uint8(s >> 24)
				if (x/4+y/4)%2 == 0 {
					v = uint8(x*7 + y*13 + c*50)
				}
				m.Pix[m.PixOffset(x, y)+c] = v
			}
		}
	}
	return m
}

// goldenResizes lists the cases in testdata/resize, made by Pillow's
// Resample.c (see testdata/README.md).
var goldenResizes = []struct {
	backend, filter      string
	inW, inH, outW, outH int
}{
	{"pil", "bicubic", 37, 23, 13, 9},
	{"pil", "bilinear", 37, 23, 13, 9},
	{"pil", "lanczos", 37, 23, 13, 9},
	{"pil", "hamming", 37, 23, 13, 9},
	{"pil", "box", 37, 23, 13, 9},
	{"pil", "bicubic", 13, 9, 40, 31},
	{"pil", "bilinear", 13, 9, 40, 31},
	{"pil", "lanczos", 13, 9, 40, 31},
	{"pil", "hamming", 13, 9, 40, 31},
	{"pil", "box", 13, 9, 40, 31},
	{"pil", "bicubic", 50, 20, 50, 7},
	{"pil", "bicubic", 17, 17, 64, 5},
	{"pil", "lanczos", 17, 17, 64, 5},
	{"pil", "bicubic", 123, 77, 41, 29},
	{"torchvision", "bicubic", 37, 23, 13, 9},
	{"torchvision", "bilinear", 37, 23, 13, 9},
	{"torchvision", "bicubic", 13, 9, 40, 31},
	{"torchvision", "bicubic", 123, 77, 41, 29},
	{"torchvision", "bicubic", 17, 17, 64, 5},
}
