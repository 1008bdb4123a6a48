package train

import (
	"fmt"
	"math"
	"time"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/optim"
	"github.com/kadapt/kadapt/host/data"
)

// step trains on one batch: forward, loss, backward, clip, optimizer step.
func (r *runner) step(ep *epochRun, fb data.Batch) error {
	if fb.Err != nil {
		return fb.Err
	}
	b, tp, idx, labels := r.b, r.tp, fb.Idx, fb.Labels[:len(fb.Idx)]
	tp.Training = true
	tp.SetSeed((r.cfg.Seed+1)*0x9E3779B97F4A7C15 + uint64(r.steps)<<20) // 2²⁰ dropout calls per step before masks could repeat
	x := fb.Input(tp)
	logits := r.m.Head().Forward(tp, r.m.Features(tp, x))
	target := targetTensor(b, labels, r.task)
	var loss *autograd.Var
	if r.task.MultiLabel {
		loss = tp.BCEWithLogits(logits, target)
	} else {
		loss = tp.CrossEntropy(logits, target, float32(r.cfg.LabelSmoothing))
	}
	tp.Backward(loss)
	r.moves.afterBackward()
	if r.cfg.ClipGrad > 0 {
		optim.ClipGradNorm(b, r.params, float32(r.cfg.ClipGrad))
	}
	r.o.Step(r.sched.LR(r.steps))
	r.o.ZeroGrad()
	var l [1]float32
	b.Download(l[:], loss.Value)
	if r.opt.Progress != nil && !r.task.MultiLabel {
		ep.correct += countCorrect(b, logits, labels)
		ep.seen += len(idx)
	}
	tp.Reset()
	b.Release(target)
	fb.Done()
	if math.IsNaN(float64(l[0])) || math.IsInf(float64(l[0]), 0) {
		return fmt.Errorf("%w (epoch %d, step %d, loss %v)", ErrDiverged, ep.epoch+1, r.steps+1, l[0])
	}
	ep.lossSum += float64(l[0])
	r.steps++
	r.showStep(ep, float64(l[0]))
	return nil
}

func (r *runner) showStep(ep *epochRun, loss float64) {
	if r.opt.Progress == nil {
		return
	}
	acc := math.NaN()
	if !r.task.MultiLabel {
		acc = float64(ep.correct) / float64(max(ep.seen, 1))
	}
	imagesPerSec := float64((ep.batch+1)*r.cfg.BatchSize) / time.Since(ep.start).Seconds()
	r.opt.Progress.Step(ep.epoch+1, r.cfg.Epochs, ep.batch+1, r.batches, loss, acc, imagesPerSec)
}

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
