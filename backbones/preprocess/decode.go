package preprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

const (
	// MaxPixels bounds width·height of a decoded image. Headers are checked
	// before the decoder allocates, so a tiny file claiming a huge image
	// costs nothing; 64 Mi pixels is far beyond any dataset image.
	MaxPixels = 1 << 26
	// MaxFileSize bounds the encoded size Decode and DecodeReader will read.
	MaxFileSize = 1 << 28
)

// Decode reads the image file at path (JPEG, PNG, GIF, BMP, TIFF or WebP,
// told apart by content, not extension) and returns it converted to RGB as an
// *RGB, matching what PIL's Image.open(path).convert("RGB") holds. For GIF
// that is the first frame on the logical screen.
func Decode(path string) (image.Image, error) {
	// Only regular files: opening a FIFO blocks, and /dev/zero never ends. The
	// check comes before opening and again on the open file.
	check := func(st os.FileInfo, err error) error {
		switch {
		case err != nil:
			return fmt.Errorf("preprocess: %w", err)
		case !st.Mode().IsRegular():
			return fmt.Errorf("preprocess: %s is not a regular file (%s)", path, st.Mode().Type())
		case st.Size() > MaxFileSize:
			return fmt.Errorf("preprocess: %s: file is %d bytes, more than the %d allowed", path, st.Size(), MaxFileSize)
		}
		return nil
	}
	if err := check(os.Stat(path)); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	defer f.Close()
	if err := check(f.Stat()); err != nil {
		return nil, err
	}
	return DecodeReader(f, path)
}

// DecodeReader is Decode for an already open stream; name identifies it in
// errors.
func DecodeReader(r io.Reader, name string) (image.Image, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("preprocess: %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("preprocess: %s: more than %d bytes", name, MaxFileSize)
	}
	return DecodeBytes(data, name)
}

