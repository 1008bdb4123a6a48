package optim

import (
	"testing"

	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/core/testutil"
)

// A 2→16→3 ReLU MLP learns the three-spiral problem (300 points, full batch) on the
// CPU backend. The thresholds are well inside what each run reaches (see the
// comments), yet far from chance: an untrained net sits at loss ≈ ln 3 ≈ 1.10 and
// accuracy ≈ 1/3, and a linear classifier cannot exceed about 0.55 here.
func TestTrainSpiralMLP(t *testing.T) {
	cases := []struct {
		name     string
		make     func(groups []Group) Optimizer
		lr       float32
		steps    int
		maxLoss  float32
		minAccur float64
	}{
		{
			name:  "adamw",
			make:  func(g []Group) Optimizer { return NewAdamW(cpu.New(), g, DefaultAdamWConfig()) },
			lr:    0.02,
			steps: 600,
			// Reaches loss 0.028 and accuracy 0.993 (cpu backend, go1.26).
			maxLoss: 0.1, minAccur: 0.95,
		},
		{
			name:  "sgd-momentum",
			make:  func(g []Group) Optimizer { return NewSGD(cpu.New(), g, SGDConfig{Momentum: 0.9}) },
			lr:    0.1,
			steps: 600,
			// Reaches loss 0.089 and accuracy 0.987 (cpu backend, go1.26).
			maxLoss: 0.2, minAccur: 0.95,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := cpu.New()
			x, y := spirals(1, 100)
			labels := uploadLabels(b, y)
			m := newMLP(b, 3, 16)
			opt := c.make(m.groups(1e-4))
			tp := autograd.NewTape(b)
			first := m.trainStep(b, tp, opt, x, labels, c.lr, 0)
			for i := 1; i < c.steps; i++ {
				m.trainStep(b, tp, opt, x, labels, c.lr, 0)
			}
			tp.Reset()
			loss, logits := m.forward(tp, x, labels)
			final := testutil.Download(b, loss.Value)[0]
			acc := accuracy(b, logits, y)
			t.Logf("loss %.4f → %.4f, accuracy %.3f after %d steps", first, final, acc, c.steps)
			if !(final < c.maxLoss) {
				t.Errorf("final loss %.4f, want < %.2f", final, c.maxLoss)
			}
			if acc < c.minAccur {
				t.Errorf("training accuracy %.3f, want >= %.2f", acc, c.minAccur)
			}
		})
	}
}
