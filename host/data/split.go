package data

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// Split is one split of examples ready for the model: what the training loop,
// evaluation and feature caching read from.
type Split interface {
	Len() int
	// Shape is one example's input shape, e.g. [3, 224, 224] or [512] for cached features.
	Shape() []int
	// Fetch writes the examples idx into x (len(idx)·∏Shape values) and their labels.
	Fetch(idx []int, x []float32, labels [][]int) error
}

// EpochSplit is a Split whose examples are drawn afresh each epoch (random
// augmentation). The training loop calls SetEpoch before fetching an epoch's
// batches, so the draws are a function of the epoch and a resumed run sees the
// ones an uninterrupted run would; such a split is never staged on the device,
// which would freeze one draw.
type EpochSplit interface {
	Split
	SetEpoch(epoch int)
}

// Mem is a split held in memory: examples already preprocessed (or features
// already computed), one row each.
type Mem struct {
	X       []float32 // Len()·∏ExShape values
	Labels  [][]int
	ExShape []int
}

func (d *Mem) Len() int     { return len(d.Labels) }
func (d *Mem) Shape() []int { return d.ExShape }

func (d *Mem) Fetch(idx []int, x []float32, labels [][]int) error {
	per := core.Shape(d.ExShape).Size()
	for i, j := range idx {
		if j < 0 || j >= len(d.Labels) {
			return fmt.Errorf("example %d out of range [0, %d)", j, len(d.Labels))
		}
		copy(x[i*per:(i+1)*per], d.X[j*per:(j+1)*per])
		labels[i] = d.Labels[j]
	}
	return nil
}

// Concat joins two splits into one (the paper's final run trains on the few-shot
// training and validation images together).
func Concat(a, b Split) Split { return &concat{a, b} }

type concat struct{ a, b Split }

func (c *concat) Len() int     { return c.a.Len() + c.b.Len() }
func (c *concat) Shape() []int { return c.a.Shape() }

// Fetch asks each part once for all of its examples, so a part that decodes in
// parallel keeps doing so.
func (c *concat) Fetch(idx []int, x []float32, labels [][]int) error {
	per := core.Shape(c.a.Shape()).Size()
	na := c.a.Len()
	for _, j := range idx {
		if j < 0 || j >= c.Len() {
			// Neither part would see it, and its place in x would keep stale values.
			return fmt.Errorf("example %d out of range [0, %d) of the joined splits", j, c.Len())
		}
	}
	for _, part := range []struct {
		d      Split
		lo, hi int
	}{{c.a, 0, na}, {c.b, na, c.Len()}} {
		var pos, local []int
		for i, j := range idx {
			if j >= part.lo && j < part.hi {
				pos, local = append(pos, i), append(local, j-part.lo)
			}
		}
		if len(pos) == 0 {
			continue
		}
		buf := make([]float32, len(pos)*per)
		lab := make([][]int, len(pos))
		if err := part.d.Fetch(local, buf, lab); err != nil {
			return err
		}
		for k, i := range pos {
			copy(x[i*per:(i+1)*per], buf[k*per:(k+1)*per])
			labels[i] = lab[k]
		}
	}
	return nil
}
