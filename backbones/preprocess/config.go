package preprocess

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// Config describes the preprocessing of one model, in the terms of HF's
// CLIPImageProcessor.
type Config struct {
	// ShortestEdge is the length the shorter image side is resized to; the
	// longer one becomes int(ShortestEdge·long/short), as HF computes it.
	ShortestEdge int
	// CropHeight and CropWidth are the centre crop's size.
	CropHeight, CropWidth int
	// Mean and Std normalise each RGB channel after rescaling.
	Mean, Std [3]float32
	// RescaleFactor multiplies the 8-bit samples (1/255 for CLIP).
	RescaleFactor float32
	// DoResize, DoCenterCrop and DoNormalize switch the steps on.
	DoResize, DoCenterCrop, DoNormalize bool
	// Resample names PIL's filter: "bicubic" (the default when empty),
	// "bilinear", "lanczos", "hamming" or "box".
	Resample string
	// ResizeTo, when set, resizes to exactly {height, width} instead of by
	// the shortest edge (ELEVATER's kitti-distance, HF's size {height, width}).
	ResizeTo *[2]int
	// Backend picks whose arithmetic to reproduce. "pil" (the default when
	// empty) is HF's CLIPImageProcessor and the torchvision-on-PIL pipelines
	// of CLIP and ELEVATER: PIL's 22-bit resampler, floor-centred crop,
	// rescale in float64. "torchvision" is HF's CLIPImageProcessorFast (the
	// default processor of transformers 5): PyTorch's int16-weight uint8
	// resampler (bicubic and bilinear only), torchvision's round-half-even
	// crop offset, and rescale fused into the float32 normalisation. The two
	// differ by one 8-bit level on well under 1% of the pixels.
	Backend string
}

