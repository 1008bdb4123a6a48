package backbones

import (
	"fmt"
	"math"
	"strings"

	"github.com/kadapt/kadapt/backbones/tokenizer"
	"github.com/kadapt/kadapt/core/autograd"
)

// ClassEmbeddings turns class names into classifier weights the way CLIP's zero-shot
// recipe (and the paper's head initialisation) does: each class name is put into every
// template, each prompt is encoded and L2-normalised, the prompts are averaged and the
// average is re-normalised. Templates use "{}" for the class name.
func ClassEmbeddings(t *Text, tok *tokenizer.Tokenizer, classes, templates []string) ([][]float32, error) {
	if len(templates) == 0 {
		return nil, fmt.Errorf("class embeddings: no prompt templates")
	}
	tp := autograd.NewTape(t.backend)
	tp.SetGradEnabled(false)
	defer tp.Reset()
	out := make([][]float32, len(classes))
	for c, name := range classes {
		prompts := make([]string, len(templates))
		for i, tmpl := range templates {
			if !strings.Contains(tmpl, "{}") {
				return nil, fmt.Errorf("template %q has no {} placeholder", tmpl)
			}
			prompts[i] = strings.ReplaceAll(tmpl, "{}", name)
		}
		ids, err := tok.Tokenize(prompts, t.Cfg.Context, tok.EndID())
		if err != nil {
			return nil, fmt.Errorf("class %q: %v", name, err)
		}
		enc, err := t.Forward(tp, ids)
		if err != nil {
			return nil, fmt.Errorf("class %q: %v", name, err)
		}
		d := enc.Embeds.Shape()[1]
		flat := make([]float32, enc.Embeds.Value.Size())
		t.backend.Download(flat, enc.Embeds.Value)
		mean := make([]float64, d)
		for i := range prompts {
			row := flat[i*d : (i+1)*d]
			norm := l2(row)
			for j, v := range row {
				mean[j] += float64(v) / norm
			}
		}
		var ss float64
		for _, v := range mean {
			ss += v * v
		}
		inv := 1 / math.Sqrt(ss)
		out[c] = make([]float32, d)
		for j, v := range mean {
			out[c][j] = float32(v * inv)
		}
		tp.Reset()
	}
	return out, nil
}

func l2(v []float32) float64 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	return math.Sqrt(ss)
}
