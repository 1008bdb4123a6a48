package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/host/data"
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
	fs.StringVar(&mf.device, "device", "cpu", deviceHelp)
}

// addImagesFlag declares --images alike for preprocess, embed and zeroshot, which
// also take the files as arguments.
func addImagesFlag(fs *pflag.FlagSet, images *[]string) {
	fs.StringSliceVar(images, "images", nil, "image files (JPEG, PNG, GIF, BMP, TIFF, WebP), comma-separated; also taken as arguments")
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
	addImagesFlag(fs, &o.images)
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
	cfg, err := data.PreprocessConfig(m)
	if err != nil {
		return err
	}
	px, err := data.Load(context.Background(), data.Files(o.images, cfg))
	if err != nil {
		return err
	}
	shape := append([]int{px.Len()}, px.ExShape...)
	return safetensors.WriteFile(o.out, map[string]safetensors.Tensor{"pixel_values": {Shape: shape, Data: px.X}}, nil)
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
	addImagesFlag(fs, &o.images)
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
	_, m, err := mf.open(false)
	if err != nil {
		return err
	}
	var inputs data.Split // the pixels the tower reads
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
		shape := info.Shape
		px, err := f.Float32s("pixel_values")
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
		if shape[0] == 0 {
			return fmt.Errorf("%s: pixel_values holds no images", o.pixels)
		}
		inputs = &data.Mem{X: px, Labels: make([][]int, shape[0]), ExShape: shape[1:]}
	} else {
		cfg, err := data.PreprocessConfig(m)
		if err != nil {
			return err
		}
		inputs = data.Files(o.images, cfg)
	}
	shown := display(false).Start("embed", int64(inputs.Len()))
	embeds, pooled, err := data.Embed(context.Background(), m.Vision, inputs, o.batch, func(done, total int) {
		shown.Update(int64(done), int64(total), "")
	})
	shown.End()
	if err != nil {
		return fmt.Errorf("%w; nothing was written", err)
	}
	n := inputs.Len()
	return safetensors.WriteFile(o.out, map[string]safetensors.Tensor{
		"image_embeds": {Shape: []int{n, embeds.ExShape[0]}, Data: embeds.X},
		"pooled":       {Shape: []int{n, pooled.ExShape[0]}, Data: pooled.X},
	}, nil)
}
