package cpu

import (
	"testing"

	"github.com/kadapt/kadapt/core/backendtest"
)

// TestConformance runs the shared suite, which compares every op with the float64
// reference backend on random inputs, odd shapes and every accumulate/beta path.
func TestConformance(t *testing.T) {
	backendtest.Run(t, New, backendtest.DefaultTolerances())
}
