package train

import "fmt"

// Data is one split of examples ready for the model.
type Data interface {
	Len() int
	// Shape is one example's input shape, e.g. [3, 224, 224] or [512] for cached features.
	Shape() []int
	// Fetch writes the examples idx into x (len(idx)·∏Shape values) and their labels.
	Fetch(idx []int, x []float32, labels [][]int) error
}

// EpochData is Data whose examples are drawn afresh each epoch (random augmentation).
// Run calls SetEpoch before fetching an epoch's batches, so the draws are a function of
// the epoch and a resumed run sees the ones an uninterrupted run would; such a split
// is never staged on the device, which would freeze one draw.
type EpochData interface {
	Data
	SetEpoch(epoch int)
}

// MemData is a split held in memory: examples already preprocessed (or features
// already computed), one row each.
type MemData struct {
	X       []float32 // Len()·∏ExShape values
	Labels  [][]int
	ExShape []int
}

func (d *MemData) Len() int     { return len(d.Labels) }
func (d *MemData) Shape() []int { return d.ExShape }

func (d *MemData) Fetch(idx []int, x []float32, labels [][]int) error {
	per := 1
	for _, s := range d.ExShape {
		per *= s
	}
	for i, j := range idx {
		if j < 0 || j >= len(d.Labels) {
			return fmt.Errorf("example %d out of range [0, %d)", j, len(d.Labels))
		}
		copy(x[i*per:(i+1)*per], d.X[j*per:(j+1)*per])
		labels[i] = d.Labels[j]
	}
	return nil
}
