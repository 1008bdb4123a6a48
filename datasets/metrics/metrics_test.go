package metrics

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

func TestAccuracy(t *testing.T) {
	tests := []struct {
		pred, labels []int
		want         float64
	}{
		{[]int{0, 1, 2, 1}, []int{0, 1, 1, 1}, 0.75},
		{[]int{3}, []int{3}, 1},
		{[]int{0, 0}, []int{1, 1}, 0},
	}
	for _, tt := range tests {
		got, err := Accuracy(tt.pred, tt.labels)
		if err != nil || got != tt.want {
			t.Errorf("Accuracy(%v, %v) = %v, %v; want %v", tt.pred, tt.labels, got, err, tt.want)
		}
	}
}

func TestMeanPerClassAccuracy(t *testing.T) {
	tests := []struct {
		name         string
		pred, labels []int
		want         float64
	}{
		// Class recalls 2/3, 1, 1.
		{"hand", []int{0, 0, 1, 1, 1, 2}, []int{0, 0, 0, 1, 1, 2}, 8.0 / 9},
		// Class 3 is only predicted: it does not count as a class.
		{"predicted-only class", []int{3, 0, 1, 1}, []int{0, 0, 1, 1}, 0.75},
		// Imbalance: plain accuracy would be 0.9.
		{"imbalanced", []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 0.5},
	}
	for _, tt := range tests {
		got, err := MeanPerClassAccuracy(tt.pred, tt.labels)
		if err != nil || !near(got, tt.want) {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestROCAUC(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		labels []int
		want   float64
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []int{0, 0, 1, 1}, 1},
		{"reversed", []float64{0.9, 0.8, 0.2, 0.1}, []int{0, 0, 1, 1}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5, 0.5}, []int{0, 1, 1, 0, 1}, 0.5},
		{"scikit-learn docs example", []float64{0.1, 0.4, 0.35, 0.8}, []int{0, 0, 1, 1}, 0.75},
		// Positive/negative pairs: (.5,.5) half, (.5,.2), (.9,.5), (.9,.2) whole: 3.5/4.
		{"partial tie", []float64{0.5, 0.5, 0.2, 0.9}, []int{1, 0, 0, 1}, 0.875},
	}
	for _, tt := range tests {
		got, err := ROCAUC(tt.scores, tt.labels)
		if err != nil || !near(got, tt.want) {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

// TestROCAUCPairs compares with the definition: the share of positive/negative
// pairs ordered correctly, ties counting one half.
func TestROCAUCPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 20 {
		n := 5 + rng.IntN(60)
		scores := make([]float64, n)
		labels := make([]int, n)
		for i := range scores {
			scores[i] = float64(rng.IntN(7)) // coarse values force ties
			labels[i] = rng.IntN(2)
		}
		labels[0], labels[1] = 0, 1
		var good, pairs float64
		for i := range n {
			for j := range n {
				if labels[i] == 1 && labels[j] == 0 {
					pairs++
					switch {
					case scores[i] > scores[j]:
						good++
					case scores[i] == scores[j]:
						good += 0.5
					}
				}
			}
		}
		got, err := ROCAUC(scores, labels)
		if err != nil || !near(got, good/pairs) {
			t.Errorf("trial %d: ROCAUC = %v, %v; pair count gives %v", trial, got, err, good/pairs)
		}
	}
}

func TestElevenPointMAP(t *testing.T) {
	tests := []struct {
		name   string
		scores [][]float64
		labels [][]int
		want   float64
	}{
		{
			// Class 0: curve (R,P) = (.5,1) (.5,.5) (1,2/3) (1,.5): 2/3 at recall
			// 1.0…0.6, 1 from 0.5 down: AP = (5·2/3 + 6)/11 = 28/33.
			// Class 1: one positive at rank 2 of 4: 0.5 at recall 1.0…0.1 and 1 at
			// recall 0 (scikit-learn's appended point): AP = 6/11.
			// Class 2 has no positives and is left out.
			"hand",
			[][]float64{{0.9, 0.2, 0.5}, {0.8, 0.3, 0.1}, {0.7, 0.1, 0.3}, {0.6, 0.4, 0.2}},
			[][]int{{0}, {1}, {0}, {}},
			(28.0/33 + 6.0/11) / 2,
		},
		{"perfect", [][]float64{{0.9, 0.1}, {0.2, 0.8}, {0.7, 0.6}}, [][]int{{0}, {1}, {0, 1}}, 1},
		// One tied group of 4 holding 1 positive: precision 1/4 at every recall
		// threshold above 0: (10·0.25 + 1)/11.
		{"all tied", [][]float64{{1}, {1}, {1}, {1}}, [][]int{{}, {0}, {}, {}}, 3.5 / 11},
	}
	for _, tt := range tests {
		got, err := ElevenPointMAP(tt.scores, tt.labels)
		if err != nil || !near(got, tt.want) {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		metric string
		logits [][]float32
		labels [][]int
		want   float64
	}{
		{"accuracy", NameAccuracy, [][]float32{{2, 1, 0}, {0, 3, 1}, {1, 0, 0.5}}, [][]int{{0}, {2}, {0}}, 2.0 / 3},
		// Class 2 never occurs in the labels, so mean-per-class ignores its logit
		// (the evaluator drops empty target columns before its argmax) …
		{"mean-per-class drops absent classes", NameMeanPerClass, [][]float32{{1, 0, 5}, {0, 1, 5}}, [][]int{{0}, {1}}, 1},
		// … while accuracy does not.
		{"accuracy keeps every class", NameAccuracy, [][]float32{{1, 0, 5}, {0, 1, 5}}, [][]int{{0}, {1}}, 0},
		// Softmax probability of class 1 ranks by l1−l0 = −4, −1, .5, 2: positives
		// {−4, .5} beat negatives {−1, 2} in one pair of four. The raw column 1
		// would give 0.5.
		{"roc_auc on softmax", NameROCAUC, [][]float32{{5, 1}, {0, -1}, {0, 0.5}, {0, 2}}, [][]int{{1}, {0}, {1}, {0}}, 0.25},
		// After the softmax each class ranks its only positive below its only
		// negative: AP 6/11 for both (raw logits would give 1 for class 1).
		{"mAP on softmax", NameMAP11, [][]float32{{10, 9}, {0, 1}}, [][]int{{1}, {0}}, 6.0 / 11},
		{"mAP perfect", NameMAP11, [][]float32{{2, 0}, {0, 2}}, [][]int{{0}, {1}}, 1},
	}
	for _, tt := range tests {
		got, err := Evaluate(tt.metric, tt.logits, tt.labels)
		if err != nil || !near(got, tt.want) {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name    string
		run     func() error
		message string
	}{
		{"length mismatch", func() error { _, err := Accuracy([]int{1}, []int{1, 2}); return err }, "1 predictions but 2"},
		{"empty", func() error { _, err := MeanPerClassAccuracy(nil, nil); return err }, "no samples"},
		{"roc one class", func() error { _, err := ROCAUC([]float64{1, 2}, []int{1, 1}); return err }, "only one class"},
		{"roc label 2", func() error { _, err := ROCAUC([]float64{1, 2}, []int{0, 2}); return err }, "not 0 or 1"},
		{"map ragged", func() error { _, err := ElevenPointMAP([][]float64{{1, 2}, {1}}, [][]int{{0}, {1}}); return err }, "sample 1 has 1 scores"},
		{"map no positives", func() error { _, err := ElevenPointMAP([][]float64{{1}}, [][]int{{}}); return err }, "no class has a positive"},
		{"map label range", func() error { _, err := ElevenPointMAP([][]float64{{1}}, [][]int{{3}}); return err }, "label 3 of sample 0"},
		{"unknown metric", func() error { _, err := Evaluate("top5", [][]float32{{1}}, [][]int{{0}}); return err }, `unknown metric "top5"`},
		{"nan logit", func() error { _, err := Evaluate(NameAccuracy, [][]float32{{1, nan}}, [][]int{{0}}); return err }, "NaN"},
		{"two labels for accuracy", func() error { _, err := Evaluate(NameAccuracy, [][]float32{{1, 2}}, [][]int{{0, 1}}); return err }, "has 2 labels"},
		{"roc three classes", func() error { _, err := Evaluate(NameROCAUC, [][]float32{{1, 2, 3}}, [][]int{{0}}); return err }, "needs 2 classes"},
	}
	for _, tt := range tests {
		err := tt.run()
		if err == nil || !strings.Contains(err.Error(), tt.message) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.message)
		}
	}
}
