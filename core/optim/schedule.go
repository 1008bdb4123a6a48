package optim

import "math"

// Schedule maps an optimizer step to a learning rate. step counts the updates already
// taken, so the first update uses LR(0); a negative step is treated as 0.
type Schedule interface {
	LR(step int) float32
}

// Constant is a fixed learning rate, the paper's protocol. (The field cannot be called
// LR: that is the method.)
type Constant struct{ Rate float32 }

// LR implements Schedule.
func (c Constant) LR(int) float32 { return c.Rate }

// WarmupCosine rises linearly from 0 at step 0 to Base at step Warmup, then follows a
// half cosine from Base down to Min at step Total and stays at Min after it (the
// Hugging Face get_cosine_schedule_with_warmup shape, with a floor). Steps at or past
// Total give Min even inside the warmup when Total <= Warmup.
type WarmupCosine struct {
	Base, Min     float32
	Warmup, Total int
}

// LR implements Schedule.
func (s WarmupCosine) LR(step int) float32 {
	step = max(step, 0)
	switch {
	case step < s.Warmup && step < s.Total:
		return float32(float64(s.Base) * float64(step) / float64(s.Warmup))
	case step >= s.Total:
		return s.Min
	}
	progress := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	base, lo := float64(s.Base), float64(s.Min)
	return float32(lo + (base-lo)*0.5*(1+math.Cos(math.Pi*progress)))
}

// StepDecay multiplies Base by Gamma once every Every steps:
// Base·Gamma^⌊step/Every⌋. Every <= 0 means no decay.
type StepDecay struct {
	Base, Gamma float32
	Every       int
}

// LR implements Schedule.
func (s StepDecay) LR(step int) float32 {
	if s.Every <= 0 {
		return s.Base
	}
	k := max(step, 0) / s.Every
	return float32(float64(s.Base) * math.Pow(float64(s.Gamma), float64(k)))
}
