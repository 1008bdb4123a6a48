package optim

import (
	"math"
	"math/rand/v2"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/testutil"
)

// spirals is the classic three-arm spiral problem (CS231n): perClass points per arm,
// radius growing from 0 to 1 while the angle turns through 4 radians, angle noise 0.2.
func spirals(seed uint64, perClass int) (x []float32, labels []float32) {
	r := rand.New(rand.NewPCG(seed, 7))
	for c := 0; c < 3; c++ {
		for i := 0; i < perClass; i++ {
			frac := float64(i) / float64(perClass-1)
			theta := 4*float64(c) + 4*frac + 0.2*r.NormFloat64()
			x = append(x, float32(frac*math.Sin(theta)), float32(frac*math.Cos(theta)))
			labels = append(labels, float32(c))
		}
	}
	return x, labels
}

// mlp is a 2→hidden→3 ReLU network with PyTorch's Linear layout (weight [out, in]).
type mlp struct {
	w1, b1, w2, b2 *autograd.Var
}

// newMLP initialises like torch.nn.Linear: U(-1/√fan_in, 1/√fan_in).
func newMLP(b core.Backend, seed uint64, hidden int) *mlp {
	r := rand.New(rand.NewPCG(seed, 11))
	uniform := func(n, fanIn int) []float32 {
		bound := 1 / math.Sqrt(float64(fanIn))
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((2*r.Float64() - 1) * bound)
		}
		return v
	}
	return &mlp{
		w1: newParam(b, "fc1.weight", uniform(hidden*2, 2), hidden, 2),
		b1: newParam(b, "fc1.bias", uniform(hidden, 2), hidden),
		w2: newParam(b, "fc2.weight", uniform(3*hidden, hidden), 3, hidden),
		b2: newParam(b, "fc2.bias", uniform(3, hidden), 3),
	}
}

func (m *mlp) params() []*autograd.Var { return []*autograd.Var{m.w1, m.b1, m.w2, m.b2} }

// groups puts decay on the weights only and gives the head a larger learning rate, so
// the tests exercise per-group hyperparameters.
func (m *mlp) groups(wd float32) []Group {
	return []Group{
		{Name: "body", Params: []*autograd.Var{m.w1}, WeightDecay: wd},
		{Name: "biases", Params: []*autograd.Var{m.b1, m.b2}},
		{Name: "head", Params: []*autograd.Var{m.w2}, LRScale: 2, WeightDecay: wd},
	}
}

// forward records the loss on tp and returns it with the logits.
func (m *mlp) forward(tp *autograd.Tape, x []float32, labels *core.Tensor) (loss, logits *autograd.Var) {
	in := tp.Input(x, len(x)/2, 2)
	h := tp.ReLU(tp.Linear(in, m.w1, m.b1))
	logits = tp.Linear(h, m.w2, m.b2)
	return tp.CrossEntropy(logits, labels, 0), logits
}

// trainStep runs one forward/backward/clip/update and returns the loss before the update.
func (m *mlp) trainStep(b core.Backend, tp *autograd.Tape, opt Optimizer, x []float32, labels *core.Tensor, lr, clip float32) float32 {
	tp.Reset()
	opt.ZeroGrad()
	loss, _ := m.forward(tp, x, labels)
	tp.Backward(loss)
	if clip > 0 {
		b.Release(ClipGradNorm(b, m.params(), clip))
	}
	opt.Step(lr)
	return testutil.Download(b, loss.Value)[0]
}

// accuracy is the fraction of rows whose largest logit is the label.
func accuracy(b core.Backend, logits *autograd.Var, labels []float32) float64 {
	v := testutil.Download(b, logits.Value)
	c := logits.Value.Dim(1)
	right := 0
	for i, l := range labels {
		row := v[i*c : (i+1)*c]
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if best == int(l) {
			right++
		}
	}
	return float64(right) / float64(len(labels))
}

func uploadLabels(b core.Backend, labels []float32) *core.Tensor {
	t := b.Alloc(core.Shape{len(labels)})
	b.Upload(t, labels)
	return t
}