// DecodeBytes is Decode for an encoded image held in memory (a zip member,
// say); name identifies it in errors.
func DecodeBytes(data []byte, name string) (img image.Image, err error) {
	// The standard decoders are not fuzz-proof on every input; a panic on a
	// corrupt file must not take the data loader down with it.
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("preprocess: %s: corrupt image (decoder panicked: %v)", name, p)
		}
	}()
	format := sniff(data)
	if format == "" {
		head := data[:min(len(data), 12)]
		return nil, fmt.Errorf("preprocess: %s: not a JPEG, PNG, GIF, BMP, TIFF or WebP file (starts with %q)", name, head)
	}
	var cfg image.Config
	switch format {
	case "jpeg":
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(data))
	case "png":
		cfg, err = png.DecodeConfig(bytes.NewReader(data))
	case "gif":
		cfg, err = gif.DecodeConfig(bytes.NewReader(data))
	case "bmp":
		cfg, err = bmp.DecodeConfig(bytes.NewReader(data))
	case "tiff":
		cfg, err = tiff.DecodeConfig(bytes.NewReader(data))
	case "webp":
		cfg, err = webp.DecodeConfig(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("preprocess: %s: reading %s header: %w", name, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("preprocess: %s: %s header gives an empty %dx%d image", name, format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("preprocess: %s: %dx%d %s image exceeds %d pixels", name, cfg.Width, cfg.Height, format, MaxPixels)
	}
	var m image.Image
	switch format {
	case "jpeg":
		m, err = jpeg.Decode(bytes.NewReader(data))
	case "png":
		m, err = png.Decode(bytes.NewReader(data))
	case "gif":
		m, err = gif.Decode(bytes.NewReader(data))
	case "bmp":
		m, err = bmp.Decode(bytes.NewReader(data))
	case "tiff":
		m, err = tiff.Decode(bytes.NewReader(data))
	case "webp":
		m, err = webp.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("preprocess: %s: decoding %s: %w", name, format, err)
	}
	switch format {
	case "gif":
		p, ok := m.(*image.Paletted)
		if !ok {
			return nil, fmt.Errorf("preprocess: %s: GIF decoder returned %T", name, m)
		}
		out, err := gifToRGB(p, data)
		if err != nil {
			return nil, fmt.Errorf("preprocess: %s: %w", name, err)
		}
		return out, nil
	case "webp":
		var ycc *image.YCbCr
		switch v := m.(type) {
		case *image.YCbCr:
			ycc = v
		case *image.NYCbCrA:
			ycc = &v.YCbCr
		}
		if ycc != nil && ycc.SubsampleRatio == image.YCbCrSubsampleRatio420 && ycc.Rect.Min == (image.Point{}) {
			out := NewRGB(ycc.Rect)
			webpYCbCrInto(out, ycc)
			return out, nil
		}
	}
	return ToRGB(m), nil
}

// sniff names the format from the magic bytes.
func sniff(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff:
		return "jpeg"
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "gif"
	case bytes.HasPrefix(b, []byte("BM")):
		return "bmp"
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "tiff"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

// gifFrame is what the GIF headers say about the first frame: Go's decoder
// replaces the transparent palette entry with transparent black and returns
// only the frame's own rectangle, while PIL keeps the entry's RGB and places
// the frame on the logical screen, filled with the transparent index (or
// index 0) elsewhere.
type gifFrame struct {
	screen      image.Rectangle
	table       []byte // RGB triples of the colour table the frame uses
	transparent int    // -1 if none
}

var errGIFHeader = errors.New("malformed GIF header")

func parseGIF(data []byte) (gifFrame, error) {
	f := gifFrame{transparent: -1}
	if len(data) < 13 {
		return f, errGIFHeader
	}
	w, h := binary.LittleEndian.Uint16(data[6:]), binary.LittleEndian.Uint16(data[8:])
	f.screen = image.Rect(0, 0, int(w), int(h))
	pos := 13
	if flags := data[10]; flags&0x80 != 0 {
		n := 3 << (flags&7 + 1)
		if pos+n > len(data) {
			return f, errGIFHeader
		}
		f.table = data[pos : pos+n]
		pos += n
	}
	for pos < len(data) {
		switch data[pos] {
		case 0x21: // extension: label, then sub-blocks
			if pos+2 > len(data) {
				return f, errGIFHeader
			}
			label := data[pos+1]
			pos += 2
			if label == 0xf9 && pos+5 <= len(data) && data[pos] == 4 {
				f.transparent = -1
				if data[pos+1]&1 != 0 {
					f.transparent = int(data[pos+4])
				}
			}
			for {
				if pos >= len(data) {
					return f, errGIFHeader
				}
				n := int(data[pos])
				pos += 1 + n
				if n == 0 {
					break
				}
			}
		case 0x2c: // image descriptor of the first frame
			if pos+10 > len(data) {
				return f, errGIFHeader
			}
			if flags := data[pos+9]; flags&0x80 != 0 {
				n := 3 << (flags&7 + 1)
				if pos+10+n > len(data) {
					return f, errGIFHeader
				}
				f.table = data[pos+10 : pos+10+n]
			}
			return f, nil
		default:
			return f, errGIFHeader
		}
	}
	return f, errGIFHeader
}

func gifToRGB(p *image.Paletted, data []byte) (*RGB, error) {
	f, err := parseGIF(data)
	if err != nil {
		return nil, err
	}
	screen := f.screen.Union(p.Rect)
	if int64(screen.Dx())*int64(screen.Dy()) > MaxPixels {
		return nil, fmt.Errorf("GIF screen %dx%d exceeds %d pixels", screen.Dx(), screen.Dy(), MaxPixels)
	}
	var lut [256][3]uint8 // PIL pads short palettes with black
	for i := 0; 3*i+2 < len(f.table) && i < 256; i++ {
		lut[i] = [3]uint8{f.table[3*i], f.table[3*i+1], f.table[3*i+2]}
	}
	out := NewRGB(screen)
	bg := lut[0]
	if f.transparent >= 0 {
		bg = lut[f.transparent]
	}
	for i := 0; i < len(out.Pix); i += 3 {
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = bg[0], bg[1], bg[2]
	}
	for y := p.Rect.Min.Y; y < p.Rect.Max.Y; y++ {
		src := p.Pix[p.PixOffset(p.Rect.Min.X, y):]
		d := out.Pix[out.PixOffset(p.Rect.Min.X, y):]
		for x := 0; x < p.Rect.Dx(); x++ {
			c := &lut[src[x]]
			d[3*x], d[3*x+1], d[3*x+2] = c[0], c[1], c[2]
		}
	}
	return out, nil
}
