package optim

import (
	"maps"
	"math"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/testutil"
)

type snapshot struct {
	params  map[string][]float32
	tensors map[string][]float32
	meta    map[string]string
}

func takeSnapshot(b core.Backend, m *mlp, opt Optimizer) snapshot {
	s := snapshot{params: map[string][]float32{}, tensors: map[string][]float32{}}
	for _, p := range m.params() {
		s.params[p.Name] = testutil.Download(b, p.Value)
	}
	tensors, meta := opt.StateDict()
	for k, t := range tensors {
		s.tensors[k] = testutil.Download(b, t)
	}
	s.meta = maps.Clone(meta)
	return s
}

// Resuming from a StateDict snapshot continues bitwise identically: 5 steps, snapshot,
// 5 more steps (A); fresh parameters and optimizer loaded from the snapshot, 5 steps
// (B); A == B bit for bit, optimizer state included. A third run that loads the
// parameters but not the optimizer state must differ, or the test proves nothing.
func TestStateDictResumeIsExact(t *testing.T) {
	x, y := spirals(5, 20)
	makers := map[string]func(b core.Backend, g []Group) Optimizer{
		"adamw": func(b core.Backend, g []Group) Optimizer { return NewAdamW(b, g, DefaultAdamWConfig()) },
		"sgd":   func(b core.Backend, g []Group) Optimizer { return NewSGD(b, g, SGDConfig{Momentum: 0.9}) },
		"nesterov": func(b core.Backend, g []Group) Optimizer {
			return NewSGD(b, g, SGDConfig{Momentum: 0.9, Nesterov: true})
		},
	}
	for name, mk := range makers {
		t.Run(name, func(t *testing.T) {
			b := cpu.New()
			labels := uploadLabels(b, y)
			run := func(m *mlp, opt Optimizer, from, to int) {
				tp := autograd.NewTape(b)
				for step := from; step < to; step++ {
					lr := WarmupCosine{Base: 0.05, Min: 0.001, Warmup: 3, Total: 10}.LR(step)
					m.trainStep(b, tp, opt, x, labels, lr, 1)
				}
			}

			mA := newMLP(b, 9, 8)
			optA := mk(b, mA.groups(0.01))
			run(mA, optA, 0, 5)
			snap := takeSnapshot(b, mA, optA)
			run(mA, optA, 5, 10)
			a := takeSnapshot(b, mA, optA)

			restore := func(loadState bool) (*mlp, Optimizer) {
				m := newMLP(b, 1234, 8) // different init, overwritten below
				for _, p := range m.params() {
					b.Upload(p.Value, snap.params[p.Name])
				}
				opt := mk(b, m.groups(0.01))
				if loadState {
					if err := opt.LoadStateDict(snap.tensors, snap.meta); err != nil {
						t.Fatalf("LoadStateDict: %v", err)
					}
				}
				run(m, opt, 5, 10)
				return m, opt
			}
			mB, optB := restore(true)
			bs := takeSnapshot(b, mB, optB)
			if optB.Steps() != 10 {
				t.Errorf("restored Steps() = %d, want 10", optB.Steps())
			}
			bitwiseEqual(t, "param", a.params, bs.params)
			bitwiseEqual(t, "state", a.tensors, bs.tensors)
			if !maps.Equal(a.meta, bs.meta) {
				t.Errorf("meta differs:\nA %v\nB %v", a.meta, bs.meta)
			}

			mC, optC := restore(false)
			if cs := takeSnapshot(b, mC, optC); equalBits(a.params, cs.params) {
				t.Errorf("resuming without optimizer state matched the uninterrupted run; the test cannot tell")
			}
		})
	}
}

func equalBits(a, b map[string][]float32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || len(va) != len(vb) {
			return false
		}
		for i := range va {
			if math.Float32bits(va[i]) != math.Float32bits(vb[i]) {
				return false
			}
		}
	}
	return true
}

func bitwiseEqual(t *testing.T, what string, a, b map[string][]float32) {
	t.Helper()
	if !equalBits(a, b) {
		for k, va := range a {
			vb := b[k]
			for i := range va {
				if i >= len(vb) || math.Float32bits(va[i]) != math.Float32bits(vb[i]) {
					t.Errorf("%s %q differs at %d (len %d vs %d)", what, k, i, len(va), len(vb))
					break
				}
			}
		}
		t.Fatalf("%s: keys A %v, B %v", what, keys(a), keys(b))
	}
}

