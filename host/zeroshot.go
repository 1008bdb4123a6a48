package main

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/tokenizer"
	"github.com/kadapt/kadapt/datasets"
)

func cmdZeroshot(args []string) error {
	fs := newFlags("zeroshot", "zeroshot --model PATH --classes a,b,c --images FILE...")
	var mf modelFlags
	addModelFlags(fs, &mf)
	classes := fs.String("classes", "", "comma-separated class names")
	images := fs.StringSlice("images", nil, "image files")
	templates := fs.StringArray("template", nil, `prompt template with {} for the class (repeatable; default: kadapt's generic set, "a photo of a {}." and seven more)`)
	top := fs.Int("top", 3, "classes to print per image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	*images = append(*images, fs.Args()...)
	names := splitList(*classes)
	if len(names) < 2 || len(*images) == 0 {
		return usageErr("--classes (at least two) and --images are required")
	}
	b, m, err := mf.open(true)
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
	if len(*templates) == 0 {
		*templates = datasets.DefaultTemplates
	}
	weights, err := backbones.ClassEmbeddings(m.Text, tok, names, *templates)
	if err != nil {
		return err
	}
	cfg, err := preprocessConfig(m)
	if err != nil {
		return err
	}
	px, shape, err := loadImages(*images, cfg)
	if err != nil {
		return err
	}
	embeds, _, err := embedAll(b, m.Vision, px, shape, 16)
	if err != nil {
		return err
	}
	d := len(weights[0])
	for i, path := range *images {
		row := embeds[i*d : (i+1)*d]
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
		fmt.Printf("%s:", path)
		for _, c := range order[:min(*top, len(order))] {
			fmt.Printf("  %s %.1f%%", names[c], 100*math.Exp(logits[c]-maxL)/z)
		}
		fmt.Println()
	}
	return nil
}

// loadTokenizer reads vocab.json and merges.txt beside the model.
func loadTokenizer(m *backbones.Model) (*tokenizer.Tokenizer, error) {
	dir := m.Dir
	if dir == "" {
		dir = filepath.Dir(m.Weights)
	}
	return tokenizer.LoadDir(dir)
}
