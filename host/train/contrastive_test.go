package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/ref"
	"github.com/kadapt/kadapt/core/testutil"
)

// supConReference is the loss written out from its definition in float64.
func supConReference(x [][]float64, groups []int, tau float64) float64 {
	n := len(x)
	z := make([][]float64, n)
	for i, row := range x {
		var ss float64
		for _, v := range row {
			ss += v * v
		}
		z[i] = make([]float64, len(row))
		for j, v := range row {
			z[i][j] = v / math.Sqrt(ss)
		}
	}
	dot := func(a, b []float64) float64 {
		var s float64
		for k := range a {
			s += a[k] * b[k]
		}
		return s
	}
	var total float64
	anchors := 0
	for i := range n {
		var denom float64
		for a := range n {
			if a != i {
				denom += math.Exp(dot(z[i], z[a]) / tau)
			}
		}
		var sum float64
		count := 0
		for p := range n {
			if p != i && groups[p] == groups[i] {
				sum += math.Log(math.Exp(dot(z[i], z[p])/tau) / denom)
				count++
			}
		}
		if count > 0 {
			total -= sum / float64(count)
			anchors++
		}
	}
	return total / float64(anchors)
}

func TestContrastiveLossMatchesDefinitionAndFiniteDifferences(t *testing.T) {
	const n, d, tau = 8, 5, 0.3
	// Two views of two images (SimCLR's case), a group of three (SupCon's) and a
	// singleton, which is only a negative.
	groups := []int{0, 0, 1, 1, 2, 2, 2, 3}
	rng := rand.New(rand.NewPCG(3, 4))
	rows := make([][]float64, n)
	flat := make([]float64, 0, n*d)
	for i := range rows {
		rows[i] = make([]float64, d)
		for j := range rows[i] {
			rows[i][j] = rng.NormFloat64()
		}
		flat = append(flat, rows[i]...)
	}
	b := ref.New()
	x := autograd.NewParam(b, "x", core.Shape{n, d})
	ref.UploadFloat64(x.Value, flat)
	eval := func() float64 {
		tp := autograd.NewTape(b)
		defer tp.Reset()
		return ref.Float64s(ContrastiveLoss(tp, x, groups, tau).Value)[0]
	}
	want := supConReference(rows, groups, tau)
	if got := eval(); math.Abs(got-want) > 1e-7*math.Abs(want) {
		t.Fatalf("loss %.12g, want %.12g from the definition", got, want)
	}

	tp := autograd.NewTape(b)
	tp.Backward(ContrastiveLoss(tp, x, groups, tau))
	grad := ref.Float64s(x.Grad)
	tp.Reset()
	testutil.AllClose(t, "d loss/d x vs finite differences", grad, testutil.CentralDiffRef(x.Value, eval, 1e-6, nil), 1e-6, 1e-5)
}

// The loss is lowest when each group's rows point the same way and groups apart: a
// closed form for two groups of two at ±e₁, where every anchor's one positive has
// similarity 1/τ and its two negatives −1/τ.
func TestContrastiveLossClosedForm(t *testing.T) {
	const tau = 0.5
	b := ref.New()
	x := autograd.NewParam(b, "x", core.Shape{4, 2})
	ref.UploadFloat64(x.Value, []float64{2, 0, 3, 0, -1, 0, -5, 0})
	tp := autograd.NewTape(b)
	defer tp.Reset()
	got := ref.Float64s(ContrastiveLoss(tp, x, []int{0, 0, 1, 1}, tau).Value)[0]
	want := -math.Log(math.Exp(1/tau) / (math.Exp(1/tau) + 2*math.Exp(-1/tau)))
	if math.Abs(got-want) > 1e-9 {
		t.Fatalf("loss %.12g, want %.12g", got, want)
	}
}
