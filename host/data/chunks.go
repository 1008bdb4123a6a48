package data

import (
	"context"
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// FetchChunks fetches every example of d in index order, chunk at a time, and hands
// each chunk to use: off is the index of its first example, x its values and labels
// its labels. The next chunks are fetched while use works (prefetchDepth ahead), so
// x is only valid during the call: use must copy what it keeps; labels are the
// chunk's own. Between chunks it gives up once ctx is cancelled.
func FetchChunks(ctx context.Context, d Split, chunk int, use func(off int, x []float32, labels [][]int) error) error {
	if chunk <= 0 {
		return fmt.Errorf("fetching examples %d at a time: the chunk size must be positive", chunk)
	}
	n := d.Len()
	var chunks [][]int
	for off := 0; off < n; off += chunk {
		idx := make([]int, min(chunk, n-off))
		for i := range idx {
			idx[i] = off + i
		}
		chunks = append(chunks, idx)
	}
	next, stop := prefetch(ctx, d, nil, chunks)
	defer stop()
	used := 0
	for c := range next {
		if c.Err != nil {
			return c.Err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		err := use(c.Idx[0], c.x, c.Labels)
		c.Done()
		if err != nil {
			return err
		}
		used++
	}
	if used < len(chunks) {
		return context.Cause(ctx) // the fetching stopped early: ctx was cancelled
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
