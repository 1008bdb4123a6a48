package optim

import (
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// AdamWConfig holds AdamW's hyperparameters beyond the learning rate and the per-group
// weight decay. The zero value is not PyTorch's default; use DefaultAdamWConfig.
type AdamWConfig struct {
	Beta1, Beta2 float32
	Eps          float32
}

// DefaultAdamWConfig returns PyTorch's defaults: betas (0.9, 0.999), eps 1e-8.
func DefaultAdamWConfig() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Validate reports betas outside [0, 1) (the bias correction divides by 1-β^t) or a
// negative or non-finite eps.
func (c AdamWConfig) Validate() error {
	for _, b := range []struct {
		name string
		v    float32
	}{{"Beta1", c.Beta1}, {"Beta2", c.Beta2}} {
		if !finite(b.v) || b.v < 0 || b.v >= 1 {
			return fmt.Errorf("optim: AdamW %s %v must lie in [0, 1)", b.name, b.v)
		}
	}
	if !finite(c.Eps) || c.Eps < 0 {
		return fmt.Errorf("optim: AdamW Eps %v must be finite and non-negative", c.Eps)
	}
	return nil
}

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's
// torch.optim.AdamW: each update first shrinks the parameter by lr·wd, then takes the
// bias-corrected Adam step. The step count behind the bias correction is kept per
// parameter, as PyTorch does.
type AdamW struct {
	base
	cfg AdamWConfig
}

var _ Optimizer = (*AdamW)(nil)

// NewAdamW returns an AdamW optimizer over groups. It panics on what ValidateGroups or
// cfg.Validate reject; call those first when the values come from a config file.
func NewAdamW(b core.Backend, groups []Group, cfg AdamWConfig) *AdamW {
	if err := cfg.Validate(); err != nil {
		panic(err.Error())
	}
	return &AdamW{base: newBase(b, "adamw", groups, []string{".exp_avg", ".exp_avg_sq"}), cfg: cfg}
}

// Step implements Optimizer.
func (o *AdamW) Step(lr float32) {
	o.steps++
	for _, s := range o.slots {
		if !s.active() {
			continue
		}
		o.ensure(s, 2)
		s.step++
		o.b.AdamWStep(s.param.Value, s.param.Grad, s.a, s.b, o.lr(lr, s),
			o.cfg.Beta1, o.cfg.Beta2, o.cfg.Eps, o.wd(s), s.step)
	}
}

func (o *AdamW) hyper() map[string]string {
	return map[string]string{
		"beta1": formatFloat(o.cfg.Beta1),
		"beta2": formatFloat(o.cfg.Beta2),
		"eps":   formatFloat(o.cfg.Eps),
	}
}

// StateDict implements Optimizer: "<param>.exp_avg" and "<param>.exp_avg_sq" tensors
// and a "<param>.step" meta entry per parameter updated so far.
func (o *AdamW) StateDict() (map[string]*core.Tensor, map[string]string) {
	return o.stateDict(o.hyper(), true)
}

// LoadStateDict implements Optimizer.
func (o *AdamW) LoadStateDict(tensors map[string][]float32, meta map[string]string) error {
	return o.loadStateDict(tensors, meta, o.hyper(), true)
}
