package ref

import (
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
)

func (*backend) SGDStep(param, grad, mom *core.Tensor, lr, momentum, weightDecay float32, nesterov, first bool) {
	const op = "SGDStep"
	p, g := vals(param, op, "param"), vals(grad, op, "grad")
	sameSize(op, param, grad)
	var mb []float64
	if momentum != 0 {
		mb = vals(mom, op, "mom")
		sameSize(op, param, mom)
	}
	lr64, mu, wd := float64(lr), float64(momentum), float64(weightDecay)
	for i := range p {
		gi := g[i] + wd*p[i]
		step := gi
		if mb != nil {
			if first {
				mb[i] = gi
			} else {
				mb[i] = mu*mb[i] + gi
			}
			step = mb[i]
			if nesterov {
				step = gi + mu*mb[i]
			}
		}
		p[i] -= lr64 * step
	}
}

func (*backend) AdamWStep(param, grad, m, v *core.Tensor, lr, beta1, beta2, eps, weightDecay float32, step int) {
	const op = "AdamWStep"
	p, g, ms, vs := vals(param, op, "param"), vals(grad, op, "grad"), vals(m, op, "m"), vals(v, op, "v")
	sameSize(op, param, grad)
	sameSize(op, param, m)
	sameSize(op, param, v)
	if step < 1 {
		panic(fmt.Sprintf("ref: AdamWStep: step %d must be at least 1", step))
	}
	lr64, b1, b2, e, wd := float64(lr), float64(beta1), float64(beta2), float64(eps), float64(weightDecay)
	bc1 := 1 - math.Pow(b1, float64(step))
	bc2 := 1 - math.Pow(b2, float64(step))
	for i := range p {
		p[i] -= lr64 * wd * p[i]
		ms[i] = b1*ms[i] + (1-b1)*g[i]
		vs[i] = b2*vs[i] + (1-b2)*g[i]*g[i]
		p[i] -= lr64 * (ms[i] / bc1) / (math.Sqrt(vs[i]/bc2) + e)
	}
}
