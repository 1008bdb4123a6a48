package train

import (
	"math"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

// inertMLP is the test MLP with two more trainable parameters that cannot train: dead
// never enters the graph (no gradient at all), tiny enters it scaled by 1e-9 (inert
// by magnitude, as KAdaptation's first initialisation was).
type inertMLP struct {
	*mlp
	dead, tiny *autograd.Var
}

func (m *inertMLP) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.ReLU(tp.Linear(x, m.w, tp.Add(m.bias, tp.Scale(m.tiny, 1e-9))))
}

func (m *inertMLP) Trainable() []*autograd.Var {
	return append(m.mlp.Trainable(), m.dead, m.tiny)
}

func TestMovementFlagsInertGroups(t *testing.T) {
	b := cpu.New()
	m := &inertMLP{mlp: newMLP(b, 4, 16, 3, 1),
		dead: autograd.NewParam(b, "blocks.0.dead", core.Shape{16}), tiny: autograd.NewParam(b, "blocks.0.tiny", core.Shape{16})}
	ones := make([]float32, 16)
	for i := range ones {
		ones[i] = 1
	}
	b.Upload(m.dead.Value, ones)
	b.Upload(m.tiny.Value, ones)
	start := params(m)
	cfg := testConfig()
	cfg.WeightDecay = 0 // decay would move the dead parameter without any gradient
	cfg.Select = "last" // so the model ends with the last step's weights, which the diagnostic measures
	res, err := Run(b, m, testTask(), cfg, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	end := params(m)
	got := map[string]GroupMovement{}
	for _, g := range res.Movement.Groups {
		got[g.Group] = g
	}
	if len(got) != 5 {
		t.Fatalf("groups %v, want feat.weight, feat.bias, head, blocks.*.dead, blocks.*.tiny", res.Movement.Groups)
	}
	for _, name := range []string{"feat.weight", "feat.bias", "head"} {
		if g := got[name]; !g.Moved || g.GradNormFirst == 0 || g.GradNormLast == 0 {
			t.Errorf("%s: %+v, want moved with gradient at both ends", name, g)
		}
	}
	if g := got["blocks.*.dead"]; g.Moved || g.RelChange != 0 || g.GradNormFirst != 0 || g.GradNormLast != 0 {
		t.Errorf("a parameter outside the graph: %+v, want not moved and no gradient", g)
	}
	if g := got["blocks.*.tiny"]; g.Moved || g.GradNormFirst == 0 || g.GradNormFirst > 1e-7 {
		t.Errorf("a parameter scaled by 1e-9: %+v, want a tiny gradient and not moved", g)
	}
	inert := res.Movement.Inert()
	if len(inert) != 2 || inert[0].Group != "blocks.*.dead" && inert[1].Group != "blocks.*.dead" {
		t.Errorf("Inert() = %+v, want the dead and tiny groups", inert)
	}
	// Relative change and start norm against the weights before and after the run.
	var d2, s2 float64
	for k := range start[0] {
		d2 += math.Pow(float64(end[0][k])-float64(start[0][k]), 2)
		s2 += float64(start[0][k]) * float64(start[0][k])
	}
	if g, want := got["feat.weight"], math.Sqrt(d2/s2); math.Abs(g.RelChange-want) > 1e-9*want {
		t.Errorf("feat.weight: relative change %v, want %v", g.RelChange, want)
	}
	var sq float64
	for _, i := range []int{2, 3} {
		for _, v := range start[i] {
			sq += float64(v) * float64(v)
		}
	}
	if g := got["head"]; math.Abs(g.StartNorm-math.Sqrt(sq)) > 1e-9*math.Sqrt(sq) || g.Params != int64(len(start[2])+len(start[3])) {
		t.Errorf("head: start norm %v over %d scalars, want %v over %d", g.StartNorm, g.Params, math.Sqrt(sq), len(start[2])+len(start[3]))
	}
}

func TestMovementGroup(t *testing.T) {
	for name, want := range map[string]string{
		"adapt.blocks.3.q.fast.u": "adapt.blocks.*.q.fast.u", "adapt.q.slow.a": "adapt.q.slow.a",
		"blocks.11.attn.k.bias": "blocks.*.attn.k.bias", "head.weight": "head", "head.bias": "head",
		"embed.pos": "embed.pos", "adapt.sub.blocks.2.x": "adapt.sub.blocks.*.x",
	} {
		if got := MovementGroup(name); got != want {
			t.Errorf("MovementGroup(%q) = %q, want %q", name, got, want)
		}
	}
}

// A resumed run measures from where it resumed and says so; resuming a finished run
// runs no step and measures nothing (rather than reporting every group as unmoved).
func TestMovementAfterResume(t *testing.T) {
	b := cpu.New()
	dir := t.TempDir()
	if _, err := Run(b, newMLP(b, 4, 16, 3, 1), testTask(), testConfig(), Options{Dir: dir, StopAfterSteps: 14}); err == nil {
		t.Fatal("the run was not stopped")
	}
	res, err := Run(b, newMLP(b, 4, 16, 3, 1), testTask(), testConfig(), Options{Dir: dir, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	// 90 examples in batches of 16: 6 steps an epoch, and the last checkpoint before
	// step 14 is at the end of epoch 2.
	if res.Movement == nil || res.Movement.FromStep != 12 || len(res.Movement.Inert()) != 0 {
		t.Fatalf("resumed run's movement %+v, want from step 12 with every group moved", res.Movement)
	}
	res, err = Run(b, newMLP(b, 4, 16, 3, 1), testTask(), testConfig(), Options{Dir: dir, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Movement != nil {
		t.Fatalf("resuming a finished run measured %+v", res.Movement)
	}
}
