package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/host/adapt"
	"github.com/kadapt/kadapt/host/data"
	"github.com/kadapt/kadapt/methods/adapter"
	"github.com/kadapt/kadapt/methods/compacter"
	"github.com/kadapt/kadapt/methods/finetune"
	"github.com/kadapt/kadapt/methods/kadaptation"
	"github.com/kadapt/kadapt/methods/linearprobe"
	"github.com/kadapt/kadapt/methods/lora"
	"github.com/kadapt/kadapt/plugins/plan"
)

// towerModel is a tiny random ViT with a method's plan compiled in, then the head: what
// the host trains, without plugin processes.
type towerModel struct {
	vision    *backbones.Vision
	head      *Head
	trainable []*autograd.Var
}

func (m *towerModel) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return m.vision.Forward(tp, x).Embeds
}
func (m *towerModel) Head() *Head { return m.head }
func (m *towerModel) Trainable() []*autograd.Var {
	return append(append([]*autograd.Var(nil), m.trainable...), m.head.Params()...)
}

// stripes is a 3-class task of 8×8 colour images: class c brightens channel c.
func stripes(n int, seed uint64) *data.Mem {
	rng := rand.New(rand.NewPCG(seed, 3))
	d := &data.Mem{ExShape: []int{3, 8, 8}}
	for i := 0; i < n; i++ {
		c := i % 3
		for ch := 0; ch < 3; ch++ {
			for p := 0; p < 64; p++ {
				v := rng.NormFloat64()
				if ch == c && p%8 < 4 {
					v += 0.7
				}
				d.X = append(d.X, float32(v))
			}
		}
		d.Labels = append(d.Labels, []int{c})
	}
	return d
}

// TestEveryMethodLearns trains a tiny random ViT a few epochs with each method's plan
// and checks, through the movement diagnostic, that every trainable group moved (and
// that the only groups that did not are NoGradientByDesign's); that its training
// loss ends at least 25% below the linear probe's at the same learning rate; and that taking the method's update
// out of the trained model — hooks removed, backbone weights back to their start —
// changes the training loss by at least 25% of it (here it changes it 1.2 to 40 times
// over, KAdaptation's first initialisation by 1e-7). For KAdaptation the Kronecker
// update alone (its bias kept) must matter by that margin too. Adapter and Compacter
// get a learning rate of 0.1, the others 0.01: at the paper's initial scales their
// first steps are 1/70 and 1/20 of LoRA's (the paper's protocol searches the rate per
// method).
func TestEveryMethodLearns(t *testing.T) {
	const margin = 0.25
	probeLoss := map[float64]float64{} // the linear probe's training loss at each learning rate
	for _, lr := range []float64{0.01, 0.1} {
		probe := trainTiny(t, func(bb plan.Backbone) (plan.Plan, error) { return linearprobe.Method.Build(bb, linearprobe.Config{}) }, lr)
		if g := probe.res.Movement.Groups; len(g) != 1 || g[0].Group != "head" || !g[0].Moved {
			t.Errorf("the linear probe's groups: %+v, want the head alone, moved", g)
		}
		probeLoss[lr] = probe.loss()
		t.Logf("linear probe at lr %g: training loss %.4f", lr, probeLoss[lr])
	}
	for _, tc := range []struct {
		name string
		plan func(plan.Backbone) (plan.Plan, error)
		lr   float64
	}{
		{"kadaptation", func(bb plan.Backbone) (plan.Plan, error) {
			c := kadaptation.Default()
			c.N = 4
			return kadaptation.Method.Build(bb, c)
		}, 0.01},
		{"adapter", func(bb plan.Backbone) (plan.Plan, error) {
			c := adapter.Default()
			c.Bottleneck = 8
			return adapter.Method.Build(bb, c)
		}, 0.1},
		{"lora", func(bb plan.Backbone) (plan.Plan, error) { return lora.Method.Build(bb, lora.Default()) }, 0.01},
		{"compacter", func(bb plan.Backbone) (plan.Plan, error) {
			return compacter.Method.Build(bb, compacter.Config{N: 2, Bottleneck: 8, Act: "gelu"})
		}, 0.1},
		{"finetune", func(bb plan.Backbone) (plan.Plan, error) { return finetune.Method.Build(bb, finetune.Config{}) }, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := trainTiny(t, tc.plan, tc.lr)
			for _, g := range r.res.Movement.Groups {
				t.Logf("%-26s rel %.3g grad %.3g → %.3g", g.Group, g.RelChange, g.GradNormFirst, g.GradNormLast)
				if _, byDesign := NoGradientByDesign[g.Group]; g.Moved == byDesign {
					t.Errorf("%s: moved = %v (relative change %.3g)", g.Group, g.Moved, g.RelChange)
				}
			}
			adapted := r.loss()
			if adapted > (1-margin)*probeLoss[tc.lr] {
				t.Errorf("training loss %.4f, not %g below the linear probe's %.4f", adapted, margin, probeLoss[tc.lr])
			}
			removed := r.withoutUpdate(false)
			t.Logf("training loss %.4f adapted, %.4f without the update", adapted, removed)
			if math.Abs(removed-adapted) < margin*adapted {
				t.Errorf("removing the update changes the training loss from %.4f to %.4f, less than %g of it", adapted, removed, margin)
			}
			if tc.name == "kadaptation" {
				removed := r.withoutUpdate(true)
				t.Logf("training loss %.4f without ΔW (bias kept)", removed)
				if math.Abs(removed-adapted) < margin*adapted {
					t.Errorf("removing ΔW changes the training loss from %.4f to %.4f, less than %g of it", adapted, removed, margin)
				}
			}
		})
	}
}

