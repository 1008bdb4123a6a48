package train

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/datasets/metrics"
	"github.com/kadapt/kadapt/host/data"
)

// Evaluate scores m on d with the task's metric, in eval mode and without gradients.
func Evaluate(b core.Backend, m Model, d data.Split, task Task, batch int) (float64, error) {
	score, _, err := EvaluateWithLoss(b, m, d, task, batch)
	return score, err
}

// evaluate is EvaluateWithLoss that gives up between batches once ctx is cancelled
// and reports its progress to report (which may be nil).
func evaluate(ctx context.Context, b core.Backend, m Model, d data.Split, task Task, batch int, report func(done, total int)) (score, loss float64, err error) {
	logits, labels, err := predict(ctx, b, m, d, batch, report)
	if err != nil {
		return 0, 0, err
	}
	return scoreLogits(logits, labels, task)
}

// EvaluateWithLoss also returns the mean loss (cross-entropy, or BCE for multi-label
// tasks), which breaks ties between epochs of equal validation score: few-shot
// validation sets are small enough that ties are the rule.
func EvaluateWithLoss(b core.Backend, m Model, d data.Split, task Task, batch int) (score, loss float64, err error) {
	return evaluate(context.Background(), b, m, d, task, batch, nil)
}

func scoreLogits(logits [][]float32, labels [][]int, task Task) (score, loss float64, err error) {
	for i, row := range logits {
		for _, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, 0, fmt.Errorf("%w (logits of example %d are not finite)", ErrDiverged, i)
			}
		}
	}
	if score, err = metrics.Evaluate(task.Metric, logits, labels); err != nil {
		return 0, 0, err
	}
	return score, meanLoss(logits, labels, task), nil
}

func meanLoss(logits [][]float32, labels [][]int, task Task) float64 {
	var total float64
	for i, row := range logits {
		if task.MultiLabel {
			target := make([]float64, len(row))
			for _, l := range labels[i] {
				target[l] = 1
			}
			for c, x := range row {
				x := float64(x)
				total += (math.Max(x, 0) - x*target[c] + math.Log1p(math.Exp(-math.Abs(x)))) / float64(len(row))
			}
			continue
		}
		mx := math.Inf(-1)
		for _, x := range row {
			mx = math.Max(mx, float64(x))
		}
		var z float64
		for _, x := range row {
			z += math.Exp(float64(x) - mx)
		}
		total += mx + math.Log(z) - float64(row[labels[i][0]])
	}
	return total / float64(len(logits))
}

// Predict returns every example's logits and labels.
func Predict(b core.Backend, m Model, d data.Split, batch int) ([][]float32, [][]int, error) {
	return predict(context.Background(), b, m, d, batch, nil)
}

func predict(ctx context.Context, b core.Backend, m Model, d data.Split, batch int, report func(done, total int)) ([][]float32, [][]int, error) {
	tp := autograd.NewTape(b)
	tp.Training = false
	tp.SetGradEnabled(false)
	shape := d.Shape()
	var logits [][]float32
	labels := make([][]int, 0, d.Len())
	err := data.FetchChunks(ctx, d, batch, func(off int, x []float32, l [][]int) error {
		out := m.Head().Forward(tp, m.Features(tp, tp.Input(x, append([]int{len(l)}, shape...)...)))
		c := out.Shape()[1]
		flat := make([]float32, len(l)*c)
		b.Download(flat, out.Value)
		for i := range l {
			logits = append(logits, flat[i*c:(i+1)*c])
		}
		labels = append(labels, l...)
		tp.Reset()
		if report != nil {
			report(off+len(l), d.Len())
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return logits, labels, nil
}

// evaluateEpoch scores the epoch just trained on the validation split.
func (r *runner) evaluateEpoch(ep *epochRun) (EpochMetrics, error) {
	elapsed := time.Since(ep.start).Seconds()
	em := EpochMetrics{Epoch: ep.epoch + 1, Step: r.steps, LR: float64(r.sched.LR(max(r.steps-1, 0))),
		TrainLoss: ep.lossSum / float64(r.batches), Seconds: elapsed, ImagesPS: float64(r.n) / elapsed,
		Val: math.NaN(), ValLoss: math.NaN(), Test: math.NaN()}
	var err error
	if r.task.Val != nil {
		em.Val, em.ValLoss, err = evaluate(r.ctx, r.b, r.m, r.task.Val, r.task, r.cfg.BatchSize, r.passReport("val"))
	}
	// best-test-epoch needs the test score of every epoch; otherwise the selected
	// epoch's weights are kept aside and the test split is scored once at the end.
	// Few-shot test sets are thousands of images, so that is most of the run saved.
	if err == nil && r.cfg.Select == "best-test-epoch" && r.task.Test != nil {
		em.Test, _, err = evaluate(r.ctx, r.b, r.m, r.task.Test, r.task, r.cfg.BatchSize, r.passReport("test"))
	}
	if err != nil && r.ctx.Err() != nil {
		return em, r.stopAt(ep, r.batches)
	}
	return em, err
}

// testSelected scores the selected epoch's weights on the test split, unless every
// epoch was tested already, and returns the run's result.
func (r *runner) testSelected() (*Result, error) {
	movement := r.moves.result() // the last step's weights, before the selected epoch's are restored
	if r.cfg.Select != "best-test-epoch" && r.task.Test != nil {
		r.st.restore(r.m)
		test, _, err := evaluate(r.ctx, r.b, r.m, r.task.Test, r.task, r.cfg.BatchSize, r.passReport("test"))
		if err != nil && r.ctx.Err() != nil {
			// The last epoch's checkpoint is written: a resume goes straight here.
			return nil, &StoppedError{Epoch: r.st.epoch, Epochs: r.cfg.Epochs, Batch: r.batches, Batches: r.batches, Cause: context.Cause(r.ctx), FinalTest: true}
		}
		if err != nil {
			return nil, err
		}
		r.st.setSelectedTest(test)
	}
	res := r.st.result(r.task.Metric, r.cfg.Select)
	res.Movement = movement
	return res, nil
}

// passReport is where an evaluation pass over split reports its progress: the run's
// Progress when it follows passes (PassProgress), else nowhere.
func (r *runner) passReport(split string) func(done, total int) {
	pp, ok := r.opt.Progress.(PassProgress)
	if !ok {
		return nil
	}
	return func(done, total int) { pp.Pass(split, done, total) }
}
