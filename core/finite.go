package core

import "math"

// FirstNonFinite returns the index of the first NaN or ±Inf in x, or -1. Loaders
// check weights with it, and writers check outputs: one NaN weight makes every
// embedding NaN, and a NaN written to disk is a wrong result that exits 0.
func FirstNonFinite(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}