// CLIP's normalisation constants (OpenAI's, as in HF's OPENAI_CLIP_MEAN/STD).
var (
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// maxSide bounds every size in a Config: a typo in a JSON file must not turn
// into a multi-gigabyte buffer.
const maxSide = 1 << 14

// CLIPConfig is CLIPImageProcessor's default for a model with the given
// input resolution: shortest edge and centre crop size, bicubic, 1/255, CLIP
// mean and standard deviation.
func CLIPConfig(size int) Config {
	return Config{
		ShortestEdge:  size,
		CropHeight:    size,
		CropWidth:     size,
		Mean:          CLIPMean,
		Std:           CLIPStd,
		RescaleFactor: 1.0 / 255,
		DoResize:      true,
		DoCenterCrop:  true,
		DoNormalize:   true,
		Resample:      "bicubic",
	}
}

// Validate reports the first setting Process could not honour.
func (c Config) Validate() error {
	if c.DoResize {
		if c.ResizeTo != nil {
			if h, w := c.ResizeTo[0], c.ResizeTo[1]; h <= 0 || w <= 0 || h > maxSide || w > maxSide {
				return fmt.Errorf("preprocess: ResizeTo %dx%d must be positive and at most %d", h, w, maxSide)
			}
		} else if c.ShortestEdge <= 0 || c.ShortestEdge > maxSide {
			return fmt.Errorf("preprocess: ShortestEdge %d must be in 1..%d", c.ShortestEdge, maxSide)
		}
		if _, err := lookupFilter(c.Resample); err != nil {
			return err
		}
	}
	switch c.Backend {
	case "", "pil":
	case "torchvision":
		if c.DoResize && c.Resample != "" && c.Resample != "bicubic" && c.Resample != "bilinear" {
			return fmt.Errorf("preprocess: the torchvision backend has no antialiased %q filter", c.Resample)
		}
	default:
		return fmt.Errorf("preprocess: Backend %q is not \"pil\" or \"torchvision\"", c.Backend)
	}
	if c.DoCenterCrop && (c.CropHeight <= 0 || c.CropWidth <= 0 || c.CropHeight > maxSide || c.CropWidth > maxSide) {
		return fmt.Errorf("preprocess: crop %dx%d must be positive and at most %d", c.CropHeight, c.CropWidth, maxSide)
	}
	if !(c.RescaleFactor > 0) {
		return fmt.Errorf("preprocess: RescaleFactor %v must be positive", c.RescaleFactor)
	}
	if c.DoNormalize {
		for i, s := range c.Std {
			if !(s > 0) {
				return fmt.Errorf("preprocess: Std[%d] = %v must be positive", i, s)
			}
		}
	}
	return nil
}

// resizeSize is the size the resize step produces for a width×height image,
// HF's get_resize_output_image_size with default_to_square=False.
func (c Config) resizeSize(width, height int) (w, h int) {
	if !c.DoResize {
		return width, height
	}
	if c.ResizeTo != nil {
		return c.ResizeTo[1], c.ResizeTo[0]
	}
	s := c.ShortestEdge
	if width <= height {
		return s, int(float64(s*height) / float64(width))
	}
	return int(float64(s*width) / float64(height)), s
}

// OutputSize returns the height and width of the tensor Process makes from
// a width×height image; the tensor has 3·h·w elements.
func (c Config) OutputSize(width, height int) (h, w int) {
	if c.DoCenterCrop {
		return c.CropHeight, c.CropWidth
	}
	w, h = c.resizeSize(width, height)
	return h, w
}

// pilFilters maps PIL's resample codes, as preprocessor_config.json stores
// them, to filter names; 0 (nearest) is not a convolution filter and is not
// supported.
var pilFilters = map[int]string{1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}

// LoadConfig reads a Hugging Face preprocessor_config.json. Keys it does not
// know (image_processor_type, processor_class, ...) are ignored; missing ones
// keep CLIPImageProcessor's defaults; a key of the wrong type is an error
// naming it and the file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("preprocess: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("preprocess: %s: %w", path, err)
	}
	c := CLIPConfig(224)
	bad := func(key, want string, err error) error {
		if err != nil {
			return fmt.Errorf("preprocess: %s: key %q: want %s: %v", path, key, want, err)
		}
		return fmt.Errorf("preprocess: %s: key %q: want %s, have %s", path, key, want, raw[key])
	}
	doRescale := true
	for key, v := range raw {
		if bytes.Equal(v, []byte("null")) {
			continue // HF writes null for "use the default"
		}
		switch key {
		case "size":
			if n, err := jsonInt(v); err == nil {
				c.ShortestEdge, c.ResizeTo = n, nil
				continue
			}
			m, err := jsonIntMap(v)
			if err != nil {
				return Config{}, bad(key, "an int or {shortest_edge} or {height, width}", err)
			}
			if n, ok := m["shortest_edge"]; ok {
				if _, ok := m["longest_edge"]; ok {
					return Config{}, bad(key, "no longest_edge (unsupported)", nil)
				}
				c.ShortestEdge, c.ResizeTo = n, nil
			} else if hh, ok := m["height"]; ok {
				ww, ok := m["width"]
				if !ok {
					return Config{}, bad(key, "width beside height", nil)
				}
				c.ResizeTo = &[2]int{hh, ww}
			} else {
				return Config{}, bad(key, "shortest_edge or height and width", nil)
			}
		case "crop_size":
			if n, err := jsonInt(v); err == nil {
				c.CropHeight, c.CropWidth = n, n
				continue
			}
			m, err := jsonIntMap(v)
			if err != nil {
				return Config{}, bad(key, "an int or {height, width}", err)
			}
			hh, ok1 := m["height"]
			ww, ok2 := m["width"]
			if !ok1 || !ok2 {
				return Config{}, bad(key, "height and width", nil)
			}
			c.CropHeight, c.CropWidth = hh, ww
		case "image_mean", "image_std":
			t, err := jsonTriple(v)
			if err != nil {
				return Config{}, bad(key, "a number or a list of 3 numbers", err)
			}
			if key == "image_mean" {
				c.Mean = t
			} else {
				c.Std = t
			}
		case "rescale_factor":
			var f float64
			if err := json.Unmarshal(v, &f); err != nil {
				return Config{}, bad(key, "a number", err)
			}
			c.RescaleFactor = float32(f)
		case "do_resize", "do_center_crop", "do_normalize", "do_rescale", "do_convert_rgb":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				return Config{}, bad(key, "true or false", err)
			}
			switch key {
			case "do_resize":
				c.DoResize = b
			case "do_center_crop":
				c.DoCenterCrop = b
			case "do_normalize":
				c.DoNormalize = b
			case "do_rescale":
				doRescale = b
			}
			// do_convert_rgb: the model takes 3 channels, so conversion is always done.
		case "resample":
			n, err := jsonInt(v)
			if err != nil {
				return Config{}, bad(key, "a PIL resample code", err)
			}
			name, ok := pilFilters[n]
			if !ok {
				return Config{}, bad(key, "1 (lanczos), 2 (bilinear), 3 (bicubic), 4 (box) or 5 (hamming)", nil)
			}
			c.Resample = name
		}
	}
	if !doRescale {
		c.RescaleFactor = 1
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

func jsonInt(v json.RawMessage) (int, error) {
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return 0, err
	}
	if f != float64(int(f)) || f < -maxSide-1 || f > maxSide+1 {
		return 0, fmt.Errorf("%v is not an integer in range", f)
	}
	return int(f), nil
}

func jsonIntMap(v json.RawMessage) (map[string]int, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, err
	}
	out := make(map[string]int, len(m))
	for k, e := range m {
		if bytes.Equal(e, []byte("null")) {
			continue
		}
		n, err := jsonInt(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = n
	}
	return out, nil
}

func jsonTriple(v json.RawMessage) ([3]float32, error) {
	var one float64
	if err := json.Unmarshal(v, &one); err == nil {
		f := float32(one)
		return [3]float32{f, f, f}, nil
	}
	var list []float64
	if err := json.Unmarshal(v, &list); err != nil {
		return [3]float32{}, err
	}
	if len(list) != 3 {
		return [3]float32{}, fmt.Errorf("%d values", len(list))
	}
	return [3]float32{float32(list[0]), float32(list[1]), float32(list[2])}, nil
}
