package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/tokenizer"
	"github.com/kadapt/kadapt/datasets"
	"github.com/kadapt/kadapt/host/data"
)

// zeroshotOptions are the flags of `host zeroshot` (newZeroshotCmd).
type zeroshotOptions struct {
	classes   string
	images    []string
	templates []string
	top       int
	jsonOut   bool
}

// zeroshotRanking is one image's line: its top classes, most likely first.
type zeroshotRanking struct {
	Image   string          `json:"image"`
	Classes []zeroshotClass `json:"classes"`
}

type zeroshotClass struct {
	Class       string  `json:"class"`
	Probability float64 `json:"probability"`
}

func newZeroshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "zeroshot --model PATH --classes a,b,c --images FILE...",
		Short: "classify images zero-shot with a CLIP model's text tower",
		Args:  cobra.ArbitraryArgs, // image files, as --images
	}
	fs := cmd.Flags()
	var o zeroshotOptions
	var mf modelFlags
	addModelFlags(fs, &mf)
	fs.StringVar(&o.classes, "classes", "", "comma-separated class names")
	addImagesFlag(fs, &o.images)
	fs.StringArrayVar(&o.templates, "template", nil, `prompt template with {} for the class (repeatable; default: kadapt's generic set, "a photo of a {}." and seven more)`)
	fs.IntVar(&o.top, "top", 3, "classes to print per image")
	fs.BoolVar(&o.jsonOut, "json", false, "print each image's top classes and probabilities as one JSON array")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return zeroshot(mf, o, args)
	}
	return cmd
}

func zeroshot(mf modelFlags, o zeroshotOptions, args []string) error {
	o.images = append(o.images, args...)
	names := splitList(o.classes)
	if len(names) < 2 || len(o.images) == 0 {
		return usageErr("--classes (at least two) and --images are required")
	}
	_, m, err := mf.open(true)
	if err != nil {
		return err
	}
	if m.Text == nil {
		return fmt.Errorf("%s: the checkpoint has no text tower; zero-shot needs a full CLIP model", mf.model)
	}
	tok, err := loadTokenizer(m)
	if err != nil {
		return err
	}
	if len(o.templates) == 0 {
		o.templates = datasets.DefaultTemplates
	}
	weights, err := backbones.ClassEmbeddings(m.Text, tok, names, o.templates)
	if err != nil {
		return err
	}
	cfg, err := data.PreprocessConfig(m)
	if err != nil {
		return err
	}
	images := data.Files(o.images, cfg)
	shown := display(false).Start("embed", int64(images.Len()))
	embeds, _, err := data.Embed(context.Background(), m.Vision, images, 16, func(done, total int) {
		shown.Update(int64(done), int64(total), "")
	})
	shown.End()
	if err != nil {
		return err
	}
	d := len(weights[0])
	rankings := make([]zeroshotRanking, 0, len(o.images))
	for i, path := range o.images {
		row := embeds.X[i*d : (i+1)*d]
		var norm float64
		for _, v := range row {
			norm += float64(v) * float64(v)
		}
		norm = math.Sqrt(norm)
		logits := make([]float64, len(names))
		maxL := math.Inf(-1)
		for c, w := range weights {
			var dot float64
			for j := range w {
				dot += float64(w[j]) * float64(row[j])
			}
			logits[c] = 100 * dot / norm // CLIP's learned logit scale saturates at 100
			maxL = math.Max(maxL, logits[c])
		}
		var z float64
		for _, l := range logits {
			z += math.Exp(l - maxL)
		}
		order := make([]int, len(names))
		for c := range order {
			order[c] = c
		}
		sort.Slice(order, func(a, b int) bool { return logits[order[a]] > logits[order[b]] })
		r := zeroshotRanking{Image: path}
		for _, c := range order[:min(o.top, len(order))] {
			r.Classes = append(r.Classes, zeroshotClass{names[c], math.Exp(logits[c]-maxL) / z})
		}
		rankings = append(rankings, r)
		if o.jsonOut {
			continue
		}
		fmt.Printf("%s:", path)
		for _, c := range r.Classes {
			fmt.Printf("  %s %.1f%%", c.Class, 100*c.Probability)
		}
		fmt.Println()
	}
	if o.jsonOut {
		return writeJSON(rankings)
	}
	return nil
}

// loadTokenizer reads vocab.json and merges.txt (or tokenizer.json) beside the model.
func loadTokenizer(m *backbones.Model) (*tokenizer.Tokenizer, error) {
	dir := m.Dir
	if dir == "" {
		dir = filepath.Dir(m.Weights)
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%v; %s", err, backbones.FolderContents)
	}
	return tok, nil
}
