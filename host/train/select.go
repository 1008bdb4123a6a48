package train

import (
	"encoding/json"
	"math"

	"github.com/kadapt/kadapt/core"
)

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

// selectEpoch keeps the epoch's weights aside if it is the best so far and marks the
// epoch done.
func (r *runner) selectEpoch(em EpochMetrics) {
	if r.st.improves(em) {
		r.st.snapshot(r.m)
	}
	r.st.record(em, r.cfg.Select)
	r.st.epoch, r.st.step, r.st.batch, r.st.epochLoss = em.Epoch, r.steps, 0, 0
}

// setSelectedTest fills in the test score of the selected epoch, scored after training.
func (s *state) setSelectedTest(test float64) {
	s.selected.Test = test
	for i := range s.history {
		if s.history[i].Epoch == s.selected.Epoch {
			s.history[i].Test = test
		}
	}
}
