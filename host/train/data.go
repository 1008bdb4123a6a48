package train

import "fmt"

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
