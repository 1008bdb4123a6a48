package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/optim"
)

// Run trains m on task and returns the selected result.
func Run(b core.Backend, m Model, task Task, cfg Config, opt Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	params := m.Trainable()
	groups := ParamGroups(params, float32(cfg.WeightDecay))
	var o optim.Optimizer
	if cfg.Optimizer == "sgd" {
		o = optim.NewSGD(b, groups, optim.SGDConfig{Momentum: float32(cfg.Momentum), Nesterov: cfg.Nesterov})
	} else {
		o = optim.NewAdamW(b, groups, optim.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	}
	n := task.Train.Len()
	batches := batchCount(n, cfg.BatchSize)
	sched := schedule(cfg, batches)

	st := state{best: math.Inf(-1), bestLoss: math.Inf(1), sel: cfg.Select, identity: opt.Identity}
	if st.identity == nil {
		var err error
		if st.identity, err = json.Marshal(map[string]Config{"train": cfg}); err != nil {
			return nil, err
		}
	}
	metricsPath := MetricsPath(opt.Dir)
	ckptPath := CheckpointPath(opt.Dir)
	if opt.Resume {
		if err := loadCheckpoint(ckptPath, m, o, &st, cfg, batches); err != nil {
			return nil, err
		}
		if err := truncateMetrics(metricsPath, st.epoch); err != nil {
			return nil, err
		}
	} else if err := os.WriteFile(metricsPath, nil, 0o644); err != nil {
		return nil, err
	}

	shape := task.Train.Shape()
	per := 1
	for _, d := range shape {
		per *= d
	}
	var staged *stagedSet
	epochData, redrawn := task.Train.(EpochData)
	if !redrawn && shouldStage(b, opt.Staging, n, per) {
		var err error
		if staged, err = stage(b, task.Train, cfg.BatchSize); err != nil {
			return nil, err
		}
		defer staged.release()
	}
	ctx := opt.Context
	if ctx == nil {
		ctx = context.Background()
	}
	// stopHere checkpoints the run after bi steps of epoch (0-based) and says so.
	stopHere := func(epoch, bi int, lossSum float64, steps int) error {
		st.epoch, st.step, st.batch, st.epochLoss = epoch, steps, bi, lossSum
		if err := saveCheckpoint(ckptPath, m, o, &st); err != nil {
			return fmt.Errorf("%w; the checkpoint could not be written: %v", context.Cause(ctx), err)
		}
		return &StoppedError{Epoch: epoch + 1, Epochs: cfg.Epochs, Batch: bi, Batches: batches, Cause: context.Cause(ctx)}
	}
	tp := autograd.NewTape(b)
	steps := st.step
	moves := newMovementTracker(b, params, steps)
	defer moves.release()
	// A run resumed from the checkpoint its early stop wrote goes straight to the test.
	stoppedEarly := cfg.Patience > 0 && st.sinceBest >= cfg.Patience
	for epoch := st.epoch; epoch < cfg.Epochs && !stoppedEarly; epoch++ {
		start := time.Now()
		order := permutation(n, cfg.Seed, epoch)
		if redrawn {
			epochData.SetEpoch(epoch)
		}
		var lossSum float64
		skip := 0 // batches of this epoch trained before the checkpoint resumed from
		if epoch == st.epoch {
			skip, lossSum = st.batch, st.epochLoss
		}
		correct, seen := 0, 0
		var next <-chan fetched
		var stop func()
		if staged != nil {
			next, stop = staged.epoch(order, cfg.BatchSize, skip)
		} else {
			next, stop = prefetch(task.Train, order, cfg.BatchSize, per, skip)
		}
		defer stop() // an early return must not strand the prefetching goroutine
		for bi := skip; bi < batches; bi++ {
			if ctx.Err() != nil {
				return nil, stopHere(epoch, bi, lossSum, steps)
			}
			fb, ok := <-next
			if !ok {
				break
			}
			if fb.err != nil {
				return nil, fb.err
			}
			idx, xbuf, labels := fb.idx, fb.x, fb.labels
			tp.Training = true
			tp.SetSeed((cfg.Seed+1)*0x9E3779B97F4A7C15 + uint64(steps)<<20) // 2²⁰ dropout calls per step before masks could repeat
			var x *autograd.Var
			var xs *core.Tensor // the staged batch, released with the step's tensors
			if staged != nil {
				xs = staged.batch(idx)
				x = tp.Const(xs)
			} else {
				x = tp.Input(xbuf[:len(idx)*per], append([]int{len(idx)}, shape...)...)
			}
			logits := m.Head().Forward(tp, m.Features(tp, x))
			target := targetTensor(b, labels[:len(idx)], task)
			var loss *autograd.Var
			if task.MultiLabel {
				loss = tp.BCEWithLogits(logits, target)
			} else {
				loss = tp.CrossEntropy(logits, target, float32(cfg.LabelSmoothing))
			}
			tp.Backward(loss)
			moves.afterBackward()
			if cfg.ClipGrad > 0 {
				optim.ClipGradNorm(b, params, float32(cfg.ClipGrad))
			}
			lr := sched.LR(steps)
			o.Step(lr)
			o.ZeroGrad()
			var l [1]float32
			b.Download(l[:], loss.Value)
			if opt.Progress != nil && !task.MultiLabel {
				correct += countCorrect(b, logits, labels[:len(idx)])
				seen += len(idx)
			}
			endStep := func() {
				tp.Reset()
				b.Release(target)
				if xs != nil {
					b.Release(xs)
				}
			}
			if math.IsNaN(float64(l[0])) || math.IsInf(float64(l[0]), 0) {
				endStep()
				return nil, fmt.Errorf("%w (epoch %d, step %d, loss %v)", ErrDiverged, epoch+1, steps+1, l[0])
			}
			lossSum += float64(l[0])
			endStep()
			steps++
			if opt.Progress != nil {
				acc := math.NaN()
				if !task.MultiLabel {
					acc = float64(correct) / float64(max(seen, 1))
				}
				opt.Progress.Step(epoch+1, cfg.Epochs, bi+1, batches, float64(l[0]), acc, float64((bi+1)*cfg.BatchSize)/time.Since(start).Seconds())
			}
			fb.done()
			if opt.StopAfterSteps > 0 && steps >= opt.StopAfterSteps {
				return nil, ErrStopped
			}
		}
		elapsed := time.Since(start).Seconds()
		em := EpochMetrics{Epoch: epoch + 1, Step: steps, LR: float64(sched.LR(max(steps-1, 0))),
			TrainLoss: lossSum / float64(batches), Seconds: elapsed, ImagesPS: float64(n) / elapsed,
			Val: math.NaN(), ValLoss: math.NaN(), Test: math.NaN()}
		var err error
		if task.Val != nil {
			if em.Val, em.ValLoss, err = evaluate(ctx, b, m, task.Val, task, cfg.BatchSize); err != nil {
				if ctx.Err() != nil {
					return nil, stopHere(epoch, batches, lossSum, steps)
				}
				return nil, err
			}
		}
		final := epoch+1 == cfg.Epochs
		// best-test-epoch needs the test score of every epoch; otherwise the selected
		// epoch's weights are kept aside and the test split is scored once at the end.
		// Few-shot test sets are thousands of images, so that is most of the run saved.
		if cfg.Select == "best-test-epoch" && task.Test != nil {
			if em.Test, _, err = evaluate(ctx, b, m, task.Test, task, cfg.BatchSize); err != nil {
				if ctx.Err() != nil {
					return nil, stopHere(epoch, batches, lossSum, steps)
				}
				return nil, err
			}
		}
		if st.improves(em) {
			st.snapshot(m)
		}
		st.record(em, cfg.Select)
		if err := appendMetrics(metricsPath, em); err != nil {
			return nil, err
		}
		if opt.Progress != nil {
			opt.Progress.Epoch(em)
		}
		st.epoch, st.step, st.batch, st.epochLoss = epoch+1, steps, 0, 0
		last := final || (cfg.Patience > 0 && st.sinceBest >= cfg.Patience)
		if last || (cfg.CheckpointEvery > 0 && (epoch+1)%cfg.CheckpointEvery == 0) {
			if err := saveCheckpoint(ckptPath, m, o, &st); err != nil {
				return nil, err
			}
		}
		if last {
			break
		}
	}
	movement := moves.result() // the last step's weights, before the selected epoch's are restored
	if cfg.Select != "best-test-epoch" && task.Test != nil {
		st.restore(m)
		test, _, err := evaluate(ctx, b, m, task.Test, task, cfg.BatchSize)
		if err != nil && ctx.Err() != nil {
			// The last epoch's checkpoint is written: a resume goes straight here.
			return nil, &StoppedError{Epoch: st.epoch, Epochs: cfg.Epochs, Batch: batches, Batches: batches, Cause: context.Cause(ctx), FinalTest: true}
		}
		if err != nil {
			return nil, err
		}
		st.selected.Test = test
		for i := range st.history {
			if st.history[i].Epoch == st.selected.Epoch {
				st.history[i].Test = test
			}
		}
	}
	res := st.result(task.Metric, cfg.Select)
	res.Movement = movement
	return res, nil
}
