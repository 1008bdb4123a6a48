package train

import (
	"context"
	"fmt"
	"math"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/datasets/metrics"
)

// Evaluate scores m on d with the task's metric, in eval mode and without gradients.
func Evaluate(b core.Backend, m Model, d Data, task Task, batch int) (float64, error) {
	score, _, err := EvaluateWithLoss(b, m, d, task, batch)
	return score, err
}

// evaluate is EvaluateWithLoss that gives up between batches once ctx is cancelled.
func evaluate(ctx context.Context, b core.Backend, m Model, d Data, task Task, batch int) (score, loss float64, err error) {
	logits, labels, err := predict(ctx, b, m, d, batch)
	if err != nil {
		return 0, 0, err
	}
	return scoreLogits(logits, labels, task)
}

// EvaluateWithLoss also returns the mean loss (cross-entropy, or BCE for multi-label
// tasks), which breaks ties between epochs of equal validation score: few-shot
// validation sets are small enough that ties are the rule.
func EvaluateWithLoss(b core.Backend, m Model, d Data, task Task, batch int) (score, loss float64, err error) {
	return evaluate(context.Background(), b, m, d, task, batch)
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
func Predict(b core.Backend, m Model, d Data, batch int) ([][]float32, [][]int, error) {
	return predict(context.Background(), b, m, d, batch)
}

func predict(ctx context.Context, b core.Backend, m Model, d Data, batch int) ([][]float32, [][]int, error) {
	tp := autograd.NewTape(b)
	tp.Training = false
	tp.SetGradEnabled(false)
	shape := d.Shape()
	var logits [][]float32
	labels := make([][]int, 0, d.Len())
	err := FetchChunks(ctx, d, batch, func(_ int, x []float32, l [][]int) error {
		out := m.Head().Forward(tp, m.Features(tp, tp.Input(x, append([]int{len(l)}, shape...)...)))
		c := out.Shape()[1]
		flat := make([]float32, len(l)*c)
		b.Download(flat, out.Value)
		for i := range l {
			logits = append(logits, flat[i*c:(i+1)*c])
		}
		labels = append(labels, l...)
		tp.Reset()
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return logits, labels, nil
}
