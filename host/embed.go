package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/preprocess"
	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

func init() {
	addCommand(newEmbedCmd)
	addCommand(newPreprocessCmd)
	addCommand(newZeroshotCmd)
}

// modelFlags are shared by the commands that load a model.
type modelFlags struct {
	model, config, preset, adapter, device string
}

func addModelFlags(fs interface {
	StringVar(*string, string, string, string)
}, mf *modelFlags) {
	fs.StringVar(&mf.model, "model", "", "Hugging Face model folder or .safetensors file")
	fs.StringVar(&mf.config, "config", "", "config.json describing the architecture (default: the model folder's)")
	fs.StringVar(&mf.preset, "backbone", "", "architecture preset for a bare .safetensors file ("+presetNames()+")")
	fs.StringVar(&mf.adapter, "adapter", "", "a peft LoRA adapter folder to apply")
	fs.StringVar(&mf.device, "device", "cpu", "cpu, cuda or cuda:N")
}

func presetNames() string {
	var names []string
	for n := range backbones.Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

func (mf *modelFlags) open(withText bool) (core.Backend, *backbones.Model, error) {
	if mf.model == "" {
		return nil, nil, usageErr("--model is required")
	}
	b, err := core.OpenBackend(mf.device)
	if err != nil {
		return nil, nil, err
	}
	m, err := backbones.Open(b, mf.model, backbones.OpenOptions{Config: mf.config, Preset: mf.preset, NoText: !withText})
	if err != nil {
		return nil, nil, err
	}
	if mf.adapter != "" {
		if err := applyPeftAdapter(m.Vision, mf.adapter); err != nil {
			return nil, nil, err
		}
	}
	return b, m, nil
}

// preprocessConfig is the model folder's preprocessor_config.json when there is one,
// else the architecture's defaults.
func preprocessConfig(m *backbones.Model) (preprocess.Config, error) {
	if m != nil && m.Dir != "" {
		p := filepath.Join(m.Dir, "preprocessor_config.json")
		if _, err := os.Stat(p); err == nil {
			return preprocess.LoadConfig(p)
		}
	}
	cfg := preprocess.CLIPConfig(224)
	if m != nil {
		vc := m.Vision.Cfg
		cfg.ShortestEdge, cfg.CropHeight, cfg.CropWidth = vc.ImageSize, vc.ImageSize, vc.ImageSize
		cfg.Mean, cfg.Std = vc.Mean, vc.Std
	}
	return cfg, nil
}

func loadImages(paths []string, cfg preprocess.Config) ([]float32, []int, error) {
	per := 3 * cfg.CropHeight * cfg.CropWidth
	out := make([]float32, len(paths)*per)
	for i, p := range paths {
		img, err := preprocess.Decode(p)
		if err != nil {
			return nil, nil, err
		}
		if err := preprocess.ProcessInto(out[i*per:(i+1)*per], img, cfg); err != nil {
			return nil, nil, fmt.Errorf("%s: %v", p, err)
		}
	}
	return out, []int{len(paths), 3, cfg.CropHeight, cfg.CropWidth}, nil
}

// preprocessOptions are the flags of `host preprocess` (newPreprocessCmd).
type preprocessOptions struct {
	images []string
	out    string
}

func newPreprocessCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "preprocess --images FILE... [--model PATH] --out FILE.safetensors",
		Short: "write pixel_values exactly as a model sees them",
		Args:  cobra.ArbitraryArgs, // image files, as --images
	}
	fs := cmd.Flags()
	var o preprocessOptions
	var mf modelFlags
	addModelFlags(fs, &mf)
	fs.StringSliceVar(&o.images, "images", nil, "image files (JPEG, PNG, GIF, BMP, TIFF, WebP)")
	fs.StringVar(&o.out, "out", "", "output .safetensors file")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return preprocessImages(mf, o, args)
	}
	return cmd
}

func preprocessImages(mf modelFlags, o preprocessOptions, args []string) error {
	o.images = append(o.images, args...)
	if len(o.images) == 0 || o.out == "" {
		return usageErr("--images and --out are required")
	}
	var m *backbones.Model
	if mf.model != "" {
		var err error
		if _, m, err = mf.open(false); err != nil {
			return err
		}
	}
	cfg, err := preprocessConfig(m)
	if err != nil {
		return err
	}
	px, shape, err := loadImages(o.images, cfg)
	if err != nil {
		return err
	}
	return safetensors.WriteFile(o.out, map[string]safetensors.Tensor{"pixel_values": {Shape: shape, Data: px}}, nil)
}

