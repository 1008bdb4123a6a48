package data

import (
	"context"
	"fmt"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// Embed runs the tower v, without gradients and in inference mode, over every
// example of d, batch at a time, and returns the image embeddings and the pooled
// tokens, one row per example with its label. A non-finite output is an error
// naming the example, so that neither a written file nor a feature cache holds it.
// report, when not nil, hears how many examples are done after each batch.
func Embed(ctx context.Context, v *backbones.Vision, d Split, batch int, report func(done, total int)) (embeds, pooled *Mem, err error) {
	return embed(ctx, v, d, batch, true, report)
}

// Features is the feature cache of a frozen backbone: d's image embeddings,
// computed once, as a split the head trains on (nil for a nil d). report is as
// for Embed.
func Features(ctx context.Context, v *backbones.Vision, d Split, batch int, report func(done, total int)) (*Mem, error) {
	if d == nil {
		return nil, nil
	}
	embeds, _, err := embed(ctx, v, d, batch, false, report)
	return embeds, err
}

func embed(ctx context.Context, v *backbones.Vision, d Split, batch int, withPooled bool, report func(done, total int)) (embeds, pooled *Mem, err error) {
	b := v.Params()[0].Value.Backend()
	tp := autograd.NewTape(b)
	tp.Training = false
	tp.SetGradEnabled(false)
	shape := d.Shape()
	embeds = &Mem{Labels: make([][]int, 0, d.Len())}
	if withPooled {
		pooled = &Mem{Labels: embeds.Labels}
	}
	keep := func(name string, to *Mem, out *autograd.Var, off int) error {
		rows := make([]float32, out.Value.Size())
		b.Download(rows, out.Value)
		if j := core.FirstNonFinite(rows); j >= 0 {
			return fmt.Errorf("%s of image %d is not finite (%v)", name, off+j/out.Shape()[1], rows[j])
		}
		to.X = append(to.X, rows...)
		to.ExShape = []int{out.Shape()[1]}
		return nil
	}
	err = FetchChunks(ctx, d, batch, func(off int, x []float32, labels [][]int) error {
		defer tp.Reset()
		out := v.Forward(tp, tp.Input(x, append([]int{len(labels)}, shape...)...))
		if err := keep("image_embeds", embeds, out.Embeds, off); err != nil {
			return err
		}
		embeds.Labels = append(embeds.Labels, labels...)
		if withPooled {
			pooled.Labels = embeds.Labels
			if err := keep("pooled", pooled, out.Pooled, off); err != nil {
				return err
			}
		}
		if report != nil {
			report(off+len(labels), d.Len())
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return embeds, pooled, nil
}
