// Package train is kadapt's training loop: one function, Run, reads top to bottom —
// batches, forward, loss, backward, clip, optimizer step, evaluation on validation and
// test every epoch, metrics.jsonl, atomic checkpoints and exact resumption.
package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/optim"
	"github.com/kadapt/kadapt/datasets/metrics"
	"github.com/kadapt/kadapt/host/atomicfile"
	"github.com/kadapt/kadapt/host/jsondiff"
)

// Data is one split of examples ready for the model.
type Data interface {
	Len() int
	// Shape is one example's input shape, e.g. [3, 224, 224] or [512] for cached features.
	Shape() []int
	// Fetch writes the examples idx into x (len(idx)·∏Shape values) and their labels.
	Fetch(idx []int, x []float32, labels [][]int) error
}

// EpochData is Data whose examples are drawn afresh each epoch (random augmentation).
// Run calls SetEpoch before fetching an epoch's batches, so the draws are a function of
// the epoch and a resumed run sees the ones an uninterrupted run would; such a split
// is never staged on the device, which would freeze one draw.
type EpochData interface {
	Data
	SetEpoch(epoch int)
}

// Model is what the loop trains: features from inputs (the adapted backbone, or the
// identity for cached features) followed by the head.
type Model interface {
	Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var
	Head() *Head
	// Trainable lists every parameter the optimizer updates, the head included.
	Trainable() []*autograd.Var
}

// Config holds the optimisation settings of one run.
type Config struct {
	Epochs         int     `koanf:"epochs" json:"epochs"`
	BatchSize      int     `koanf:"batch_size" json:"batch_size"`
	Optimizer      string  `koanf:"optimizer" json:"optimizer"` // sgd | adamw
	LR             float64 `koanf:"lr" json:"lr"`
	WeightDecay    float64 `koanf:"weight_decay" json:"weight_decay"`
	Momentum       float64 `koanf:"momentum" json:"momentum"`
	Nesterov       bool    `koanf:"nesterov" json:"nesterov"`
	Schedule       string  `koanf:"schedule" json:"schedule"` // constant | cosine | step
	WarmupEpochs   int     `koanf:"warmup_epochs" json:"warmup_epochs"`
	StepEvery      int     `koanf:"step_every" json:"step_every"` // epochs, for the step schedule
	StepGamma      float64 `koanf:"step_gamma" json:"step_gamma"`
	ClipGrad       float64 `koanf:"clip_grad" json:"clip_grad"` // 0 = off
	LabelSmoothing float64 `koanf:"label_smoothing" json:"label_smoothing"`
	// Select is how the reported epoch is chosen: "val" (the default: best validation
	// score, test reported at that epoch), "last", or "best-test-epoch" — the paper's
	// released code's choice, which peeks at the test set and is labelled as such.
	Select          string `koanf:"select" json:"select"`
	Patience        int    `koanf:"patience" json:"patience"` // epochs without val improvement before stopping; 0 = off
	Seed            uint64 `koanf:"seed" json:"seed"`
	CheckpointEvery int    `koanf:"checkpoint_every" json:"checkpoint_every"` // epochs; 0 = only the final one
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Epochs <= 0:
		return fmt.Errorf("train.epochs must be positive, got %d", c.Epochs)
	case c.BatchSize <= 0:
		return fmt.Errorf("train.batch_size must be positive, got %d", c.BatchSize)
	case c.LR <= 0:
		return fmt.Errorf("train.lr must be positive, got %g", c.LR)
	case c.Optimizer != "sgd" && c.Optimizer != "adamw":
		return fmt.Errorf("train.optimizer must be sgd or adamw, got %q", c.Optimizer)
	case c.Schedule != "constant" && c.Schedule != "cosine" && c.Schedule != "step":
		return fmt.Errorf("train.schedule must be constant, cosine or step, got %q", c.Schedule)
	case c.Select != "val" && c.Select != "last" && c.Select != "best-test-epoch":
		return fmt.Errorf("train.select must be val, last or best-test-epoch, got %q", c.Select)
	}
	return nil
}

