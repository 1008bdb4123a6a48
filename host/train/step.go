package train

import (
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// countCorrect counts the rows whose highest logit is the label.
func countCorrect(b core.Backend, logits *autograd.Var, labels [][]int) int {
	c := logits.Shape()[1]
	v := make([]float32, logits.Value.Size())
	b.Download(v, logits.Value)
	n := 0
	for i, l := range labels {
		best := 0
		for j := 1; j < c; j++ {
			if v[i*c+j] > v[i*c+best] {
				best = j
			}
		}
		if best == l[0] {
			n++
		}
	}
	return n
}

func targetTensor(b core.Backend, labels [][]int, task Task) *core.Tensor {
	if task.MultiLabel {
		t := b.Alloc(core.Shape{len(labels), task.Classes})
		v := make([]float32, len(labels)*task.Classes)
		for i, ls := range labels {
			for _, l := range ls {
				v[i*task.Classes+l] = 1
			}
		}
		b.Upload(t, v)
		return t
	}
	t := b.Alloc(core.Shape{len(labels)})
	v := make([]float32, len(labels))
	for i, ls := range labels {
		v[i] = float32(ls[0])
	}
	b.Upload(t, v)
	return t
}
