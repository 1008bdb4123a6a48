package optim

import (
	"fmt"
	"strconv"

	"github.com/kadapt/kadapt/core"
)

// SGDConfig holds SGD's hyperparameters beyond the learning rate and the per-group
// weight decay.
type SGDConfig struct {
	// Momentum is the heavy-ball coefficient; 0 disables the momentum buffer.
	Momentum float32
	// Nesterov uses Nesterov momentum; it needs Momentum > 0.
	Nesterov bool
}

// Validate reports a negative or non-finite momentum, or Nesterov without momentum.
func (c SGDConfig) Validate() error {
	if !finite(c.Momentum) || c.Momentum < 0 {
		return fmt.Errorf("optim: SGD momentum %v must be finite and non-negative", c.Momentum)
	}
	if c.Nesterov && c.Momentum == 0 {
		return fmt.Errorf("optim: SGD Nesterov momentum needs momentum > 0")
	}
	return nil
}

// SGD is stochastic gradient descent with PyTorch's semantics: weight decay is added
// to the gradient, and the momentum buffer is set to the gradient on a parameter's
// first update (no dampening).
type SGD struct {
	base
	cfg SGDConfig
}

var _ Optimizer = (*SGD)(nil)

// NewSGD returns an SGD optimizer over groups. It panics on what ValidateGroups or
// cfg.Validate reject; call those first when the values come from a config file.
func NewSGD(b core.Backend, groups []Group, cfg SGDConfig) *SGD {
	if err := cfg.Validate(); err != nil {
		panic(err.Error())
	}
	var suffixes []string
	if cfg.Momentum != 0 {
		suffixes = []string{".momentum"}
	}
	return &SGD{base: newBase(b, "sgd", groups, suffixes), cfg: cfg}
}

// Step implements Optimizer.
func (o *SGD) Step(lr float32) {
	o.steps++
	for _, s := range o.slots {
		if !s.active() {
			continue
		}
		var mom *core.Tensor
		first := s.a == nil
		if o.cfg.Momentum != 0 {
			o.ensure(s, 1)
			mom = s.a
		}
		o.b.SGDStep(s.param.Value, s.param.Grad, mom, o.lr(lr, s), o.cfg.Momentum, o.wd(s), o.cfg.Nesterov, first)
		s.step++
	}
}

func (o *SGD) hyper() map[string]string {
	return map[string]string{
		"momentum": formatFloat(o.cfg.Momentum),
		"nesterov": strconv.FormatBool(o.cfg.Nesterov),
	}
}

// StateDict implements Optimizer: one "<param>.momentum" tensor per parameter updated
// so far (none without momentum).
func (o *SGD) StateDict() (map[string]*core.Tensor, map[string]string) {
	return o.stateDict(o.hyper(), false)
}

// LoadStateDict implements Optimizer.
func (o *SGD) LoadStateDict(tensors map[string][]float32, meta map[string]string) error {
	return o.loadStateDict(tensors, meta, o.hyper(), false)
}