// Task is the data and how to score it.
type Task struct {
	// Val may be nil (selection then falls back to the last epoch); Test may be nil
	// (hyperparameter-search trials, which look at validation scores only).
	Train, Val, Test Data
	Classes          int
	MultiLabel       bool
	Metric           string // a datasets metric name
}

// EpochMetrics is one line of metrics.jsonl.
type EpochMetrics struct {
	Epoch     int     `json:"epoch"`
	Step      int     `json:"step"`
	LR        float64 `json:"lr"`
	TrainLoss float64 `json:"train_loss"`
	Val       float64 `json:"val"`
	ValLoss   float64 `json:"val_loss"`
	Test      float64 `json:"test"`
	Seconds   float64 `json:"seconds"`
	ImagesPS  float64 `json:"images_per_s"`
}

// Result is the outcome of a run.
type Result struct {
	Metric    string         `json:"metric"`
	Score     float64        `json:"score"` // test score at the selected epoch
	Epoch     int            `json:"epoch"` // the selected epoch (1-based)
	Selection string         `json:"selection"`
	Val       float64        `json:"val"`
	History   []EpochMetrics `json:"history"`
	Movement  *Movement      `json:"movement"` // how far each trainable group moved (movement.go); nil if no step ran
}

// Progress receives live updates; the host draws a bar or plain lines from them.
type Progress interface {
	// Step reports a training step: the batch's loss, the epoch's running training
	// accuracy (NaN for multi-label tasks) and throughput.
	Step(epoch, epochs, batch, batches int, loss, accuracy, imagesPerSec float64)
	Epoch(m EpochMetrics)
}

// Options are the run's side channels.
type Options struct {
	Dir      string   // run directory: metrics.jsonl and checkpoint.safetensors live here
	Resume   bool     // continue from Dir's checkpoint
	Progress Progress // may be nil
	// StopAfterSteps ends the run abruptly after this many optimizer steps (0 = off);
	// tests use it to simulate a kill.
	StopAfterSteps int
	// Context stops the run at the next step boundary when it is cancelled (SIGINT or
	// SIGTERM through host/lifecycle): the loop writes a checkpoint of that exact
	// point, mid-epoch included, and returns an error wrapping context.Cause, so Resume
	// continues bit-identically. Nil: never cancelled.
	Context context.Context
	// Staging keeps the training split on the device (see Staging); automatic by
	// default.
	Staging Staging
	// Identity is what the run is, as a JSON object: the host's whole run
	// configuration; nil means {"train": cfg}. Every checkpoint records it, and Resume
	// refuses a checkpoint written under another one, naming the first differing key
	// (an lr edited in config.json between a kill and the resume).
	Identity json.RawMessage
}

// ErrStopped is returned when Options.StopAfterSteps cut the run short.
var ErrStopped = errors.New("train: stopped early on request")

// StoppedError is returned when Options.Context was cancelled: the checkpoint holds
// the run after Batch of Batches steps of epoch Epoch.
type StoppedError struct {
	Epoch, Epochs, Batch, Batches int
	FinalTest                     bool // stopped in the test pass after training
	Cause                         error
}

func (e *StoppedError) Error() string {
	if e.FinalTest {
		return fmt.Sprintf("%v: stopped in the final test pass after epoch %d/%d; checkpoint written", e.Cause, e.Epoch, e.Epochs)
	}
	return fmt.Sprintf("%v: stopped in epoch %d/%d after step %d/%d; checkpoint written", e.Cause, e.Epoch, e.Epochs, e.Batch, e.Batches)
}

func (e *StoppedError) Unwrap() error { return e.Cause }

// ErrDiverged is returned when the training loss stops being finite.
var ErrDiverged = errors.New("train: the loss diverged (NaN or Inf): lower the learning rate or weight decay")

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
	metricsPath := filepath.Join(opt.Dir, "metrics.jsonl")
	ckptPath := filepath.Join(opt.Dir, "checkpoint.safetensors")
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

// fetched is one prefetched batch; done hands its buffers back.
type fetched struct {
	idx    []int
	x      []float32
	labels [][]int
	err    error
	done   func()
}

// batchCount is the number of batches an epoch of n examples trains: a last batch of
// one example is dropped when the epoch has others (BatchNorm needs two; PyTorch's
// drop_last would drop it too). The loss average, the schedule and epochBatches all
// use this one count.
func batchCount(n, batch int) int {
	batches := (n + batch - 1) / batch
	if batches > 1 && n%batch == 1 {
		batches--
	}
	return batches
}

// epochBatches cuts an epoch's order into batchCount batches, leaving out the first
// skip (trained before a mid-epoch checkpoint).
func epochBatches(order []int, batch, skip int) [][]int {
	n := len(order)
	out := make([][]int, batchCount(n, batch))
	for bi := range out {
		out[bi] = order[bi*batch : min((bi+1)*batch, n)]
	}
	return out[min(skip, len(out)):]
}

// prefetchDepth is how many batches are decoded ahead of the step that uses them.
const prefetchDepth = 2

// prefetch fetches an epoch's batches (epochBatches) in order on a goroutine, up to
// prefetchDepth ahead, so decoding overlaps computing. The channel closes after the
// last batch or the first error.
func prefetch(d Data, order []int, batch, per, skip int) (<-chan fetched, func()) {
	out := make(chan fetched, prefetchDepth)
	quit := make(chan struct{})
	free := make(chan int, prefetchDepth+1)
	bufs := make([][]float32, prefetchDepth+1)
	labs := make([][][]int, prefetchDepth+1)
	for i := range bufs {
		bufs[i] = make([]float32, batch*per)
		labs[i] = make([][]int, batch)
		free <- i
	}
	go func() {
		defer close(out)
		for _, idx := range epochBatches(order, batch, skip) {
			var slot int
			select {
			case slot = <-free:
			case <-quit:
				return
			}
			x, l := bufs[slot][:len(idx)*per], labs[slot][:len(idx)]
			err := d.Fetch(idx, x, l)
			select {
			case out <- fetched{idx: idx, x: x, labels: l, err: err, done: func() { free <- slot }}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var once sync.Once
	return out, func() { once.Do(func() { close(quit) }) }
}

// ParamGroups puts biases and 1-D parameters (norm scales) in a group without weight
// decay, the usual practice that keeps decay from shrinking them.
func ParamGroups(params []*autograd.Var, wd float32) []optim.Group {
	decay := optim.Group{Name: "decay", WeightDecay: wd}
	noDecay := optim.Group{Name: "no_decay"}
	for _, p := range params {
		if p.Shape().Size() == p.Shape()[len(p.Shape())-1] && len(p.Shape()) == 1 {
			noDecay.Params = append(noDecay.Params, p)
		} else {
			decay.Params = append(decay.Params, p)
		}
	}
	return []optim.Group{decay, noDecay}
}

func schedule(cfg Config, batches int) optim.Schedule {
	total := cfg.Epochs * batches
	switch cfg.Schedule {
	case "cosine":
		return optim.WarmupCosine{Base: float32(cfg.LR), Warmup: cfg.WarmupEpochs * batches, Total: total}
	case "step":
		every := cfg.StepEvery
		if every <= 0 {
			every = max(cfg.Epochs/3, 1)
		}
		gamma := cfg.StepGamma
		if gamma == 0 {
			gamma = 0.1
		}
		return optim.StepDecay{Base: float32(cfg.LR), Gamma: float32(gamma), Every: every * batches}
	}
	return optim.Constant{Rate: float32(cfg.LR)}
}

// permutation is the epoch's example order, a pure function of (seed, epoch) so a
// resumed run sees exactly the batches an uninterrupted one would.
func permutation(n int, seed uint64, epoch int) []int {
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)+0x9e3779b9))
	return rng.Perm(n)
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
	per := 1
	for _, s := range shape {
		per *= s
	}
	n := d.Len()
	x := make([]float32, batch*per)
	var logits [][]float32
	labels := make([][]int, n)
	for start := 0; start < n; start += batch {
		if ctx.Err() != nil {
			return nil, nil, context.Cause(ctx)
		}
		end := min(start+batch, n)
		idx := make([]int, end-start)
		for i := range idx {
			idx[i] = start + i
		}
		if err := d.Fetch(idx, x[:len(idx)*per], labels[start:end]); err != nil {
			return nil, nil, err
		}
		out := m.Head().Forward(tp, m.Features(tp, tp.Input(x[:len(idx)*per], append([]int{len(idx)}, shape...)...)))
		c := out.Shape()[1]
		flat := make([]float32, len(idx)*c)
		b.Download(flat, out.Value)
		for i := range idx {
			logits = append(logits, flat[i*c:(i+1)*c])
		}
		tp.Reset()
	}
	return logits, labels, nil
}

// state is what a checkpoint carries besides tensors.
type state struct {
	epoch, step int
	// batch is how many steps of epoch+1 are done and epochLoss their summed loss: a
	// checkpoint written on a signal falls mid-epoch.
	batch     int
	epochLoss float64
	best      float64 // best selection score so far
	bestLoss  float64 // its validation loss, the tie-breaker
	sinceBest int
	selected  EpochMetrics
	history   []EpochMetrics
	sel       string
	// bestWeights holds the selected epoch's trainable parameters and BatchNorm
	// statistics, restored before the final test pass.
	bestWeights map[string][]float32
	identity    json.RawMessage // Options.Identity
}

// weightTensors lists what defines the model's function beyond the frozen backbone.
func weightTensors(m Model) map[string]*core.Tensor {
	out := map[string]*core.Tensor{}
	for _, p := range m.Trainable() {
		out["param."+p.Name] = p.Value
	}
	bn := m.Head().BN
	out["buffer.head.bn.running_mean"] = bn.RunningMean
	out["buffer.head.bn.running_var"] = bn.RunningVar
	return out
}

func (s *state) snapshot(m Model) {
	if s.bestWeights == nil {
		s.bestWeights = map[string][]float32{}
	}
	for name, t := range weightTensors(m) {
		d := s.bestWeights[name]
		if len(d) != t.Size() {
			d = make([]float32, t.Size())
		}
		t.Backend().Download(d, t)
		s.bestWeights[name] = d
	}
}

func (s *state) restore(m Model) {
	for name, t := range weightTensors(m) {
		if d, ok := s.bestWeights[name]; ok {
			t.Backend().Upload(t, d)
		}
	}
}

// score is the selection criterion of an epoch: the validation score (ties broken
// by validation loss), the test score for best-test-epoch, or recency.
func (s *state) score(em EpochMetrics) (float64, float64) {
	switch {
	case s.sel == "best-test-epoch":
		return em.Test, 0
	case s.sel == "last" || math.IsNaN(em.Val):
		return float64(em.Epoch), 0
	}
	return em.Val, em.ValLoss
}

func (s *state) improves(em EpochMetrics) bool {
	score, loss := s.score(em)
	return score > s.best || (score == s.best && loss < s.bestLoss)
}

func (s *state) record(em EpochMetrics, sel string) {
	s.sel = sel
	s.history = append(s.history, em)
	if s.improves(em) {
		s.best, s.bestLoss = s.score(em)
		s.selected, s.sinceBest = em, 0
	} else {
		s.sinceBest++
	}
}

func (s *state) result(metric, sel string) *Result {
	if sel == "val" && math.IsNaN(s.selected.Val) {
		sel = "last" // no validation split: say what actually happened
	}
	label := map[string]string{"val": "best validation epoch", "last": "last epoch",
		"best-test-epoch": "best TEST epoch (the paper's released protocol; optimistic, peeks at the test set)"}[sel]
	return &Result{Metric: metric, Score: s.selected.Test, Epoch: s.selected.Epoch, Selection: label,
		Val: s.selected.Val, History: s.history}
}

func appendMetrics(path string, em EpochMetrics) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(jsonSafe(em))
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// jsonSafe writes -1 for a score that was not computed (no validation split, or a
// test pass skipped), since JSON has no NaN.
func jsonSafe(em EpochMetrics) EpochMetrics {
	if math.IsNaN(em.Val) {
		em.Val = -1
	}
	if math.IsNaN(em.ValLoss) {
		em.ValLoss = -1
	}
	if math.IsNaN(em.Test) {
		em.Test = -1
	}
	return em
}

// truncateMetrics keeps the first `epochs` lines: epochs after the checkpoint are
// re-run on resume and must not be reported twice.
func truncateMetrics(path string, epochs int) error {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	keep, lines := 0, 0
	for i, c := range data {
		if c == '\n' {
			lines++
			if lines == epochs {
				keep = i + 1
				break
			}
		}
	}
	if lines < epochs {
		return fmt.Errorf("%s: %d lines but the checkpoint is at epoch %d", path, lines, epochs)
	}
	return atomicfile.Write(path, data[:keep])
}

// checkpoint layout: every trainable parameter under its name, BatchNorm running
// statistics, the optimizer's state under "optim.", and the loop state in metadata.
func saveCheckpoint(path string, m Model, o optim.Optimizer, st *state) error {
	tensors := map[string]safetensors.Tensor{}
	put := func(name string, t *core.Tensor) {
		d := make([]float32, t.Size())
		t.Backend().Download(d, t)
		tensors[name] = safetensors.Tensor{Shape: append([]int(nil), t.Shape()...), Data: d}
	}
	for _, p := range m.Trainable() {
		put("param."+p.Name, p.Value)
	}
	bn := m.Head().BN
	put("buffer.head.bn.running_mean", bn.RunningMean)
	put("buffer.head.bn.running_var", bn.RunningVar)
	ot, ometa := o.StateDict()
	for k, t := range ot {
		put("optim."+k, t)
	}
	for name, d := range st.bestWeights {
		tensors["best."+name] = safetensors.Tensor{Shape: []int{len(d)}, Data: d}
	}
	meta := map[string]string{}
	for k, v := range ometa {
		meta["optim."+k] = v
	}
	hist, _ := json.Marshal(historyJSON(st.history))
	sel, _ := json.Marshal(jsonSafe(st.selected))
	meta["epoch"] = strconv.Itoa(st.epoch)
	meta["step"] = strconv.Itoa(st.step)
	meta["batch"] = strconv.Itoa(st.batch)
	meta["epoch_loss"] = strconv.FormatFloat(st.epochLoss, 'g', -1, 64)
	meta["best"] = strconv.FormatFloat(st.best, 'g', -1, 64)
	meta["best_loss"] = strconv.FormatFloat(st.bestLoss, 'g', -1, 64)
	meta["since_best"] = strconv.Itoa(st.sinceBest)
	meta["history"] = string(hist)
	meta["selected"] = string(sel)
	meta["config"] = string(st.identity)
	meta[checksumKey] = checkpointDigest(tensors, meta)
	return safetensors.WriteFile(path, tensors, meta)
}

// checksumKey is the metadata entry holding checkpointDigest.
const checksumKey = "sha256"

// checkpointDigest is the SHA-256 of everything a checkpoint holds except the digest
// itself: each tensor's name, shape and float32 bits in name order, then each metadata
// key and value in key order, every field length-prefixed. A flipped byte anywhere is
// found before anything is loaded.
func checkpointDigest(tensors map[string]safetensors.Tensor, meta map[string]string) string {
	h := sha256.New()
	buf := make([]byte, 0, 1<<16)
	flush := func() { h.Write(buf); buf = buf[:0] }
	field := func(s string) {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(s)))
		buf = append(buf, s...)
		flush()
	}
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := tensors[n]
		field(n)
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(t.Shape)))
		for _, d := range t.Shape {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(d))
		}
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(t.Data)))
		for _, v := range t.Data {
			if len(buf)+4 > cap(buf) {
				flush()
			}
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		flush()
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		if k != checksumKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		field(k)
		field(meta[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func historyJSON(h []EpochMetrics) []EpochMetrics {
	out := make([]EpochMetrics, len(h))
	for i, e := range h {
		out[i] = jsonSafe(e)
	}
	return out
}

// loadCheckpoint verifies the checkpoint at path — its digest, that it was written
// under the same Identity, that its loop state is one this run can reach — and only
// then loads it into m, o and st. batches is the number of steps an epoch.
func loadCheckpoint(path string, m Model, o optim.Optimizer, st *state, cfg Config, batches int) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	tensors := map[string]safetensors.Tensor{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		d, err := f.Float32s(n)
		if err != nil {
			return fmt.Errorf("resume: %s: %w", path, err)
		}
		tensors[n] = safetensors.Tensor{Shape: info.Shape, Data: d}
	}
	meta := f.Metadata()
	sum, ok := meta[checksumKey]
	if !ok {
		return fmt.Errorf("resume: %s has no checksum (written by a kadapt before checkpoints had one, or not a kadapt checkpoint): it cannot be verified", path)
	}
	if got := checkpointDigest(tensors, meta); got != sum {
		return fmt.Errorf("resume: %s is corrupt: its contents hash to SHA-256 %s, but it was written with %s", path, got, sum)
	}
	key, was, now, differ, err := jsondiff.First([]byte(meta["config"]), st.identity)
	if err != nil {
		return fmt.Errorf("resume: %s: metadata \"config\": %v", path, err)
	}
	if differ {
		return fmt.Errorf("resume: %s was written with %s = %s, but the run's configuration now says %s: a run's configuration cannot change between a stop and its resumption (start a new run instead)", path, key, was, now)
	}
	loaded := state{sel: st.sel, identity: st.identity}
	if err := loaded.parseMeta(meta); err != nil {
		return fmt.Errorf("resume: %s: %w", path, err)
	}
	if err := loaded.check(cfg, batches); err != nil {
		return fmt.Errorf("resume: %s: %w", path, err)
	}
	get := func(name string, size int) ([]float32, error) {
		t, ok := tensors[name]
		if !ok {
			return nil, fmt.Errorf("resume: %s: no tensor %q", path, name)
		}
		if len(t.Data) != size {
			return nil, fmt.Errorf("resume: %s: tensor %q has %d values, the model wants %d", path, name, len(t.Data), size)
		}
		return t.Data, nil
	}
	weights := weightTensors(m)
	for name, t := range weights {
		if _, err := get(name, t.Size()); err != nil {
			return err
		}
	}
	ostate := map[string][]float32{}
	ometa := map[string]string{}
	loaded.bestWeights = map[string][]float32{}
	for n, t := range tensors {
		switch {
		case strings.HasPrefix(n, "optim."):
			ostate[n[len("optim."):]] = t.Data
		case strings.HasPrefix(n, "best."):
			w, ok := weights[n[len("best."):]]
			if !ok || w.Size() != len(t.Data) {
				return fmt.Errorf("resume: %s: tensor %q matches no weight of the model", path, n)
			}
			loaded.bestWeights[n[len("best."):]] = t.Data
		}
	}
	for k, v := range meta {
		if strings.HasPrefix(k, "optim.") {
			ometa[k[len("optim."):]] = v
		}
	}
	if err := o.LoadStateDict(ostate, ometa); err != nil {
		return fmt.Errorf("resume: %s: %w", path, err)
	}
	for name, t := range weights {
		d, _ := get(name, t.Size())
		t.Backend().Upload(t, d)
	}
	*st = loaded
	return nil
}

// parseMeta reads the loop state from a checkpoint's metadata.
func (s *state) parseMeta(meta map[string]string) error {
	ints := map[string]*int{"epoch": &s.epoch, "step": &s.step, "since_best": &s.sinceBest, "batch": &s.batch}
	for _, k := range []string{"epoch", "step", "since_best", "batch"} {
		v, err := strconv.Atoi(meta[k])
		if err != nil {
			return fmt.Errorf("metadata %q: %v", k, err)
		}
		*ints[k] = v
	}
	floats := map[string]*float64{"best": &s.best, "best_loss": &s.bestLoss, "epoch_loss": &s.epochLoss}
	for _, k := range []string{"best", "best_loss", "epoch_loss"} {
		v, err := strconv.ParseFloat(meta[k], 64)
		if err != nil {
			return fmt.Errorf("metadata %q: %v", k, err)
		}
		*floats[k] = v
	}
	if err := json.Unmarshal([]byte(meta["history"]), &s.history); err != nil {
		return fmt.Errorf("metadata \"history\": %v", err)
	}
	if err := json.Unmarshal([]byte(meta["selected"]), &s.selected); err != nil {
		return fmt.Errorf("metadata \"selected\": %v", err)
	}
	return nil
}

// check refuses loop states that no run under cfg reaches: the checksum shows a
// checkpoint is as written, this shows it was written by this loop.
func (s *state) check(cfg Config, batches int) error {
	switch {
	case s.epoch < 0 || s.epoch > cfg.Epochs:
		return fmt.Errorf("metadata \"epoch\" = %d is outside 0..%d (train.epochs)", s.epoch, cfg.Epochs)
	case s.batch < 0 || s.batch > batches || (s.batch > 0 && s.epoch == cfg.Epochs):
		return fmt.Errorf("metadata \"batch\" = %d is not a step of epoch %d (%d steps an epoch)", s.batch, s.epoch+1, batches)
	case s.step != s.epoch*batches+s.batch:
		return fmt.Errorf("metadata \"step\" = %d, but epoch %d and batch %d make %d at %d steps an epoch", s.step, s.epoch, s.batch, s.epoch*batches+s.batch, batches)
	case len(s.history) != s.epoch:
		return fmt.Errorf("metadata \"history\" has %d epochs, the checkpoint is at epoch %d", len(s.history), s.epoch)
	case s.sinceBest < 0 || s.sinceBest > s.epoch:
		return fmt.Errorf("metadata \"since_best\" = %d is outside 0..%d", s.sinceBest, s.epoch)
	case math.IsNaN(s.epochLoss) || math.IsInf(s.epochLoss, 0) || s.epochLoss < 0 || (s.batch == 0 && s.epochLoss != 0):
		return fmt.Errorf("metadata \"epoch_loss\" = %v is not the summed loss of %d steps", s.epochLoss, s.batch)
	}
	for i, em := range s.history {
		if em.Epoch != i+1 || em.Step != (i+1)*batches {
			return fmt.Errorf("metadata \"history\": entry %d is epoch %d at step %d, want epoch %d at step %d", i, em.Epoch, em.Step, i+1, (i+1)*batches)
		}
	}
	if s.epoch == 0 {
		if !math.IsInf(s.best, -1) {
			return fmt.Errorf("metadata \"best\" = %v before any epoch ended", s.best)
		}
		return nil
	}
	if math.IsNaN(s.best) || math.IsInf(s.best, 0) {
		return fmt.Errorf("metadata \"best\" = %v is not a finite score", s.best)
	}
	if math.IsNaN(s.bestLoss) {
		return fmt.Errorf("metadata \"best_loss\" is NaN")
	}
	if s.selected.Epoch < 1 || s.selected.Epoch > s.epoch {
		return fmt.Errorf("metadata \"selected\": epoch %d is outside 1..%d", s.selected.Epoch, s.epoch)
	}
	return nil
}