// tinyRun is a tiny tower trained with a plan.
type tinyRun struct {
	t             *testing.T
	b             core.Backend
	m             *towerModel
	task          Task
	res           *Result
	backboneStart map[*autograd.Var][]float32 // the backbone's trainable parameters before training
}

// trainTiny trains a tiny pretrained-like tower with build's plan for 20 epochs of
// SGD on the stripes task.
func trainTiny(t *testing.T, build func(plan.Backbone) (plan.Plan, error), lr float64) *tinyRun {
	t.Helper()
	b := cpu.New()
	cfg := backbones.Config{Name: "tiny", Family: backbones.CLIP, ImageSize: 8, PatchSize: 4, Channels: 3, Width: 16,
		Layers: 2, Heads: 2, MLPDim: 32, EmbedDim: 8, ActName: "quick_gelu", Eps: 1e-5}
	v, err := backbones.NewVision(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pretrainedLike(b, v)
	p, err := build(adapt.Describe(v))
	if err != nil {
		t.Fatal(err)
	}
	a, err := adapt.Compile(v, p, 7)
	if err != nil {
		t.Fatal(err)
	}
	r := &tinyRun{t: t, b: b, m: &towerModel{vision: v, head: NewHead(b, cfg.EmbedDim, 3), trainable: a.Trainable},
		task: Task{Train: stripes(48, 1), Classes: 3, Metric: "accuracy"}, backboneStart: map[*autograd.Var][]float32{}}
	r.m.head.InitRandom(3)
	for _, bp := range v.Params() {
		if bp.Trainable() {
			d := make([]float32, bp.Value.Size())
			b.Download(d, bp.Value)
			r.backboneStart[bp] = d
		}
	}
	r.res, err = Run(b, r.m, r.task, Config{Epochs: 20, BatchSize: 16, Optimizer: "sgd", LR: lr, Momentum: 0.9,
		Schedule: "constant", Select: "last", Seed: 1}, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// loss is the mean loss over the training split, in evaluation mode.
func (r *tinyRun) loss() float64 {
	_, l, err := EvaluateWithLoss(r.b, r.m, r.task.Train, r.task, 16)
	if err != nil {
		r.t.Fatal(err)
	}
	return l
}

// withoutUpdate is the loss with the plan's hooks off (only the weight deltas and
// branches when weightOnly) and the trained backbone parameters back at their start;
// it puts everything back.
func (r *tinyRun) withoutUpdate(weightOnly bool) float64 {
	type linearHooks struct {
		w, bias func(*autograd.Tape) *autograd.Var
		branch  func(*autograd.Tape, *autograd.Var) *autograd.Var
	}
	v := r.m.vision
	linears, residuals := v.Linears(), v.Residuals()
	savedL := make([]linearHooks, len(linears))
	for i, l := range linears {
		savedL[i] = linearHooks{l.WeightDelta, l.BiasDelta, l.Branch}
		l.WeightDelta, l.Branch = nil, nil
		if !weightOnly {
			l.BiasDelta = nil
		}
	}
	savedR := make([]func(*autograd.Tape, *autograd.Var) *autograd.Var, len(residuals))
	for i, rs := range residuals {
		savedR[i] = rs.After
		if !weightOnly {
			rs.After = nil
		}
	}
	trained := map[*autograd.Var][]float32{}
	for p, d := range r.backboneStart {
		cur := make([]float32, p.Value.Size())
		r.b.Download(cur, p.Value)
		trained[p] = cur
		r.b.Upload(p.Value, d)
	}
	out := r.loss()
	for i, l := range linears {
		l.WeightDelta, l.BiasDelta, l.Branch = savedL[i].w, savedL[i].bias, savedL[i].branch
	}
	for i, rs := range residuals {
		rs.After = savedR[i]
	}
	for p, d := range trained {
		r.b.Upload(p.Value, d)
	}
	return out
}

// pretrainedLike gives a random tower the scales of a trained one — weights of std
// about 1/√fan-in, biases and norms off their init — so its features depend on the
// input (at InitRandom's std 0.02 they hardly do, and the head has nothing to read).
func pretrainedLike(b core.Backend, v *backbones.Vision) {
	v.InitRandom(5)
	rng := rand.New(rand.NewPCG(6, 7))
	for _, p := range v.Params() {
		d := make([]float32, p.Value.Size())
		b.Download(d, p.Value)
		for i := range d {
			if len(p.Shape()) >= 2 {
				d[i] *= 12.5 // 0.02 → 0.25 = 1/√16, the width
			} else {
				d[i] += float32(0.1 * rng.NormFloat64())
			}
		}
		b.Upload(p.Value, d)
	}
}

// BenchmarkMovementStep measures the diagnostic's per-step cost against a training step
// in the worst case, full fine-tuning (every parameter tracked): the ratio of the two
// sub-benchmarks' ns/op is its overhead.
func BenchmarkMovementStep(b *testing.B) {
	be := cpu.New()
	cfg := backbones.Config{Name: "bench", Family: backbones.CLIP, ImageSize: 32, PatchSize: 8, Channels: 3, Width: 128,
		Layers: 4, Heads: 4, MLPDim: 512, EmbedDim: 64, ActName: "quick_gelu", Eps: 1e-5}
	v, err := backbones.NewVision(be, cfg)
	if err != nil {
		b.Fatal(err)
	}
	v.InitRandom(1)
	p, _ := finetune.Method.Build(adapt.Describe(v), finetune.Config{})
	a, err := adapt.Compile(v, p, 1)
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, 16*3*32*32)
	for i := range x {
		x[i] = float32(i%7) / 7
	}
	step := func() {
		tp := autograd.NewTape(be)
		tp.Backward(tp.Sum(tp.Square(v.Forward(tp, tp.Input(x, 16, 3, 32, 32)).Embeds), nil, false))
		tp.Reset()
	}
	b.Run("step", func(b *testing.B) {
		for range b.N {
			step()
		}
	})
	tr := newMovementTracker(be, a.Trainable, 0)
	defer tr.release()
	b.Run("movement", func(b *testing.B) {
		step() // gradients to measure
		b.ResetTimer()
		for range b.N {
			tr.afterBackward()
		}
	})
}
