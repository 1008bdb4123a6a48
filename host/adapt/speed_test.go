package adapt

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/ref"
	"github.com/kadapt/kadapt/methods/kadaptation"
	"github.com/kadapt/kadapt/methods/lora"
	"github.com/kadapt/kadapt/plugins/plan"
)

// initialSpeed is ‖∇L‖² over a method's trainable parameters at its initialisation,
// bias excluded: the first-order loss decrease of one SGD step per unit of learning
// rate. The loss is the same for every method: a fixed random projection of the
// tower's output on a fixed batch.
func initialSpeed(t *testing.T, build func(plan.Backbone) (plan.Plan, error), seed uint64) float64 {
	t.Helper()
	b := ref.New()
	cfg := backbones.Config{Name: "tiny-64", Family: backbones.CLIP, ImageSize: 8, PatchSize: 4, Channels: 3, Width: 64,
		Layers: 2, Heads: 4, MLPDim: 128, EmbedDim: 8, ActName: "quick_gelu", Eps: 1e-5}
	m, err := backbones.NewVision(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(5)
	p, err := build(Describe(m))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Compile(m, p, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	px := make([]float32, 4*3*8*8)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	r := make([]float32, 4*8)
	for i := range r {
		r[i] = float32(rng.NormFloat64())
	}
	tp := autograd.NewTape(b)
	defer tp.Reset()
	out := m.Forward(tp, tp.Input(px, 4, 3, 8, 8)).Embeds
	tp.Backward(tp.Sum(tp.Mul(out, tp.Input(r, 4, 8)), nil, false))
	var sq float64
	for _, v := range a.Trainable {
		if strings.HasSuffix(v.Name, ".bias") {
			continue
		}
		for _, g := range ref.Float64s(v.Grad) {
			sq += g * g
		}
	}
	return sq
}

// TestKAdaptationLearnsAsFastAsLoRA checks the package doc of methods/kadaptation: at
// the default (balanced) initialisation one SGD step lowers the loss as much as the
// paper's LoRA does (‖∇‖² within a factor 2, over several initialisation seeds, where
// the derivation predicts a ratio of 1), while the paper's initialisation gets the
// tiny fraction the derivation predicts and the released code's none.
func TestKAdaptationLearnsAsFastAsLoRA(t *testing.T) {
	kad := func(init string) func(plan.Backbone) (plan.Plan, error) {
		return func(bb plan.Backbone) (plan.Plan, error) {
			c := kadaptation.Default()
			c.N, c.Init = 8, init // the paper's n = 32 needs ViT-B's width; the speed does not depend on n
			return kadaptation.Method.Build(bb, c)
		}
	}
	loraPlan := func(bb plan.Backbone) (plan.Plan, error) { return lora.Method.Build(bb, lora.Default()) }
	var kSum, lSum float64
	for seed := uint64(1); seed <= 4; seed++ {
		k, l := initialSpeed(t, kad(kadaptation.InitBalanced), seed), initialSpeed(t, loraPlan, seed)
		t.Logf("seed %d: ‖∇‖² KAdaptation %.4g, LoRA %.4g", seed, k, l)
		kSum += k
		lSum += l
	}
	if ratio := kSum / lSum; ratio < 0.5 || ratio > 2 {
		t.Errorf("KAdaptation's initial ‖∇‖² is %.3g times LoRA's, want about 1 (0.5 to 2)", ratio)
	}
	// The derivation's closed form: s²·‖b_i‖²·‖U_i‖²/d against c²·r·σ², with
	// ‖a_i‖² = ‖b_i‖² = n·0.01²/3 and ‖u_i‖² = m·0.02² (1e-11 at ViT-B's sizes and s = 1).
	const s, n, m, d, c, r, sigma = 64.0, 8.0, 8.0, 64.0, 32.0, 4.0, 0.02
	slow := n * 0.01 * 0.01 / 3
	want := s * s * slow * slow * m * 0.02 * 0.02 / d / (c * c * r * sigma * sigma)
	if ratio := initialSpeed(t, kad(kadaptation.InitPaper), 1) / (lSum / 4); ratio > 3*want || ratio < want/3 {
		t.Errorf("with the paper's init KAdaptation's initial ‖∇‖² is %.3g times LoRA's; the derivation says %.3g", ratio, want)
	}
	if g := initialSpeed(t, kad(kadaptation.InitReleased), 1); g != 0 {
		t.Errorf("with the released code's init (u = v = 0) the gradient is %g, want exactly 0", g)
	}
}
