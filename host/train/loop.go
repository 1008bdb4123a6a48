package train

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/optim"
	"github.com/kadapt/kadapt/host/atomicfile"
	"github.com/kadapt/kadapt/host/data"
)

// Run trains m on task and returns the selected result.
func Run(b core.Backend, m Model, task Task, cfg Config, opt Options) (*Result, error) {
	r, err := newRunner(b, m, task, cfg, opt)
	if err != nil {
		return nil, err
	}
	defer r.release()
	for epoch := r.st.epoch; epoch < cfg.Epochs && !r.patienceSpent(); epoch++ {
		ep := r.startEpoch(epoch)
		defer ep.stop() // an early return must not strand the prefetching goroutine
		for ; ep.batch < r.batches; ep.batch++ {
			if r.ctx.Err() != nil {
				return nil, r.stopAt(ep, ep.batch)
			}
			fb, ok := <-ep.next
			if !ok {
				break
			}
			if err := r.step(ep, fb); err != nil {
				return nil, err
			}
			if opt.StopAfterSteps > 0 && r.steps >= opt.StopAfterSteps {
				return nil, ErrStopped
			}
		}
		em, err := r.evaluateEpoch(ep)
		if err != nil {
			return nil, err
		}
		r.selectEpoch(em)
		if err := r.logEpoch(em); err != nil {
			return nil, err
		}
		if err := r.checkpointEpoch(epoch); err != nil {
			return nil, err
		}
	}
	return r.testSelected()
}

// runner is one call of Run: what every epoch and step shares.
type runner struct {
	b    core.Backend
	m    Model
	task Task
	cfg  Config
	opt  Options
	ctx  context.Context

	params  []*autograd.Var
	o       optim.Optimizer
	sched   optim.Schedule
	n       int // training examples
	batches int // steps an epoch (batchCount)

	loader *data.Loader // the training split's batches on the backend
	tp     *autograd.Tape
	moves  *movementTracker

	st                    state
	steps                 int // optimizer steps taken, across resumptions
	metricsPath, ckptPath string
}

// newRunner sets up the optimizer and schedule, resumes from the checkpoint if asked
// (before anything reads the weights), and stages the training split if it pays.
func newRunner(b core.Backend, m Model, task Task, cfg Config, opt Options) (*runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{b: b, m: m, task: task, cfg: cfg, opt: opt, ctx: opt.Context,
		params: m.Trainable(), n: task.Train.Len(),
		metricsPath: MetricsPath(opt.Dir), ckptPath: CheckpointPath(opt.Dir)}
	if r.ctx == nil {
		r.ctx = context.Background()
	}
	r.o = newOptimizer(b, r.params, cfg)
	r.batches = batchCount(r.n, cfg.BatchSize)
	r.sched = schedule(cfg, r.batches)
	r.st = state{best: math.Inf(-1), bestLoss: math.Inf(1), sel: cfg.Select, identity: opt.Identity}
	if r.st.identity == nil {
		var err error
		if r.st.identity, err = json.Marshal(map[string]Config{"train": cfg}); err != nil {
			return nil, err
		}
	}
	if opt.Resume {
		if err := loadCheckpoint(r.ckptPath, m, r.o, &r.st, cfg, r.batches); err != nil {
			return nil, err
		}
		if err := truncateMetrics(r.metricsPath, r.st.epoch); err != nil {
			return nil, err
		}
	} else if err := atomicfile.Write(r.metricsPath, nil); err != nil {
		return nil, err
	}
	var err error
	if r.loader, err = data.NewLoader(b, task.Train, opt.Staging, cfg.BatchSize); err != nil {
		return nil, err
	}
	r.tp = autograd.NewTape(b)
	r.steps = r.st.step
	r.moves = newMovementTracker(b, r.params, r.steps)
	return r, nil
}

func (r *runner) release() {
	r.moves.release()
	r.loader.Close()
}

// patienceSpent says whether validation stopped improving for Patience epochs; a run
// resumed from the checkpoint its early stop wrote goes straight to the test.
func (r *runner) patienceSpent() bool {
	return r.cfg.Patience > 0 && r.st.sinceBest >= r.cfg.Patience
}

// epochRun is one epoch in progress.
type epochRun struct {
	epoch   int // 0-based
	batch   int // steps of this epoch done
	start   time.Time
	lossSum float64
	// correct and seen are the running training accuracy Progress shows.
	correct, seen int
	next          <-chan data.Batch
	stop          func()
}

// startEpoch orders the epoch's examples and starts fetching its batches, after the
// ones trained before the checkpoint this run resumed from.
func (r *runner) startEpoch(epoch int) *epochRun {
	ep := &epochRun{epoch: epoch, start: time.Now()}
	order := permutation(r.n, r.cfg.Seed, epoch)
	if epoch == r.st.epoch {
		ep.batch, ep.lossSum = r.st.batch, r.st.epochLoss
	}
	ep.next, ep.stop = r.loader.Epoch(epoch, epochBatches(order, r.cfg.BatchSize, ep.batch))
	return ep
}

// logEpoch appends the epoch to metrics.jsonl and shows it.
func (r *runner) logEpoch(em EpochMetrics) error {
	if err := appendMetrics(r.metricsPath, em); err != nil {
		return err
	}
	if r.opt.Progress != nil {
		r.opt.Progress.Epoch(em)
	}
	return nil
}
