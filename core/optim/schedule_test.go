package optim

import (
	"fmt"
	"math"
	"testing"
)

func TestSchedules(t *testing.T) {
	cosine := WarmupCosine{Base: 0.1, Min: 0.001, Warmup: 10, Total: 110}
	// Between Warmup and Total: Min + (Base-Min)·½·(1+cos(π·(step-Warmup)/(Total-Warmup))).
	cos := func(step int) float64 {
		return 0.001 + (0.1-0.001)*0.5*(1+math.Cos(math.Pi*float64(step-10)/100))
	}
	noWarm := WarmupCosine{Base: 1, Min: 0, Warmup: 0, Total: 4}
	cases := []struct {
		s    Schedule
		step int
		want float64
	}{
		{Constant{0.03}, 0, 0.03},
		{Constant{0.03}, 1 << 20, 0.03},

		{cosine, -3, 0},
		{cosine, 0, 0},
		{cosine, 1, 0.01},
		{cosine, 5, 0.05},
		{cosine, 9, 0.09},
		{cosine, 10, 0.1},
		{cosine, 35, cos(35)},
		{cosine, 60, 0.001 + 0.099*0.5}, // cos(π/2) = 0
		{cosine, 85, cos(85)},
		{cosine, 109, cos(109)},
		{cosine, 110, 0.001},
		{cosine, 1000, 0.001},
		{noWarm, 0, 1},
		{noWarm, 1, 0.5 * (1 + math.Sqrt2/2)},
		{noWarm, 2, 0.5},
		{noWarm, 3, 0.5 * (1 - math.Sqrt2/2)},
		{noWarm, 4, 0},
		{WarmupCosine{Base: 1, Min: 0.2, Warmup: 5, Total: 3}, 2, 0.4},
		{WarmupCosine{Base: 1, Min: 0.2, Warmup: 5, Total: 3}, 3, 0.2},

		{StepDecay{Base: 0.1, Gamma: 0.5, Every: 30}, 0, 0.1},
		{StepDecay{Base: 0.1, Gamma: 0.5, Every: 30}, 29, 0.1},
		{StepDecay{Base: 0.1, Gamma: 0.5, Every: 30}, 30, 0.05},
		{StepDecay{Base: 0.1, Gamma: 0.5, Every: 30}, 95, 0.1 * 0.125},
		{StepDecay{Base: 0.1, Gamma: 0.1, Every: 0}, 500, 0.1},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v@%d", c.s, c.step), func(t *testing.T) {
			got := float64(c.s.LR(c.step))
			if math.Abs(got-c.want) > 1e-7*math.Max(1, math.Abs(c.want)) {
				t.Errorf("LR(%d) = %.9g, want %.9g", c.step, got, c.want)
			}
		})
	}
}
