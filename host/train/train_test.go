package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/backbones/safetensors"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
	"github.com/kadapt/kadapt/host/data"
)

// mlp is a tiny model: a trainable linear feature layer with dropout, then the head.
type mlp struct {
	w, bias *autograd.Var
	head    *Head
}

func newMLP(b core.Backend, in, hidden, classes int, seed uint64) *mlp {
	m := &mlp{w: autograd.NewParam(b, "feat.weight", core.Shape{hidden, in}), bias: autograd.NewParam(b, "feat.bias", core.Shape{hidden}),
		head: NewHead(b, hidden, classes)}
	rng := rand.New(rand.NewPCG(seed, 1))
	w := make([]float32, hidden*in)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.5)
	}
	b.Upload(m.w.Value, w)
	m.head.InitRandom(seed)
	return m
}

func (m *mlp) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.Dropout(tp.ReLU(tp.Linear(x, m.w, m.bias)), 0.1)
}
func (m *mlp) Head() *Head                { return m.head }
func (m *mlp) Trainable() []*autograd.Var { return []*autograd.Var{m.w, m.bias, m.head.W, m.head.B} }

// blobs makes a separable 3-class problem in 4 dimensions.
func blobs(n int, seed uint64) *data.Mem {
	rng := rand.New(rand.NewPCG(seed, 2))
	d := &data.Mem{ExShape: []int{4}}
	for i := 0; i < n; i++ {
		c := i % 3
		for j := 0; j < 4; j++ {
			center := 0.0
			if j == c {
				center = 2
			}
			d.X = append(d.X, float32(center+rng.NormFloat64()*0.7))
		}
		d.Labels = append(d.Labels, []int{c})
	}
	return d
}

func testTask() Task {
	return Task{Train: blobs(90, 1), Val: blobs(30, 2), Test: blobs(60, 3), Classes: 3, Metric: "accuracy"}
}

func testConfig() Config {
	return Config{Epochs: 6, BatchSize: 16, Optimizer: "sgd", LR: 0.05, Momentum: 0.9, WeightDecay: 1e-3,
		Schedule: "cosine", WarmupEpochs: 1, ClipGrad: 5, Select: "val", Seed: 7, CheckpointEvery: 1}
}

func params(m Model) [][]float32 {
	var out [][]float32
	for _, p := range m.Trainable() {
		d := make([]float32, p.Value.Size())
		p.Value.Backend().Download(d, p.Value)
		out = append(out, d)
	}
	return out
}

// checkResumed asserts that a resumed run ended bit-identical to the uninterrupted one:
// the selected score and epoch, every epoch's metrics, every trainable parameter, and
// each epoch written to the run directory's metrics.jsonl once (six epochs).
func checkResumed(t *testing.T, label string, got, want *Result, resumed, full Model, dir string) {
	t.Helper()
	if got.Score != want.Score || got.Epoch != want.Epoch || len(got.History) != len(want.History) {
		t.Fatalf("%s: score %v epoch %d (%d epochs), want %v epoch %d (%d epochs)",
			label, got.Score, got.Epoch, len(got.History), want.Score, want.Epoch, len(want.History))
	}
	for i := range want.History {
		g, w := jsonSafe(got.History[i]), jsonSafe(want.History[i])
		if g.TrainLoss != w.TrainLoss || g.Val != w.Val || g.ValLoss != w.ValLoss || g.Test != w.Test || g.Step != w.Step {
			t.Fatalf("%s: epoch %d metrics %+v, want %+v", label, i+1, g, w)
		}
	}
	pw, pg := params(full), params(resumed)
	for i := range pw {
		for j := range pw[i] {
			if pw[i][j] != pg[i][j] {
				t.Fatalf("%s: parameter %d[%d] = %v, want %v", label, i, j, pg[i][j], pw[i][j])
			}
		}
	}
	lines, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if n := strings.Count(string(lines), "\n"); n != 6 {
		t.Fatalf("%s: metrics.jsonl has %d lines, want 6", label, n)
	}
}

