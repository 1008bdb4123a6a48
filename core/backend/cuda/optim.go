//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

func (b *Backend) SGDStep(param, grad, mom *core.Tensor, lr, momentum, weightDecay float32, nesterov, first bool) {
	sameSize("SGDStep", param, grad)
	var pm uintptr
	if momentum != 0 {
		if mom == nil {
			panic("cuda: SGDStep: momentum is non-zero but the momentum buffer is nil")
		}
		sameSize("SGDStep", param, mom)
		pm = b.p(mom, "SGDStep")
	}
	n := param.Size()
	b.launch("k_sgd", n, newArgs().ptr("p", b.p(param, "SGDStep")).ptr("g", b.p(grad, "SGDStep")).ptr("mom", pm).
		f32("lr", lr).f32("mu", momentum).f32("wd", weightDecay).flag("nesterov", nesterov).flag("first", first).i64("n", n))
}

func (b *Backend) AdamWStep(param, grad, m, v *core.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int) {
	sameSize("AdamWStep", param, grad)
	sameSize("AdamWStep", param, m)
	sameSize("AdamWStep", param, v)
	if step < 1 {
		panic(fmt.Sprintf("cuda: AdamWStep: step %d, want 1 or more", step))
	}
	bc1 := 1 - math.Pow(float64(beta1), float64(step))
	bc2 := 1 - math.Pow(float64(beta2), float64(step))
	decay := 1 - float64(lr)*float64(weightDecay)
	n := param.Size()
	b.launch("k_adamw", n, newArgs().ptr("p", b.p(param, "AdamWStep")).ptr("g", b.p(grad, "AdamWStep")).
		ptr("m", b.p(m, "AdamWStep")).ptr("v", b.p(v, "AdamWStep")).f32("b1", beta1).f32("b2", beta2).f32("eps", eps).
		f32("decay", float32(decay)).f32("stepSize", float32(float64(lr)/bc1)).f32("invSqrtBC2", float32(1/math.Sqrt(bc2))).
		i64("n", n))
}
