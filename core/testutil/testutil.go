// Package testutil holds the helpers that kadapt's tests share: moving values in and
// out of backend tensors, comparing against a reference within a tolerance, checking
// panics, and central finite differences. Only _test.go files import it; nothing that
// ships does.
package testutil

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/ref"
)

// Upload allocates a tensor of shape s on b holding vals.
func Upload(b core.Backend, s core.Shape, vals []float32) *core.Tensor {
	t := b.Alloc(s)
	b.Upload(t, vals)
	return t
}

// Download returns t's values, read through b (t's backend).
func Download(b core.Backend, t *core.Tensor) []float32 {
	out := make([]float32, t.Size())
	b.Download(out, t)
	return out
}

// Download64 returns t's values widened to float64, for comparison with a float64
// reference.
func Download64(t *core.Tensor) []float64 {
	v := Download(t.Backend(), t)
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// Randn returns n standard normal values from rng.
func Randn(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// maxReported bounds the mismatches AllClose lists one by one.
const maxReported = 5

// AllClose fails t where |got−want| > atol + rtol·|want| (numpy's allclose; a NaN
// matches only a NaN). It lists the first few mismatches and counts the rest.
func AllClose[G, W float32 | float64](t testing.TB, what string, got []G, want []W, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if g == w || math.IsNaN(g) && math.IsNaN(w) {
			continue
		}
		if d := math.Abs(g - w); !(d <= atol+rtol*math.Abs(w)) {
			if bad < maxReported {
				t.Errorf("%s[%d] = %.10g, want %.10g (|diff| %.3g)", what, i, g, w, d)
			}
			bad++
		}
	}
	if bad > maxReported {
		t.Errorf("%s: %d of %d values differ", what, bad, len(got))
	}
}

// MustPanic fails t unless fn panics with a message containing substr.
func MustPanic(t testing.TB, substr string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("no panic, want one mentioning %q", substr)
			return
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, substr) {
			t.Errorf("panic %q does not mention %q", msg, substr)
		}
	}()
	fn()
}

// CentralDiff returns (f(x + h·e_i) − f(x − h·e_i)) / 2h, the central-difference
// estimate of ∂f/∂x_i, for each i in at, or for every element when at is nil. f sees
// x perturbed in place; x is as it was on return.
func CentralDiff(f func(x []float64) float64, x []float64, h float64, at []int) []float64 {
	if at == nil {
		at = make([]int, len(x))
		for i := range at {
			at[i] = i
		}
	}
	g := make([]float64, len(at))
	for k, i := range at {
		orig := x[i]
		x[i] = orig + h
		fp := f(x)
		x[i] = orig - h
		fm := f(x)
		x[i] = orig
		g[k] = (fp - fm) / (2 * h)
	}
	return g
}

// CentralDiffRef is CentralDiff over the values of t, a tensor of the float64
// reference backend: loss evaluates with t holding the perturbed values, and t holds
// its own again on return.
func CentralDiffRef(t *core.Tensor, loss func() float64, h float64, at []int) []float64 {
	x := ref.Float64s(t)
	g := CentralDiff(func(x []float64) float64 {
		ref.UploadFloat64(t, x)
		return loss()
	}, x, h, at)
	ref.UploadFloat64(t, x)
	return g
}
