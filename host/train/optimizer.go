package train

import (
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/optim"
)

// ParamGroups puts biases and 1-D parameters (norm scales) in a group without weight
// decay, the usual practice that keeps decay from shrinking them.
func ParamGroups(params []*autograd.Var, wd float32) []optim.Group {
	decay := optim.Group{Name: "decay", WeightDecay: wd}
	noDecay := optim.Group{Name: "no_decay"}
	for _, p := range params {
		if p.Shape().Size() == p.Shape()[len(p.Shape())-1] && len(p.Shape()) == 1 {
			noDecay.Params = append(noDecay.Params, p)
		} else {
			decay.Params = append(decay.Params, p)
		}
	}
	return []optim.Group{decay, noDecay}
}

func schedule(cfg Config, batches int) optim.Schedule {
	total := cfg.Epochs * batches
	switch cfg.Schedule {
	case "cosine":
		return optim.WarmupCosine{Base: float32(cfg.LR), Warmup: cfg.WarmupEpochs * batches, Total: total}
	case "step":
		every := cfg.StepEvery
		if every <= 0 {
			every = max(cfg.Epochs/3, 1)
		}
		gamma := cfg.StepGamma
		if gamma == 0 {
			gamma = 0.1
		}
		return optim.StepDecay{Base: float32(cfg.LR), Gamma: float32(gamma), Every: every * batches}
	}
	return optim.Constant{Rate: float32(cfg.LR)}
}

func newOptimizer(b core.Backend, params []*autograd.Var, cfg Config) optim.Optimizer {
	groups := ParamGroups(params, float32(cfg.WeightDecay))
	if cfg.Optimizer == "sgd" {
		return optim.NewSGD(b, groups, optim.SGDConfig{Momentum: float32(cfg.Momentum), Nesterov: cfg.Nesterov})
	}
	return optim.NewAdamW(b, groups, optim.DefaultAdamWConfig())
}
