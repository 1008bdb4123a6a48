package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/testutil"
)

// Two steps of SGD on one parameter, checked against PyTorch's update rule written out
// in float64:
//
//	d = g + wd·p;  buf = d on the first step, else μ·buf + d
//	p -= lr·(d + μ·buf) with Nesterov, else p -= lr·buf
func TestSGDStepByHand(t *testing.T) {
	p0 := []float32{1, -2, 0.5, 3}
	grads := [][]float32{{0.3, -0.1, 0.2, -1.5}, {-0.5, 0.4, 0.05, 0.75}}
	cases := []struct {
		momentum, wd, lrScale float32
		nesterov              bool
	}{
		{0, 0, 0, false},
		{0, 0.1, 1, false},
		{0.9, 0, 0, false},
		{0.9, 0.1, 0, false},
		{0.9, 0.1, 2, true},
		{0.5, 0, 0.5, true},
	}
	const lr = 0.1
	for _, c := range cases {
		for _, b := range testBackends() {
			name := fmt.Sprintf("%s/mom=%v,wd=%v,scale=%v,nesterov=%v", b.Name(), c.momentum, c.wd, c.lrScale, c.nesterov)
			t.Run(name, func(t *testing.T) {
				p := newParam(b, "w", p0, 2, 2)
				opt := NewSGD(b, []Group{{Name: "all", Params: []*autograd.Var{p}, LRScale: c.lrScale, WeightDecay: c.wd}},
					SGDConfig{Momentum: c.momentum, Nesterov: c.nesterov})

				effLR := float64(lr)
				if c.lrScale != 0 {
					effLR *= float64(c.lrScale)
				}
				mu, wd := float64(c.momentum), float64(c.wd)
				want := to64(p0)
				buf := make([]float64, len(p0))
				for step, g := range grads {
					setGrad(b, p, g)
					opt.Step(lr)
					for i := range want {
						d := float64(g[i]) + wd*want[i]
						if step == 0 {
							buf[i] = d
						} else {
							buf[i] = mu*buf[i] + d
						}
						upd := buf[i]
						if c.nesterov {
							upd = d + mu*buf[i]
						}
						want[i] -= effLR * upd
					}
					testutil.AllClose(t, fmt.Sprintf("param after step %d", step+1), testutil.Download(b, p.Value), want, 1e-6, 1e-6)
				}
				if opt.Steps() != 2 {
					t.Errorf("Steps() = %d, want 2", opt.Steps())
				}
				tensors, _ := opt.StateDict()
				if c.momentum == 0 {
					if len(tensors) != 0 {
						t.Errorf("plain SGD has state tensors %v", keys(tensors))
					}
					return
				}
				testutil.AllClose(t, "w.momentum", testutil.Download(b, tensors["w.momentum"]), buf, 1e-6, 1e-6)
			})
		}
	}
}

// Two AdamW steps against torch.optim.AdamW's rule written out in float64:
//
//	p ← p·(1 - lr·wd);  m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²
//	p ← p - lr·(m/(1-β1^t)) / (√(v/(1-β2^t)) + eps)
func TestAdamWStepByHand(t *testing.T) {
	p0 := []float32{0.5, -1, 2, 0.25, -0.125, 1.5}
	grads := [][]float32{
		{0.1, -0.2, 0.3, -0.4, 0.05, 0},
		{-0.3, 0.1, 0.25, -0.1, 0.5, 0.2},
		{0.2, 0.2, -0.1, 0.3, -0.05, -0.4},
	}
	cases := []struct {
		cfg     AdamWConfig
		lr, wd  float32
		lrScale float32
	}{
		{DefaultAdamWConfig(), 0.01, 0, 0},
		{DefaultAdamWConfig(), 0.01, 0.05, 0},
		// A large eps makes the update depend on the gradient's size, not just its sign.
		{AdamWConfig{Beta1: 0.8, Beta2: 0.9, Eps: 0.1}, 0.05, 0.1, 3},
		{AdamWConfig{Beta1: 0, Beta2: 0.5, Eps: 1e-3}, 0.02, 0.01, 0.5},
	}
	for _, c := range cases {
		for _, b := range testBackends() {
			name := fmt.Sprintf("%s/%+v,lr=%v,wd=%v,scale=%v", b.Name(), c.cfg, c.lr, c.wd, c.lrScale)
			t.Run(name, func(t *testing.T) {
				p := newParam(b, "layer.weight", p0, 3, 2)
				opt := NewAdamW(b, []Group{{Params: []*autograd.Var{p}, LRScale: c.lrScale, WeightDecay: c.wd}}, c.cfg)

				lr := float64(c.lr)
				if c.lrScale != 0 {
					lr *= float64(c.lrScale)
				}
				b1, b2, eps, wd := float64(c.cfg.Beta1), float64(c.cfg.Beta2), float64(c.cfg.Eps), float64(c.wd)
				want := to64(p0)
				m := make([]float64, len(p0))
				v := make([]float64, len(p0))
				for step, g := range grads {
					setGrad(b, p, g)
					opt.Step(c.lr)
					tt := float64(step + 1)
					for i := range want {
						gi := float64(g[i])
						want[i] *= 1 - lr*wd
						m[i] = b1*m[i] + (1-b1)*gi
						v[i] = b2*v[i] + (1-b2)*gi*gi
						mhat := m[i] / (1 - math.Pow(b1, tt))
						vhat := v[i] / (1 - math.Pow(b2, tt))
						want[i] -= lr * mhat / (math.Sqrt(vhat) + eps)
					}
					testutil.AllClose(t, fmt.Sprintf("param after step %d", step+1), testutil.Download(b, p.Value), want, 2e-6, 2e-6)
				}
				tensors, meta := opt.StateDict()
				testutil.AllClose(t, "exp_avg", testutil.Download(b, tensors["layer.weight.exp_avg"]), m, 1e-6, 1e-6)
				testutil.AllClose(t, "exp_avg_sq", testutil.Download(b, tensors["layer.weight.exp_avg_sq"]), v, 1e-6, 1e-6)
				if meta["layer.weight.step"] != "3" || meta["steps"] != "3" {
					t.Errorf("meta step counts = %q, %q, want 3, 3", meta["layer.weight.step"], meta["steps"])
				}
			})
		}
	}
}