func TestTrainingLearns(t *testing.T) {
	b := cpu.New()
	m := newMLP(b, 4, 16, 3, 1)
	res, err := Run(b, m, testTask(), testConfig(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// Three well-separated Gaussian blobs: a trained classifier is far above the 1/3
	// chance level (Bayes accuracy is about 0.97 at this spread).
	if res.Score < 0.85 {
		t.Fatalf("test accuracy %.3f after training, want >= 0.85", res.Score)
	}
	if !strings.Contains(res.Selection, "validation") {
		t.Errorf("selection %q does not say it used validation", res.Selection)
	}
}

// TestResumeMatchesUninterrupted kills a run mid-epoch (as kill -9 would: nothing after
// the last checkpoint survives) and checks the resumed run ends bit-identical to an
// uninterrupted one.
func TestResumeMatchesUninterrupted(t *testing.T) {
	b := cpu.New()
	full := newMLP(b, 4, 16, 3, 1)
	want, err := Run(b, full, testTask(), testConfig(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, stopAt := range []int{3, 14, 25} { // mid-epoch 1, mid-epoch 3, mid-epoch 5
		dir := t.TempDir()
		m := newMLP(b, 4, 16, 3, 1)
		_, err := Run(b, m, testTask(), testConfig(), Options{Dir: dir, StopAfterSteps: stopAt})
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("stop at %d: %v", stopAt, err)
		}
		resumeFrom := m
		if stopAt > 6 {
			// A fresh process: new, differently initialised weights that the checkpoint
			// must overwrite completely.
			resumeFrom = newMLP(b, 4, 16, 3, 99)
		} else {
			// Killed before the first checkpoint: there is nothing to resume.
			if _, err := os.Stat(filepath.Join(dir, "checkpoint.safetensors")); err == nil {
				t.Fatalf("stop at %d: a checkpoint exists before the first epoch ended", stopAt)
			}
			continue
		}
		got, err := Run(b, resumeFrom, testTask(), testConfig(), Options{Dir: dir, Resume: true})
		if err != nil {
			t.Fatalf("resume after %d steps: %v", stopAt, err)
		}
		checkResumed(t, fmt.Sprintf("resume after %d steps", stopAt), got, want, resumeFrom, full, dir)
	}
}

func TestSelectionModes(t *testing.T) {
	h := []EpochMetrics{{Epoch: 1, Val: 0.5, Test: 0.6}, {Epoch: 2, Val: 0.7, Test: 0.5}, {Epoch: 3, Val: 0.7, Test: 0.9}, {Epoch: 4, Val: 0.6, Test: 0.4}}
	for _, tc := range []struct {
		sel   string
		epoch int
		score float64
	}{{"val", 2, 0.5}, {"best-test-epoch", 3, 0.9}, {"last", 4, 0.4}} {
		st := state{best: math.Inf(-1), bestLoss: math.Inf(1), sel: tc.sel}
		for _, em := range h {
			st.record(em, tc.sel)
		}
		r := st.result("accuracy", tc.sel)
		if r.Epoch != tc.epoch || r.Score != tc.score {
			t.Errorf("%s: epoch %d score %v, want epoch %d score %v", tc.sel, r.Epoch, r.Score, tc.epoch, tc.score)
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	c := testConfig()
	c.Optimizer = "adam"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "train.optimizer") {
		t.Fatalf("bad optimizer: %v", err)
	}
}

// TestStagingMatchesHostBatches trains once with the training split staged on the
// backend and batches gathered there, once with batches copied from the host: the
// runs must be identical.
func TestStagingMatchesHostBatches(t *testing.T) {
	run := func(s data.Staging) (*Result, [][]float32) {
		b := cpu.New()
		m := newMLP(b, 4, 16, 3, 1)
		res, err := Run(b, m, testTask(), testConfig(), Options{Dir: t.TempDir(), Staging: s})
		if err != nil {
			t.Fatal(err)
		}
		return res, params(m)
	}
	want, wantP := run(data.StageOff)
	got, gotP := run(data.StageOn)
	for i := range want.History {
		w, g := want.History[i], got.History[i]
		if g.TrainLoss != w.TrainLoss || g.Val != w.Val || g.ValLoss != w.ValLoss {
			t.Fatalf("epoch %d: staged %+v, host %+v", i+1, g, w)
		}
	}
	if got.Score != want.Score {
		t.Fatalf("staged score %v, host %v", got.Score, want.Score)
	}
	for i := range wantP {
		for j := range wantP[i] {
			if gotP[i][j] != wantP[i][j] {
				t.Fatalf("parameter %d[%d]: staged %v, host %v", i, j, gotP[i][j], wantP[i][j])
			}
		}
	}
}

// frozenProbe is a head on raw inputs whose loss cannot move: the head starts at zero
// and the learning rate is negligible, so every batch's cross-entropy is ln(classes).
type frozenProbe struct{ head *Head }

func (m *frozenProbe) Features(_ *autograd.Tape, x *autograd.Var) *autograd.Var { return x }
func (m *frozenProbe) Head() *Head                                              { return m.head }
func (m *frozenProbe) Trainable() []*autograd.Var                               { return m.head.Params() }

// TestTrainLossAveragesTheBatchesTrained uses n % batch == 1: the one-example last
// batch is dropped, and the epoch's loss must be the mean over the batches that ran.
func TestTrainLossAveragesTheBatchesTrained(t *testing.T) {
	b := cpu.New()
	m := &frozenProbe{head: NewHead(b, 4, 3)}
	cfg := Config{Epochs: 2, BatchSize: 16, Optimizer: "sgd", LR: 1e-30, Schedule: "constant", Select: "last", Seed: 1}
	task := Task{Train: blobs(33, 1), Classes: 3, Metric: "accuracy"}
	res, err := Run(b, m, task, cfg, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, em := range res.History {
		if math.Abs(em.TrainLoss-math.Log(3)) > 1e-6 {
			t.Errorf("epoch %d: train loss %.6f, want ln 3 = %.6f (the mean over the 2 batches trained)", em.Epoch, em.TrainLoss, math.Log(3))
		}
		if em.Step != 2*em.Epoch {
			t.Errorf("epoch %d: step %d, want %d (2 batches an epoch)", em.Epoch, em.Step, 2*em.Epoch)
		}
	}
}

// epochLog is training data that records which epochs Run announced and adds the
// epoch to every value, so the batches show which draw they came from.
type epochLog struct {
	*data.Mem
	epochs  []int
	epoch   int
	fetched map[int]bool // epochs whose draw was fetched
}

func (d *epochLog) SetEpoch(e int) { d.epoch, d.epochs = e, append(d.epochs, e) }
func (d *epochLog) Fetch(idx []int, x []float32, labels [][]int) error {
	if err := d.Mem.Fetch(idx, x, labels); err != nil {
		return err
	}
	d.fetched[d.epoch] = true
	for i := range x[:len(idx)*4] {
		x[i] += float32(d.epoch)
	}
	return nil
}

// Run tells redrawn training data each epoch before its batches, also after a resume,
// and never stages it (a staged copy would freeze the first draw).
func TestEpochDataIsToldTheEpoch(t *testing.T) {
	b := cpu.New()
	dir := t.TempDir()
	cfg := testConfig()
	task := testTask()
	d := &epochLog{Mem: task.Train.(*data.Mem), fetched: map[int]bool{}}
	task.Train = d
	if _, err := Run(b, newMLP(b, 4, 16, 3, 1), task, cfg, Options{Dir: dir, StopAfterSteps: 3*6 + 2, Staging: data.StageOn}); !errors.Is(err, ErrStopped) {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := Run(b, newMLP(b, 4, 16, 3, 1), task, cfg, Options{Dir: dir, Resume: true, Staging: data.StageOn}); err != nil {
		t.Fatal(err)
	}
	// 90 examples in batches of 16: 6 steps an epoch, so the first run stopped in
	// epoch 4 (index 3) and the resumed one redid it from the epoch-3 checkpoint.
	want := []int{0, 1, 2, 3, 3, 4, 5}
	if len(d.epochs) != len(want) {
		t.Fatalf("SetEpoch calls %v, want %v", d.epochs, want)
	}
	for i := range want {
		if d.epochs[i] != want[i] {
			t.Fatalf("SetEpoch calls %v, want %v", d.epochs, want)
		}
	}
	for e := range 6 {
		if !d.fetched[e] {
			t.Errorf("epoch %d's draw was never fetched (staged once instead?)", e)
		}
	}
}

// cancelAfter cancels a context once the loop reports its n-th step (as a signal
// arriving during that step would), or once it reports epoch `epoch` as done.
type cancelAfter struct {
	n, seen, epoch int
	cancel         context.CancelCauseFunc
	cause          error
}

func (c *cancelAfter) Step(int, int, int, int, float64, float64, float64) {
	if c.seen++; c.seen == c.n {
		c.cancel(c.cause)
	}
}
func (c *cancelAfter) Epoch(em EpochMetrics) {
	if em.Epoch == c.epoch {
		c.cancel(c.cause)
	}
}

// TestContextStopCheckpointsMidEpoch stops runs through Options.Context — before the
// first step, at step boundaries inside epochs, in an epoch's validation pass, in the
// final test pass — and checks that each wrote a checkpoint of that exact point: the
// resumed run, in a fresh model, ends bit-identical to an uninterrupted one, with every
// epoch in metrics.jsonl once.
func TestContextStopCheckpointsMidEpoch(t *testing.T) {
	b := cpu.New()
	full := newMLP(b, 4, 16, 3, 1)
	want, err := Run(b, full, testTask(), testConfig(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cause := errors.New("interrupted by a test")
	// 6 steps an epoch. A stop after the 6th step falls in epoch 1's validation pass;
	// epoch 0 means "after epoch 6 was reported", in the final test pass.
	for _, tc := range []struct{ stopAt, epoch, wantEpoch, wantBatch int }{
		{0, 0, 1, 0}, {3, 0, 1, 3}, {6, 0, 1, 6}, {14, 0, 3, 2}, {29, 0, 5, 5}, {0, 6, 6, 6},
	} {
		stopAt := tc.stopAt
		for _, staging := range []data.Staging{data.StageOff, data.StageOn} {
			dir := t.TempDir()
			ctx, cancel := context.WithCancelCause(context.Background())
			if stopAt == 0 && tc.epoch == 0 {
				cancel(cause)
			}
			m := newMLP(b, 4, 16, 3, 1)
			_, err := Run(b, m, testTask(), testConfig(), Options{Dir: dir, Context: ctx, Staging: staging,
				Progress: &cancelAfter{n: stopAt, epoch: tc.epoch, cancel: cancel, cause: cause}})
			var stopped *StoppedError
			if !errors.Is(err, cause) || !errors.As(err, &stopped) {
				t.Fatalf("stop at %+v: error %v, want a StoppedError caused by the cancellation", tc, err)
			}
			if stopped.Epoch != tc.wantEpoch || stopped.Batch != tc.wantBatch || stopped.FinalTest != (tc.epoch > 0) {
				t.Errorf("stop at %+v: stopped in epoch %d after step %d (final test %v)", tc, stopped.Epoch, stopped.Batch, stopped.FinalTest)
			}
			resumed := newMLP(b, 4, 16, 3, 99)
			got, err := Run(b, resumed, testTask(), testConfig(), Options{Dir: dir, Resume: true, Staging: staging})
			if err != nil {
				t.Fatalf("resume after %d steps: %v", stopAt, err)
			}
			checkResumed(t, fmt.Sprintf("resume after %d steps", stopAt), got, want, resumed, full, dir)
		}
	}
}

// TestResumeAfterEarlyStop stops a run in its final test pass after patience ended
// training: the resumed run must go straight to the test, not train on.
func TestResumeAfterEarlyStop(t *testing.T) {
	b := cpu.New()
	cfg := testConfig()
	cfg.LR, cfg.Patience = 1e-30, 1 // the weights stay put: validation soon stops improving
	want, err := Run(b, newMLP(b, 4, 16, 3, 1), testTask(), cfg, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	last := len(want.History)
	if last >= cfg.Epochs {
		t.Fatalf("the uninterrupted run trained all %d epochs: patience never stopped it", last)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("interrupted by a test")
	_, err = Run(b, newMLP(b, 4, 16, 3, 1), testTask(), cfg, Options{Dir: dir, Context: ctx,
		Progress: &cancelAfter{epoch: last, cancel: cancel, cause: cause}})
	var stopped *StoppedError
	if !errors.As(err, &stopped) || !stopped.FinalTest {
		t.Fatalf("error %v, want a stop in the final test pass", err)
	}
	got, err := Run(b, newMLP(b, 4, 16, 3, 99), testTask(), cfg, Options{Dir: dir, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.History) != last || got.Score != want.Score || got.Epoch != want.Epoch {
		t.Fatalf("resumed: %d epochs, score %v at epoch %d; want %d epochs, %v at epoch %d", len(got.History), got.Score, got.Epoch, last, want.Score, want.Epoch)
	}
}

// rewriteCheckpoint edits a checkpoint's metadata with edit and writes it back. With
// reseal its digest is recomputed, as a forger (or a bug) consistent with itself would.
func rewriteCheckpoint(t *testing.T, path string, reseal bool, edit func(meta map[string]string)) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tensors := map[string]safetensors.Tensor{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		d, err := f.Float32s(n)
		if err != nil {
			t.Fatal(err)
		}
		tensors[n] = safetensors.Tensor{Shape: info.Shape, Data: d}
	}
	meta := f.Metadata()
	f.Close()
	edit(meta)
	if reseal {
		meta[checksumKey] = checkpointDigest(tensors, meta)
	}
	if err := safetensors.WriteFile(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
}

// TestResumeVerifiesTheCheckpoint damages a run's checkpoint in the ways a disk, a
// copy or a hand can, and checks that each resume is refused with the cause named,
// before anything is loaded or metrics.jsonl is touched; the undamaged checkpoint
// still resumes.
func TestResumeVerifiesTheCheckpoint(t *testing.T) {
	b := cpu.New()
	base := t.TempDir()
	if _, err := Run(b, newMLP(b, 4, 16, 3, 1), testTask(), testConfig(), Options{Dir: base, StopAfterSteps: 20}); !errors.Is(err, ErrStopped) {
		t.Fatal(err)
	}
	ckpt, err := os.ReadFile(filepath.Join(base, "checkpoint.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := os.ReadFile(filepath.Join(base, "metrics.jsonl"))
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		cfg    func(c *Config)
		want   string
	}{
		{name: "a flipped byte in a tensor", want: "is corrupt", damage: func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			data[len(data)-5] ^= 0x10
			os.WriteFile(path, data, 0o644)
		}},
		{name: "an edited epoch", want: "is corrupt", damage: func(t *testing.T, path string) {
			rewriteCheckpoint(t, path, false, func(m map[string]string) { m["epoch"] = "-5" })
		}},
		{name: "no checksum", want: "has no checksum", damage: func(t *testing.T, path string) {
			rewriteCheckpoint(t, path, false, func(m map[string]string) { delete(m, checksumKey) })
		}},
		{name: "a resealed negative epoch", want: `"epoch" = -5`, damage: func(t *testing.T, path string) {
			rewriteCheckpoint(t, path, true, func(m map[string]string) { m["epoch"] = "-5" })
		}},
		{name: "a resealed NaN best score", want: `"best" = NaN`, damage: func(t *testing.T, path string) {
			rewriteCheckpoint(t, path, true, func(m map[string]string) { m["best"] = "NaN" })
		}},
		{name: "a resealed step count", want: `"step" = 7`, damage: func(t *testing.T, path string) {
			rewriteCheckpoint(t, path, true, func(m map[string]string) { m["step"] = "7" })
		}},
		{name: "an edited learning rate", want: "train.lr = 0.05", cfg: func(c *Config) { c.LR = 0.5 }},
		{name: "more epochs", want: "train.epochs = 6", cfg: func(c *Config) { c.Epochs = 60 }},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "checkpoint.safetensors"), ckpt, 0o644)
		os.WriteFile(filepath.Join(dir, "metrics.jsonl"), metrics, 0o644)
		if tc.damage != nil {
			tc.damage(t, filepath.Join(dir, "checkpoint.safetensors"))
		}
		cfg := testConfig()
		if tc.cfg != nil {
			tc.cfg(&cfg)
		}
		m := newMLP(b, 4, 16, 3, 99)
		before := params(m)
		_, err := Run(b, m, testTask(), cfg, Options{Dir: dir, Resume: true})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "checkpoint.safetensors") {
			t.Errorf("%s: resume gave %v; want an error naming the checkpoint and saying %q", tc.name, err, tc.want)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl")); string(got) != string(metrics) {
			t.Errorf("%s: the refused resume changed metrics.jsonl", tc.name)
		}
		for i, p := range params(m) {
			for j := range p {
				if p[j] != before[i][j] {
					t.Fatalf("%s: the refused resume loaded weights", tc.name)
				}
			}
		}
	}
	if _, err := Run(b, newMLP(b, 4, 16, 3, 99), testTask(), testConfig(), Options{Dir: base, Resume: true}); err != nil {
		t.Fatalf("the undamaged checkpoint: %v", err)
	}
}
