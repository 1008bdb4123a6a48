package data

import (
	"context"
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// FetchChunks fetches every example of d in index order, chunk at a time, and hands
// each chunk to use: off is the index of its first example, x its values and labels
// its labels. x is overwritten by the next chunk, so use must copy what it keeps;
// labels are the chunk's own. Between chunks it gives up once ctx is cancelled.
func FetchChunks(ctx context.Context, d Split, chunk int, use func(off int, x []float32, labels [][]int) error) error {
	if chunk <= 0 {
		return fmt.Errorf("fetching examples %d at a time: the chunk size must be positive", chunk)
	}
	n, per := d.Len(), core.Shape(d.Shape()).Size()
	x := make([]float32, min(chunk, n)*per)
	for off := 0; off < n; off += chunk {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		cnt := min(chunk, n-off)
		idx := make([]int, cnt)
		for i := range idx {
			idx[i] = off + i
		}
		labels := make([][]int, cnt)
		if err := d.Fetch(idx, x[:cnt*per], labels); err != nil {
			return err
		}
		if err := use(off, x[:cnt*per], labels); err != nil {
			return err
		}
	}
	return nil
}

// Load reads every example of d into memory.
func Load(ctx context.Context, d Split) (*Mem, error) {
	shape := d.Shape()
	per := core.Shape(shape).Size()
	out := &Mem{X: make([]float32, d.Len()*per), Labels: make([][]int, d.Len()), ExShape: shape}
	err := FetchChunks(ctx, d, max(1, min(d.Len(), 64)), func(off int, x []float32, labels [][]int) error {
		copy(out.X[off*per:], x)
		copy(out.Labels[off:], labels)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
