package train

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core/backend/cpu"
)

// passRecorder is a PassProgress that writes down what it is told.
type passRecorder struct{ events []string }

func (p *passRecorder) Step(epoch, _, batch, batches int, _, _, _ float64) {
	if batch == batches {
		p.events = append(p.events, fmt.Sprintf("steps of epoch %d", epoch))
	}
}
func (p *passRecorder) Epoch(em EpochMetrics) {
	p.events = append(p.events, fmt.Sprintf("epoch %d", em.Epoch))
}
func (p *passRecorder) Pass(split string, done, total int) {
	p.events = append(p.events, fmt.Sprintf("%s %d/%d", split, done, total))
}

// TestPassProgressFollowsEvaluation: a Progress that follows passes hears of every
// chunk of each epoch's validation pass and of the final test pass, in order, with
// counts that end at the split's size — the final test pass over a full test split is
// the run's longest silent stretch otherwise.
func TestPassProgressFollowsEvaluation(t *testing.T) {
	b := cpu.New()
	cfg := testConfig()
	cfg.Epochs = 2
	rec := &passRecorder{}
	if _, err := Run(b, newMLP(b, 4, 16, 3, 1), testTask(), cfg, Options{Dir: t.TempDir(), Progress: rec}); err != nil {
		t.Fatal(err)
	}
	// Batches of 16: validation has 30 examples, the test split 60.
	want := "steps of epoch 1, val 16/30, val 30/30, epoch 1, " +
		"steps of epoch 2, val 16/30, val 30/30, epoch 2, " +
		"test 16/60, test 32/60, test 48/60, test 60/60"
	if got := strings.Join(rec.events, ", "); got != want {
		t.Fatalf("progress heard\n  %s\nwant\n  %s", got, want)
	}
}
