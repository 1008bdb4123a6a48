package preprocess

import (
	"image"
	"image/color"
)

// RGB is an in-memory image with three 8-bit samples per pixel and no alpha,
// the equivalent of a PIL image in mode "RGB". Decode returns one.
type RGB struct {
	// Pix holds the samples in R, G, B order; the pixel at (x, y) starts at
	// Pix[(y-Rect.Min.Y)*Stride + (x-Rect.Min.X)*3].
	Pix    []uint8
	Stride int
	Rect   image.Rectangle
}

// NewRGB returns a black RGB image with the given bounds.
func NewRGB(r image.Rectangle) *RGB {
	w, h := r.Dx(), r.Dy()
	if w < 0 || h < 0 {
		w, h = 0, 0
	}
	return &RGB{Pix: make([]uint8, 3*w*h), Stride: 3 * w, Rect: r}
}

// ColorModel implements image.Image.
func (p *RGB) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image.
func (p *RGB) Bounds() image.Rectangle { return p.Rect }

// At implements image.Image.
func (p *RGB) At(x, y int) color.Color {
	if !(image.Point{x, y}.In(p.Rect)) {
		return color.RGBA{}
	}
	i := p.PixOffset(x, y)
	return color.RGBA{p.Pix[i], p.Pix[i+1], p.Pix[i+2], 0xff}
}

// PixOffset returns the index of the first sample of the pixel at (x, y).
func (p *RGB) PixOffset(x, y int) int {
	return (y-p.Rect.Min.Y)*p.Stride + (x-p.Rect.Min.X)*3
}

// row returns the samples of row y (relative to Rect.Min.Y).
func (p *RGB) row(y int) []uint8 {
	o := y * p.Stride
	return p.Pix[o : o+3*p.Rect.Dx()]
}

// ToRGB converts img to 8-bit RGB the way PIL's Image.convert("RGB") does on
// the image PIL would have decoded: alpha is dropped (not composited),
// grayscale is replicated, palette entries keep their colour even when
// transparent, CMYK uses PIL's rounding and *image.YCbCr is treated as JPEG
// data (libjpeg-turbo's fancy upsampling and fixed-point tables). 16-bit
// samples keep their high byte, which is what PIL does for 16-bit RGB(A) and
// LA; for 16-bit grayscale ("I;16") PIL instead saturates everything above
// 255 to white, which destroys the image, so that one case deliberately
// differs. An *RGB is returned as is, without a copy.
func ToRGB(img image.Image) *RGB {
	if m, ok := img.(*RGB); ok {
		return m
	}
	dst := NewRGB(img.Bounds())
	convertInto(dst, img)
	return dst
}

// convertInto fills dst, which has img's bounds and a tight stride, with img
// converted to RGB.
func convertInto(dst *RGB, img image.Image) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	switch m := img.(type) {
	case *RGB:
		for y := 0; y < h; y++ {
			o := m.PixOffset(b.Min.X, b.Min.Y+y)
			copy(dst.row(y), m.Pix[o:o+3*w])
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := dst.row(y)
			for x := 0; x < w; x++ {
				v := src[x]
				d[3*x], d[3*x+1], d[3*x+2] = v, v, v
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := dst.row(y)
			for x := 0; x < w; x++ {
				v := src[2*x] // big-endian: the high byte comes first
				d[3*x], d[3*x+1], d[3*x+2] = v, v, v
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := dst.row(y)
			for x := 0; x < w; x++ {
				d[3*x], d[3*x+1], d[3*x+2] = src[4*x], src[4*x+1], src[4*x+2]
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := dst.row(y)
			for x := 0; x < w; x++ {
				s := src[4*x : 4*x+4]
				if s[3] == 0xff {
					d[3*x], d[3*x+1], d[3*x+2] = s[0], s[1], s[2]
					continue
				}
				// Premultiplied: recover the straight colour PIL would hold.
				c := color.NRGBAModel.Convert(color.RGBA{s[0], s[1], s[2], s[3]}).(color.NRGBA)
				d[3*x], d[3*x+1], d[3*x+2] = c.R, c.G, c.B
			}
		}
	case *image.NRGBA64:
		for y := 0; y < h; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := dst.row(y)
			for x := 0; x < w; x++ {
				d[3*x], d[3*x+1], d[3*x+2] = src[8*x], src[8*x+2], src[8*x+4]
			}
		}
	case *image.RGBA64:
		for y := 0; y < h; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := dst.row(y)
			for x := 0; x < w; x++ {
				s := src[8*x : 8*x+8]
				if s[6] == 0xff && s[7] == 0xff {
					d[3*x], d[3*x+1], d[3*x+2] = s[0], s[2], s[4]
					continue
				}
				c := color.NRGBA64Model.Convert(color.RGBA64{
					uint16(s[0])<<8 | uint16(s[1]), uint16(s[2])<<8 | uint16(s[3]),
					uint16(s[4])<<8 | uint16(s[5]), uint16(s[6])<<8 | uint16(s[7]),
				}).(color.NRGBA64)
				d[3*x], d[3*x+1], d[3*x+2] = uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8)
			}
		}
	case *image.Paletted:
		var lut [256][3]uint8 // indices past the palette stay black, as in PIL
		for i, c := range m.Palette {
			if i < len(lut) {
				lut[i] = straightRGB(c)
			}
		}
		for y := 0; y < h; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := dst.row(y)
			for x := 0; x < w; x++ {
				c := &lut[src[x]]
				d[3*x], d[3*x+1], d[3*x+2] = c[0], c[1], c[2]
			}
		}
	case *image.CMYK:
		for y := 0; y < h; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := dst.row(y)
			for x := 0; x < w; x++ {
				d[3*x], d[3*x+1], d[3*x+2] = cmykToRGB(src[4*x], src[4*x+1], src[4*x+2], src[4*x+3])
			}
		}
	case *image.YCbCr:
		jpegYCbCrInto(dst, m)
	case *image.NYCbCrA:
		jpegYCbCrInto(dst, &m.YCbCr)
	default:
		for y := 0; y < h; y++ {
			d := dst.row(y)
			for x := 0; x < w; x++ {
				c := straightRGB(img.At(b.Min.X+x, b.Min.Y+y))
				d[3*x], d[3*x+1], d[3*x+2] = c[0], c[1], c[2]
			}
		}
	}
}

// straightRGB returns c's non-premultiplied colour with alpha dropped.
func straightRGB(c color.Color) [3]uint8 {
	switch v := c.(type) {
	case color.NRGBA:
		return [3]uint8{v.R, v.G, v.B}
	case color.RGBA:
		if v.A == 0xff {
			return [3]uint8{v.R, v.G, v.B}
		}
	case color.Gray:
		return [3]uint8{v.Y, v.Y, v.Y}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

// cmykToRGB is PIL's cmyk2rgb: each channel is (255-k) - c·(255-k)/255 with
// the division done by MULDIV255's rounding shift trick.
func cmykToRGB(c, m, y, k uint8) (uint8, uint8, uint8) {
	nk := 255 - int32(k)
	f := func(v uint8) uint8 {
		t := int32(v)*nk + 128
		return uint8(nk - ((t>>8)+t)>>8)
	}
	return f(c), f(m), f(y)
}
