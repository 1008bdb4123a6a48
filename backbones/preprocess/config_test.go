package preprocess

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openaiCLIP is the preprocessor_config.json of openai/clip-vit-base-patch32.
const openaiCLIP = `{
  "crop_size": 224,
  "do_center_crop": true,
  "do_normalize": true,
  "do_resize": true,
  "feature_extractor_type": "CLIPFeatureExtractor",
  "image_mean": [0.48145466, 0.4578275, 0.40821073],
  "image_std": [0.26862954, 0.26130258, 0.27577711],
  "resample": 3,
  "size": 224
}`

func TestLoadConfig(t *testing.T) {
	kitti := CLIPConfig(224)
	kitti.ResizeTo = &[2]int{224, 224}
	rect := CLIPConfig(224)
	rect.ShortestEdge, rect.CropHeight, rect.CropWidth = 336, 320, 300
	rect.Resample, rect.RescaleFactor, rect.DoNormalize = "bilinear", 1, false
	flat := CLIPConfig(224)
	flat.Mean, flat.Std = [3]float32{0.5, 0.5, 0.5}, [3]float32{0.5, 0.5, 0.5}
	tests := []struct {
		name, json string
		want       Config
	}{
		{"openai", openaiCLIP, CLIPConfig(224)},
		{"empty keeps defaults", `{}`, CLIPConfig(224)},
		{"dict forms", `{"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224},
			"rescale_factor": 0.00392156862745098, "do_convert_rgb": true, "image_processor_type": "CLIPImageProcessor"}`, CLIPConfig(224)},
		{"height width resize", `{"size": {"height": 224, "width": 224}}`, kitti},
		{"other values", `{"size": {"shortest_edge": 336}, "crop_size": {"height": 320, "width": 300},
			"resample": 2, "do_rescale": false, "do_normalize": false}`, rect},
		{"scalar mean and std", `{"image_mean": 0.5, "image_std": 0.5}`, flat},
		{"nulls mean default", `{"size": null, "crop_size": null}`, CLIPConfig(224)},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "preprocessor_config.json")
			if err := os.WriteFile(path, []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := LoadConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			if (got.ResizeTo == nil) != (tc.want.ResizeTo == nil) || got.ResizeTo != nil && *got.ResizeTo != *tc.want.ResizeTo {
				t.Errorf("ResizeTo %v, want %v", got.ResizeTo, tc.want.ResizeTo)
			}
			got.ResizeTo, tc.want.ResizeTo = nil, nil
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct{ json, key string }{
		{`{"size": "224"}`, `"size"`},
		{`{"size": {"longest_edge": 224}}`, `"size"`},
		{`{"size": {"shortest_edge": 224, "longest_edge": 400}}`, `"size"`},
		{`{"size": {"height": 224}}`, `"size"`},
		{`{"crop_size": [224, 224]}`, `"crop_size"`},
		{`{"crop_size": 22.5}`, `"crop_size"`},
		{`{"image_mean": [0.5, 0.5]}`, `"image_mean"`},
		{`{"image_std": "x"}`, `"image_std"`},
		{`{"rescale_factor": true}`, `"rescale_factor"`},
		{`{"do_resize": "yes"}`, `"do_resize"`},
		{`{"resample": 0}`, `"resample"`},
		{`{"resample": "bicubic"}`, `"resample"`},
		{`{"size": -5}`, "ShortestEdge"},
		{`{"image_std": [1, 0, 1]}`, "Std[1]"},
		{`{"size": 224`, "unexpected end"},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bad_config.json")
	for _, tc := range tests {
		if err := os.WriteFile(path, []byte(tc.json), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(path)
		if err == nil {
			t.Errorf("%s: no error", tc.json)
			continue
		}
		if !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q should name %s and the file", tc.json, err, tc.key)
		}
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestValidate(t *testing.T) {
	mod := func(f func(*Config)) Config { c := CLIPConfig(224); f(&c); return c }
	bad := []Config{
		{},
		mod(func(c *Config) { c.ShortestEdge = 0 }),
		mod(func(c *Config) { c.CropWidth = -1 }),
		mod(func(c *Config) { c.Resample = "nearest" }),
		mod(func(c *Config) { c.Backend = "opencv" }),
		mod(func(c *Config) { c.Backend, c.Resample = "torchvision", "lanczos" }),
		mod(func(c *Config) { c.ResizeTo = &[2]int{224, 0} }),
		mod(func(c *Config) { c.RescaleFactor = 0 }),
		mod(func(c *Config) { c.Std[2] = 0 }),
		mod(func(c *Config) { c.ShortestEdge = 1 << 20 }),
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: %+v validated", i, c)
		}
	}
	good := []Config{
		CLIPConfig(224),
		CLIPConfig(336),
		mod(func(c *Config) { c.Backend = "torchvision" }),
		mod(func(c *Config) { c.DoResize, c.ShortestEdge, c.Resample = false, 0, "nearest" }),
		mod(func(c *Config) { c.DoNormalize, c.Std = false, [3]float32{} }),
	}
	for i, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("good case %d: %v", i, err)
		}
	}
}

// TestOutputSize checks HF's get_resize_output_image_size arithmetic:
// int(S·long/short), truncated.
func TestOutputSize(t *testing.T) {
	noCrop := CLIPConfig(224)
	noCrop.DoCenterCrop = false
	exact := noCrop
	exact.ResizeTo = &[2]int{100, 300}
	tests := []struct {
		cfg          Config
		w, h         int
		wantW, wantH int
	}{
		{noCrop, 500, 375, 298, 224}, // 224·500/375 = 298.67
		{noCrop, 375, 500, 224, 298},
		{noCrop, 1000, 872, 256, 224}, // 256.88
		{noCrop, 224, 224, 224, 224},
		{noCrop, 10, 1000, 224, 22400},
		{noCrop, 333, 1000, 224, 672}, // 672.67
		{exact, 500, 375, 300, 100},
		{CLIPConfig(224), 500, 375, 224, 224},
	}
	for _, tc := range tests {
		h, w := tc.cfg.OutputSize(tc.w, tc.h)
		if w != tc.wantW || h != tc.wantH {
			t.Errorf("%dx%d → %dx%d, want %dx%d", tc.w, tc.h, w, h, tc.wantW, tc.wantH)
		}
	}
}
