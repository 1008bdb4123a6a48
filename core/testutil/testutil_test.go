package testutil

import (
	"fmt"
	"math"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/ref"
)

// recorder collects what a helper reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Errorf(f string, args ...any) { r.errs = append(r.errs, fmt.Sprintf(f, args...)) }
func (r *recorder) Fatalf(f string, args ...any) { r.Errorf(f, args...) }

func TestAllClose(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		got, want  []float64
		atol, rtol float64
		errs       int
	}{
		{[]float64{1, 2, nan}, []float64{1, 2, nan}, 0, 0, 0},
		{[]float64{1.1, 100.5}, []float64{1, 100}, 0.1, 0.004, 0},           // 0.1 ≤ 0.1+0.004, 0.5 ≤ 0.1+0.4
		{[]float64{1.1, 100.6}, []float64{1, 100}, 0.05, 0.004, 2},          // both outside
		{[]float64{nan}, []float64{0}, 1, 1, 1},                             // NaN is never close to a number
		{[]float64{1}, []float64{1, 2}, 1, 1, 1},                            // lengths differ
		{make([]float64, 9), []float64{1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 0, 6}, // five listed and a count
	} {
		r := &recorder{}
		AllClose(r, "x", c.got, c.want, c.atol, c.rtol)
		if len(r.errs) != c.errs {
			t.Errorf("AllClose(%v, %v, %g, %g): %d reports %q, want %d", c.got, c.want, c.atol, c.rtol, len(r.errs), r.errs, c.errs)
		}
	}
}

func TestMustPanic(t *testing.T) {
	r := &recorder{}
	MustPanic(r, "bad shape", func() { panic("cpu: bad shape [2 -1]") })
	MustPanic(r, "bad shape", func() {})
	MustPanic(r, "bad shape", func() { panic("other") })
	if len(r.errs) != 2 {
		t.Errorf("reports %q, want two (no panic; a panic without the text)", r.errs)
	}
}

// Central differences of x³ are 3x² + h² exactly; with h = 1e-3 that is within 1e-6.
func TestCentralDiff(t *testing.T) {
	x := []float64{-2, 0.5, 3}
	cube := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v * v * v
		}
		return s
	}
	AllClose(t, "all", CentralDiff(cube, x, 1e-3, nil), []float64{12, 0.75, 27}, 1e-5, 0)
	AllClose(t, "at [2]", CentralDiff(cube, x, 1e-3, []int{2}), []float64{27}, 1e-5, 0)
	AllClose(t, "x afterwards", x, []float64{-2, 0.5, 3}, 0, 0)

	b := ref.New()
	v := b.Alloc(core.Shape{3})
	ref.UploadFloat64(v, x)
	g := CentralDiffRef(v, func() float64 { return cube(ref.Float64s(v)) }, 1e-3, nil)
	AllClose(t, "ref tensor", g, []float64{12, 0.75, 27}, 1e-5, 0)
	AllClose(t, "ref tensor afterwards", ref.Float64s(v), x, 0, 0)
}