// Frozen parameters and parameters without a gradient are not touched and get no
// state; AdamW's bias correction for a parameter unfrozen later starts from t = 1.
func TestStepSkipsFrozenAndGradless(t *testing.T) {
	for _, b := range testBackends() {
		for _, kind := range []string{"sgd", "adamw"} {
			t.Run(b.Name()+"/"+kind, func(t *testing.T) {
				frozen := newParam(b, "frozen", []float32{1, 2}, 2)
				noGrad := newParam(b, "nograd", []float32{3, 4}, 2)
				late := newParam(b, "late", []float32{5, 6}, 2)
				setGrad(b, frozen, []float32{1, 1})
				frozen.SetTrainable(false)
				late.SetTrainable(false)
				setGrad(b, late, []float32{0.5, -0.5})
				groups := []Group{{Params: []*autograd.Var{frozen, noGrad, late}}}
				var opt Optimizer
				if kind == "sgd" {
					opt = NewSGD(b, groups, SGDConfig{Momentum: 0.9})
				} else {
					opt = NewAdamW(b, groups, DefaultAdamWConfig())
				}
				opt.Step(0.1)
				opt.Step(0.1)
				late.SetTrainable(true)
				opt.Step(0.1)

				testutil.AllClose(t, "frozen", testutil.Download(b, frozen.Value), []float64{1, 2}, 0, 0)
				testutil.AllClose(t, "nograd", testutil.Download(b, noGrad.Value), []float64{3, 4}, 0, 0)
				// First update of "late": SGD's buffer is the gradient; AdamW's first
				// bias-corrected step has size lr in each coordinate.
				want := []float64{5 - 0.1*0.5, 6 + 0.1*0.5}
				if kind == "adamw" {
					// m̂ = g, v̂ = g²: the step is lr·g/(|g|+eps), lr·sign(g) to 1e-7.
					want = []float64{5 - 0.1, 6 + 0.1}
				}
				testutil.AllClose(t, "late", testutil.Download(b, late.Value), want, 1e-6, 1e-6)
				tensors, meta := opt.StateDict()
				for k := range tensors {
					if k[:4] != "late" {
						t.Errorf("state tensor %q for a parameter never updated", k)
					}
				}
				if kind == "adamw" && meta["late.step"] != "1" {
					t.Errorf("late.step = %q, want 1", meta["late.step"])
				}
				if opt.Steps() != 3 {
					t.Errorf("Steps() = %d, want 3", opt.Steps())
				}
			})
		}
	}
}

// Ten steps on the float32 CPU backend track the float64 reference, with several
// groups (lr scale, weight decay) and fresh random gradients every step.
func TestCPUMatchesRef(t *testing.T) {
	shapes := map[string][]int{"a.weight": {4, 3}, "a.bias": {4}, "head.weight": {2, 4}}
	names := []string{"a.weight", "a.bias", "head.weight"}
	for _, kind := range []string{"sgd", "nesterov", "adamw"} {
		t.Run(kind, func(t *testing.T) {
			final := map[string][][]float32{}
			for _, b := range testBackends() {
				r := rand.New(rand.NewPCG(1, 2))
				ps := map[string]*autograd.Var{}
				for _, n := range names {
					shape := shapes[n]
					ps[n] = newParam(b, n, randVals(r, core.Shape(shape).Size(), 0.5), shape...)
				}
				groups := []Group{
					{Name: "decay", Params: []*autograd.Var{ps["a.weight"]}, WeightDecay: 0.05},
					{Name: "no_decay", Params: []*autograd.Var{ps["a.bias"]}},
					{Name: "head", Params: []*autograd.Var{ps["head.weight"]}, LRScale: 10, WeightDecay: 0.01},
				}
				var opt Optimizer
				switch kind {
				case "sgd":
					opt = NewSGD(b, groups, SGDConfig{Momentum: 0.9})
				case "nesterov":
					opt = NewSGD(b, groups, SGDConfig{Momentum: 0.8, Nesterov: true})
				default:
					opt = NewAdamW(b, groups, DefaultAdamWConfig())
				}
				for step := 0; step < 10; step++ {
					for _, n := range names {
						setGrad(b, ps[n], randVals(r, core.Shape(shapes[n]).Size(), 1))
					}
					opt.Step(0.01)
				}
				for _, n := range names {
					final[n] = append(final[n], testutil.Download(b, ps[n].Value))
				}
			}
			for _, n := range names {
				testutil.AllClose(t, "cpu "+n, final[n][0], to64(final[n][1]), 1e-5, 1e-5)
			}
		})
	}
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }
