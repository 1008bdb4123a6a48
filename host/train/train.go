// Package train is kadapt's training loop: Run (loop.go) reads top to bottom — for
// each epoch, for each batch, step (step.go); evaluate on validation and test
// (evaluate.go); select the reported epoch (select.go); append metrics.jsonl
// (metrics.go); write an atomic checkpoint that resumes bit-identically
// (checkpoint.go). Which examples form each batch is cut in batches.go; the
// examples themselves arrive as inputs on the backend from package host/data.
package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/host/data"
)

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

// The words Optimizer, Schedule and Select take; Validate accepts only these, and the
// host's flag help lists them from here.
var (
	Optimizers = []string{"sgd", "adamw"}
	Schedules  = []string{"constant", "cosine", "step"}
	Selections = []string{"val", "last", "best-test-epoch"}
)

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Epochs <= 0:
		return fmt.Errorf("train.epochs must be positive, got %d", c.Epochs)
	case c.BatchSize < 2:
		// The head's BatchNorm trains on batch statistics: one image has none.
		return fmt.Errorf("train.batch_size must be at least 2, got %d", c.BatchSize)
	case c.LR <= 0:
		return fmt.Errorf("train.lr must be positive, got %g", c.LR)
	case !slices.Contains(Optimizers, c.Optimizer):
		return fmt.Errorf("train.optimizer must be one of %s, got %q", strings.Join(Optimizers, ", "), c.Optimizer)
	case !slices.Contains(Schedules, c.Schedule):
		return fmt.Errorf("train.schedule must be one of %s, got %q", strings.Join(Schedules, ", "), c.Schedule)
	case !slices.Contains(Selections, c.Select):
		return fmt.Errorf("train.select must be one of %s, got %q", strings.Join(Selections, ", "), c.Select)
	}
	return nil
}

// Task is the data and how to score it.
type Task struct {
	// Val may be nil (selection then falls back to the last epoch); Test may be nil
	// (hyperparameter-search trials, which look at validation scores only).
	Train, Val, Test data.Split
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

// PassProgress is a Progress that also follows evaluation passes, which take tens of
// seconds on a full test split.
type PassProgress interface {
	Progress
	// Pass reports an evaluation pass over split ("val" or "test"): done of total
	// examples scored.
	Pass(split string, done, total int)
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
	// Staging keeps the training split on the device (see data.Staging); automatic by
	// default.
	Staging data.Staging
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
