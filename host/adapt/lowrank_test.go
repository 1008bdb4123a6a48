package adapt

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/ref"
	"github.com/kadapt/kadapt/methods/kadaptation"
	"github.com/kadapt/kadapt/methods/lora"
	"github.com/kadapt/kadapt/plugins/plan"
)

// TestLowRankDeltasRunAsBranches compiles KAdaptation and LoRA (weight-delta form)
// onto a tower wide enough for the branch form to pay, checks that their deltas run as
// branches, and holds outputs and every adapter gradient to the full form (ΔW formed
// and added to the weight) in float64, at the initialisation (ΔW = 0, where only the
// zero factor's gradient flows) and with every factor perturbed; Merge must then keep
// the outputs.
func TestLowRankDeltasRunAsBranches(t *testing.T) {
	cfg := backbones.Config{Name: "tiny-wide", Family: backbones.CLIP, ImageSize: 8, PatchSize: 4, Channels: 3, Width: 32,
		Layers: 2, Heads: 2, MLPDim: 64, EmbedDim: 4, ActName: "quick_gelu", Eps: 1e-5}
	for _, c := range []struct {
		name  string
		plan  func(plan.Backbone) (plan.Plan, error)
		sites int // linears whose delta is factored, per layer
	}{
		{"kadaptation", func(bb plan.Backbone) (plan.Plan, error) {
			k := kadaptation.Default()
			k.N, k.Scale = 4, 3
			return kadaptation.Method.Build(bb, k)
		}, 2},
		{"lora", func(bb plan.Backbone) (plan.Plan, error) {
			l := lora.Default()
			l.R, l.Alpha, l.Targets = 2, 4, []string{"q", "v", "fc1"}
			return lora.Method.Build(bb, l)
		}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, perturbed := range []bool{true, false} {
				b := ref.New()
				build := func(factor bool) (*backbones.Vision, *Adapted) {
					factorLowRank = factor
					defer func() { factorLowRank = true }()
					m, err := backbones.NewVision(b, cfg)
					if err != nil {
						t.Fatal(err)
					}
					m.InitRandom(5)
					p, err := c.plan(Describe(m))
					if err != nil {
						t.Fatal(err)
					}
					a, err := Compile(m, p, 4)
					if err != nil {
						t.Fatal(err)
					}
					if perturbed {
						perturb(a, 2)
					}
					return m, a
				}
				fm, fa := build(true)
				wm, wa := build(false)
				if got, want := len(fa.factored), c.sites*cfg.Layers; got != want || len(wa.factored) != 0 {
					t.Fatalf("%d deltas factored (full form: %d), want %d", got, len(wa.factored), want)
				}
				px := make([]float32, 2*3*8*8)
				rng := rand.New(rand.NewPCG(1, 2))
				for i := range px {
					px[i] = float32(rng.NormFloat64())
				}
				run := func(m *backbones.Vision, a *Adapted) (out []float64, grads [][]float64) {
					tp := autograd.NewTape(b)
					defer tp.Reset()
					y := m.Forward(tp, tp.Input(px, 2, 3, 8, 8)).Embeds
					if !y.RequiresGrad() { // merged: nothing left to train in the tower
						return ref.Float64s(y.Value), nil
					}
					tp.Backward(tp.Sum(tp.Square(y), nil, false))
					for _, p := range a.Trainable {
						grads = append(grads, ref.Float64s(p.Grad))
						p.ZeroGrad()
					}
					return ref.Float64s(y.Value), grads
				}
				gotOut, gotGrads := run(fm, fa)
				wantOut, wantGrads := run(wm, wa)
				close := func(what string, got, want []float64) {
					t.Helper()
					for i := range want {
						if math.Abs(got[i]-want[i]) > 1e-9*math.Max(1, math.Abs(want[i])) {
							t.Fatalf("%s[%d]: branch form %v, full form %v", what, i, got[i], want[i])
						}
					}
				}
				close("output", gotOut, wantOut)
				nonZero := 0
				for i := range wantGrads {
					close("gradient of "+fa.Trainable[i].Name, gotGrads[i], wantGrads[i])
					for _, g := range wantGrads[i] {
						if g != 0 {
							nonZero++
							break
						}
					}
				}
				// At the initialisation only the zero factors (KAdaptation's v, LoRA's B)
				// have a gradient: one tensor of the four or two per site.
				if want := len(wantGrads) / 4; nonZero < want {
					t.Fatalf("perturbed=%v: %d of %d gradients are non-zero", perturbed, nonZero, len(wantGrads))
				}
				if err := fa.Merge(); err != nil {
					t.Fatal(err)
				}
				merged, _ := run(fm, fa)
				close("merged output", merged, wantOut)
			}
		})
	}
}