// embedOptions are the flags of `host embed` (newEmbedCmd).
type embedOptions struct {
	images []string
	pixels string
	out    string
	batch  int
}

func newEmbedCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "embed --model PATH [--config config.json] (--images FILE... | --pixels FILE.safetensors) --out FILE.safetensors",
		Short: "write image embeddings of a model for images or preprocessed pixels",
		Args:  cobra.ArbitraryArgs, // image files, as --images
	}
	fs := cmd.Flags()
	var o embedOptions
	var mf modelFlags
	addModelFlags(fs, &mf)
	fs.StringSliceVar(&o.images, "images", nil, "image files")
	fs.StringVar(&o.pixels, "pixels", "", "a .safetensors file with pixel_values [N,3,H,W], already preprocessed")
	fs.StringVar(&o.out, "out", "", "output .safetensors file")
	fs.IntVar(&o.batch, "batch", 32, "images per forward pass")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return embed(mf, o, args)
	}
	return cmd
}

func embed(mf modelFlags, o embedOptions, args []string) error {
	o.images = append(o.images, args...)
	if (len(o.images) == 0) == (o.pixels == "") || o.out == "" {
		return usageErr("give --out and exactly one of --images or --pixels")
	}
	b, m, err := mf.open(false)
	if err != nil {
		return err
	}
	var px []float32
	var shape []int
	if o.pixels != "" {
		f, err := safetensors.Open(o.pixels)
		if err != nil {
			return err
		}
		info, ok := f.Info("pixel_values")
		if !ok {
			f.Close()
			return fmt.Errorf("%s: no tensor \"pixel_values\"", o.pixels)
		}
		shape = info.Shape
		px, err = f.Float32s("pixel_values")
		f.Close()
		if err != nil {
			return err
		}
		if j := core.FirstNonFinite(px); j >= 0 {
			return fmt.Errorf("%s: pixel_values element %d is %v", o.pixels, j, px[j])
		}
		vc := m.Vision.Cfg
		if len(shape) != 4 || shape[1] != vc.Channels || shape[2] != vc.ImageSize || shape[3] != vc.ImageSize {
			return fmt.Errorf("%s: pixel_values has shape %v, the model wants [N,%d,%d,%d]", o.pixels, shape, vc.Channels, vc.ImageSize, vc.ImageSize)
		}
	} else {
		cfg, err := preprocessConfig(m)
		if err != nil {
			return err
		}
		if px, shape, err = loadImages(o.images, cfg); err != nil {
			return err
		}
	}
	embeds, pooled, err := embedAll(b, m.Vision, px, shape, o.batch)
	if err != nil {
		return err
	}
	n := shape[0]
	return safetensors.WriteFile(o.out, map[string]safetensors.Tensor{
		"image_embeds": {Shape: []int{n, len(embeds) / n}, Data: embeds},
		"pooled":       {Shape: []int{n, len(pooled) / n}, Data: pooled},
	}, nil)
}

// embedAll runs the tower without gradients in batches and returns the embeddings and
// the pooled tokens, row-major.
func embedAll(b core.Backend, v *backbones.Vision, px []float32, shape []int, batch int) (embeds, pooled []float32, err error) {
	per := shape[1] * shape[2] * shape[3]
	tp := autograd.NewTape(b)
	tp.SetGradEnabled(false)
	for start := 0; start < shape[0]; start += batch {
		end := min(start+batch, shape[0])
		out := v.Forward(tp, tp.Input(px[start*per:end*per], end-start, shape[1], shape[2], shape[3]))
		e := make([]float32, out.Embeds.Value.Size())
		p := make([]float32, out.Pooled.Value.Size())
		b.Download(e, out.Embeds.Value)
		b.Download(p, out.Pooled.Value)
		// Outputs are checked before anything is written or ranked: a NaN that
		// slipped past the input checks (a pixel file, an overflow) would otherwise
		// be written as a result.
		for _, o := range []struct {
			name string
			data []float32
		}{{"image_embeds", e}, {"pooled", p}} {
			if j := core.FirstNonFinite(o.data); j >= 0 {
				row := start + j/(len(o.data)/(end-start))
				return nil, nil, fmt.Errorf("%s of image %d is not finite (%v); nothing was written", o.name, row, o.data[j])
			}
		}
		embeds, pooled = append(embeds, e...), append(pooled, p...)
		tp.Reset()
	}
	return embeds, pooled, nil
}