// LoadStateDict rejects a state that does not fit, names the key at fault, and leaves
// the optimizer as it was.
func TestLoadStateDictErrors(t *testing.T) {
	b := cpu.New()
	setup := func() (*autograd.Var, *autograd.Var, *AdamW) {
		w := newParam(b, "w", []float32{1, 2, 3, 4}, 2, 2)
		v := newParam(b, "v", []float32{1, 2}, 2)
		opt := NewAdamW(b, []Group{{Name: "g", Params: []*autograd.Var{w, v}, WeightDecay: 0.1}}, DefaultAdamWConfig())
		setGrad(b, w, []float32{0.1, 0.2, 0.3, 0.4})
		opt.Step(0.1)
		return w, v, opt
	}
	_, _, src := setup()
	tensors, meta := src.StateDict()
	good := map[string][]float32{}
	for k, t := range tensors {
		good[k] = testutil.Download(b, t)
	}

	cases := []struct {
		name   string
		edit   func(ts map[string][]float32, m map[string]string)
		errHas []string
	}{
		{"wrong optimizer", func(_ map[string][]float32, m map[string]string) { m["optimizer"] = "sgd" }, []string{`"optimizer"`, "sgd"}},
		{"no optimizer", func(_ map[string][]float32, m map[string]string) { delete(m, "optimizer") }, []string{`"optimizer"`}},
		{"beta changed", func(_ map[string][]float32, m map[string]string) { m["beta2"] = "0.99" }, []string{`"beta2"`}},
		{"weight decay changed", func(_ map[string][]float32, m map[string]string) { m["group.0.weight_decay"] = "0" }, []string{`"group.0.weight_decay"`}},
		{"group size changed", func(_ map[string][]float32, m map[string]string) { m["group.0.params"] = "3" }, []string{`"group.0.params"`}},
		{"steps missing", func(_ map[string][]float32, m map[string]string) { delete(m, "steps") }, []string{`"steps"`}},
		{"steps garbage", func(_ map[string][]float32, m map[string]string) { m["steps"] = "-4" }, []string{`"steps"`, "-4"}},
		{"unknown meta", func(_ map[string][]float32, m map[string]string) { m["lookahead"] = "1" }, []string{`"lookahead"`}},
		{"stranger's step", func(_ map[string][]float32, m map[string]string) { m["u.step"] = "1" }, []string{`"u.step"`}},
		{"unknown tensor", func(ts map[string][]float32, _ map[string]string) { ts["w.momentum"] = make([]float32, 4) }, []string{`"w.momentum"`}},
		{"wrong size", func(ts map[string][]float32, _ map[string]string) { ts["w.exp_avg"] = make([]float32, 5) }, []string{`"w.exp_avg"`, "5", "4"}},
		{"partial", func(ts map[string][]float32, _ map[string]string) { delete(ts, "w.exp_avg_sq") }, []string{`"w"`, "partial"}},
		{"step without tensors", func(_ map[string][]float32, m map[string]string) { m["v.step"] = "1" }, []string{`"v.step"`}},
		{"tensors without step", func(_ map[string][]float32, m map[string]string) { delete(m, "w.step") }, []string{`"w.step"`}},
		{"step beyond steps", func(_ map[string][]float32, m map[string]string) { m["w.step"] = "2" }, []string{`"w.step"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, _, opt := setup()
			setGrad(b, w, []float32{-1, 1, -1, 1})
			opt.Step(0.1)
			before, beforeMeta := opt.StateDict()
			beforeVals := map[string][]float32{}
			for k, tt := range before {
				beforeVals[k] = testutil.Download(b, tt)
			}

			ts := maps.Clone(good)
			m := maps.Clone(meta)
			c.edit(ts, m)
			err := opt.LoadStateDict(ts, m)
			if err == nil {
				t.Fatalf("LoadStateDict accepted a bad state")
			}
			for _, s := range c.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
			after, afterMeta := opt.StateDict()
			afterVals := map[string][]float32{}
			for k, tt := range after {
				afterVals[k] = testutil.Download(b, tt)
			}
			if !equalBits(beforeVals, afterVals) || !maps.Equal(beforeMeta, afterMeta) {
				t.Errorf("a failed load changed the optimizer state")
			}
		})
	}

	// The unedited state loads, and SGD state is refused by AdamW and vice versa.
	_, _, opt := setup()
	if err := opt.LoadStateDict(good, meta); err != nil {
		t.Fatalf("LoadStateDict(good): %v", err)
	}
	w := newParam(b, "w", []float32{1, 2, 3, 4}, 2, 2)
	sgd := NewSGD(b, []Group{{Name: "g", Params: []*autograd.Var{w}}}, SGDConfig{Momentum: 0.9})
	if err := sgd.LoadStateDict(good, meta); err == nil || !strings.Contains(err.Error(), "adamw") {
		t.Errorf("SGD loading AdamW state: err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	b := cpu.New()
	p := newParam(b, "p", []float32{1}, 1)
	anon := newParam(b, "", []float32{1}, 1)
	nan := float32(math.NaN())
	cases := []struct {
		name   string
		err    error
		errHas string
	}{
		{"ok", ValidateGroups([]Group{{Params: []*autograd.Var{p}}}), ""},
		{"dup", ValidateGroups([]Group{{Name: "a", Params: []*autograd.Var{p}}, {Name: "b", Params: []*autograd.Var{p}}}), `"p" appears twice`},
		{"nil", ValidateGroups([]Group{{Name: "a", Params: []*autograd.Var{nil}}}), `"a"`},
		{"unnamed", ValidateGroups([]Group{{Params: []*autograd.Var{anon}}}), "no name"},
		{"neg lr", ValidateGroups([]Group{{Name: "h", LRScale: -1}}), "LRScale"},
		{"nan wd", ValidateGroups([]Group{{Name: "h", WeightDecay: nan}}), "WeightDecay"},
		{"sgd ok", SGDConfig{Momentum: 0.9, Nesterov: true}.Validate(), ""},
		{"sgd neg", SGDConfig{Momentum: -0.1}.Validate(), "momentum"},
		{"sgd nesterov", SGDConfig{Nesterov: true}.Validate(), "Nesterov"},
		{"adamw ok", DefaultAdamWConfig().Validate(), ""},
		{"adamw beta1", AdamWConfig{Beta1: 1, Beta2: 0.9, Eps: 1e-8}.Validate(), "Beta1"},
		{"adamw beta2", AdamWConfig{Beta1: 0.9, Beta2: nan, Eps: 1e-8}.Validate(), "Beta2"},
		{"adamw eps", AdamWConfig{Beta1: 0.9, Beta2: 0.9, Eps: -1}.Validate(), "Eps"},
	}
	for _, c := range cases {
		switch {
		case c.errHas == "" && c.err != nil:
			t.Errorf("%s: unexpected error %v", c.name, c.err)
		case c.errHas != "" && (c.err == nil || !strings.Contains(c.err.Error(), c.errHas)):
			t.Errorf("%s: error %v, want one containing %q", c.name, c.err, c.errHas)
		}
	}
}
