// Package metrics computes the four scores the ELEVATER benchmark reports, the
// way the toolkit computes them (vision-evaluation 0.2.9 and scikit-learn):
// top-1 accuracy, mean-per-class accuracy (balanced accuracy), binary ROC-AUC and
// VOC-style 11-point interpolated mean average precision. Scores are fractions in
// [0, 1]; the toolkit's reports multiply them by 100.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Metric names accepted by Evaluate (the toolkit's TEST.METRIC values).
const (
	NameAccuracy     = "accuracy"
	NameMeanPerClass = "mean-per-class"
	NameROCAUC       = "roc_auc"
	NameMAP11        = "11point_mAP"
)

func checkLengths(n, m int, what string) error {
	if n != m {
		return fmt.Errorf("metrics: %d predictions but %d %s", n, m, what)
	}
	if n == 0 {
		return errors.New("metrics: no samples")
	}
	return nil
}

// Accuracy returns the fraction of i with pred[i] == labels[i].
func Accuracy(pred, labels []int) (float64, error) {
	if err := checkLengths(len(pred), len(labels), "labels"); err != nil {
		return 0, err
	}
	hit := 0
	for i, p := range pred {
		if p == labels[i] {
			hit++
		}
	}
	return float64(hit) / float64(len(pred)), nil
}

// MeanPerClassAccuracy returns the recall of each class that occurs in labels,
// averaged over those classes (scikit-learn's balanced_accuracy_score: classes that
// are only predicted, never true, do not count).
func MeanPerClassAccuracy(pred, labels []int) (float64, error) {
	if err := checkLengths(len(pred), len(labels), "labels"); err != nil {
		return 0, err
	}
	total := map[int]int{}
	hit := map[int]int{}
	for i, l := range labels {
		total[l]++
		if pred[i] == l {
			hit[l]++
		}
	}
	sum := 0.0
	for c, n := range total {
		sum += float64(hit[c]) / float64(n)
	}
	return sum / float64(len(total)), nil
}

// ROCAUC returns the area under the ROC curve of scores for binary labels (0 or
// 1): the probability that a random positive outscores a random negative, ties
// counting one half. It is computed from average ranks (Mann–Whitney U), which
// equals scikit-learn's trapezoidal roc_auc_score with tied scores grouped.
func ROCAUC(scores []float64, labels []int) (float64, error) {
	if err := checkLengths(len(scores), len(labels), "labels"); err != nil {
		return 0, err
	}
	var pos, neg int
	for i, l := range labels {
		switch l {
		case 0:
			neg++
		case 1:
			pos++
		default:
			return 0, fmt.Errorf("metrics: roc_auc: label %d of sample %d is not 0 or 1", l, i)
		}
		if math.IsNaN(scores[i]) {
			return 0, fmt.Errorf("metrics: roc_auc: score of sample %d is NaN", i)
		}
	}
	if pos == 0 || neg == 0 {
		return 0, errors.New("metrics: roc_auc is undefined when only one class is present in the labels")
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	// Sum of the positives' ranks (1-based), tied groups sharing their mean rank.
	rankSum := 0.0
	for start := 0; start < len(idx); {
		end := start + 1
		for end < len(idx) && scores[idx[end]] == scores[idx[start]] {
			end++
		}
		mean := float64(start+1+end) / 2
		for _, i := range idx[start:end] {
			if labels[i] == 1 {
				rankSum += mean
			}
		}
		start = end
	}
	p, n := float64(pos), float64(neg)
	return (rankSum - p*(p+1)/2) / (p * n), nil
}

// ElevenPointMAP returns vision-evaluation's MeanAveragePrecisionNPointsEvaluator(11)
// score: scores[i][c] is sample i's score for class c, labels[i] lists sample i's
// classes. Classes without any positive sample are left out, as the evaluator
// filters all-zero target columns. For each remaining class the precision–recall
// curve is scikit-learn's precision_recall_curve (one point per distinct score,
// plus the point recall 0, precision 1); at each recall threshold 1.0, 0.9, …, 0.0
// the interpolated precision is the largest precision among points with at least
// that recall; the class's AP is the mean of those 11 values, and the score the
// mean over classes. Because of the appended point the value at recall 0 is always
// 1, which differs from the original VOC devkit; the toolkit's numbers include it.
func ElevenPointMAP(scores [][]float64, labels [][]int) (float64, error) {
	if err := checkLengths(len(scores), len(labels), "label lists"); err != nil {
		return 0, err
	}
	numClasses := len(scores[0])
	target := make([][]bool, numClasses)
	for c := range target {
		target[c] = make([]bool, len(scores))
	}
	for i, row := range scores {
		if len(row) != numClasses {
			return 0, fmt.Errorf("metrics: 11point_mAP: sample %d has %d scores, sample 0 has %d", i, len(row), numClasses)
		}
		for c, v := range row {
			if math.IsNaN(v) {
				return 0, fmt.Errorf("metrics: 11point_mAP: score %d of sample %d is NaN", c, i)
			}
		}
		for _, l := range labels[i] {
			if l < 0 || l >= numClasses {
				return 0, fmt.Errorf("metrics: 11point_mAP: label %d of sample %d out of range [0, %d)", l, i, numClasses)
			}
			target[l][i] = true
		}
	}
	col := make([]float64, len(scores))
	sum, used := 0.0, 0
	for c := range numClasses {
		for i := range scores {
			col[i] = scores[i][c]
		}
		ap, ok := elevenPointAP(col, target[c])
		if ok {
			sum += ap
			used++
		}
	}
	if used == 0 {
		return 0, errors.New("metrics: 11point_mAP: no class has a positive sample")
	}
	return sum / float64(used), nil
}

// elevenPointAP is one class's 11-point interpolated AP; ok is false when the class
// has no positives.
func elevenPointAP(scores []float64, positive []bool) (ap float64, ok bool) {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	// Curve points at each distinct score, walking from the highest score down.
	var precision, recall []float64
	tp, fp := 0, 0
	for start := 0; start < len(idx); {
		end := start
		for end < len(idx) && scores[idx[end]] == scores[idx[start]] {
			if positive[idx[end]] {
				tp++
			} else {
				fp++
			}
			end++
		}
		precision = append(precision, float64(tp)/float64(tp+fp))
		recall = append(recall, float64(tp))
		start = end
	}
	if tp == 0 {
		return 0, false
	}
	for i := range recall {
		recall[i] /= float64(tp)
	}
	// scikit-learn orders the curve by decreasing recall and appends (recall 0,
	// precision 1); the evaluator walks it once against decreasing thresholds.
	precision = append(reverse(precision), 1)
	recall = append(reverse(recall), 0)
	const points = 11
	j, best, total := 0, 0.0, 0.0
	for p := range points {
		// numpy.linspace(1, 0, 11): start + i·step, the last point exactly 0. The
		// explicit conversion keeps the compiler from fusing into an FMA.
		threshold := float64(float64(p)*(-1.0/(points-1))) + 1
		if p == points-1 {
			threshold = 0
		}
		for j < len(recall) && threshold <= recall[j] {
			best = max(best, precision[j])
			j++
		}
		total += best
	}
	return total / points, true
}

func reverse(x []float64) []float64 {
	for i, j := 0, len(x)-1; i < j; i, j = i+1, j-1 {
		x[i], x[j] = x[j], x[i]
	}
	return x
}

// softmax turns float32 logits into float64 probabilities, as the toolkit's
// outputs.softmax(-1) does before every metric.
func softmax(logits []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = max(m, float64(v))
	}
	out := make([]float64, len(logits))
	sum := 0.0
	for i, v := range logits {
		out[i] = math.Exp(float64(v) - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// argmax returns the first index of the largest value among the allowed columns
// (numpy.argmax takes the first of ties).
func argmax(x []float64, allowed []int) int {
	best := allowed[0]
	for _, c := range allowed[1:] {
		if x[c] > x[best] {
			best = c
		}
	}
	return best
}

// Evaluate scores logits ([sample][class]) against labels (each sample's class
// indices) with the named metric, reproducing the toolkit's pipeline: rows go
// through a softmax first (even for the multi-label VOC, where the toolkit applies
// it too), then
//
//   - accuracy: argmax against the single label;
//   - mean-per-class: argmax restricted to classes that occur in labels (the
//     evaluator drops all-zero target columns before its argmax), then balanced
//     accuracy;
//   - roc_auc: the probability of class 1 of two, binary ROC-AUC;
//   - 11point_mAP: ElevenPointMAP of the probabilities.
//
// accuracy, mean-per-class and roc_auc need exactly one label per sample.
func Evaluate(metric string, logits [][]float32, labels [][]int) (float64, error) {
	if err := checkLengths(len(logits), len(labels), "label lists"); err != nil {
		return 0, err
	}
	numClasses := len(logits[0])
	if numClasses == 0 {
		return 0, errors.New("metrics: logits have no classes")
	}
	probs := make([][]float64, len(logits))
	for i, row := range logits {
		if len(row) != numClasses {
			return 0, fmt.Errorf("metrics: sample %d has %d logits, sample 0 has %d", i, len(row), numClasses)
		}
		for c, v := range row {
			if math.IsNaN(float64(v)) {
				return 0, fmt.Errorf("metrics: logit %d of sample %d is NaN", c, i)
			}
		}
		probs[i] = softmax(row)
	}
	single := func() ([]int, error) {
		out := make([]int, len(labels))
		for i, ls := range labels {
			if len(ls) != 1 {
				return nil, fmt.Errorf("metrics: %s: sample %d has %d labels, want 1", metric, i, len(ls))
			}
			if ls[0] < 0 || ls[0] >= numClasses {
				return nil, fmt.Errorf("metrics: %s: label %d of sample %d out of range [0, %d)", metric, ls[0], i, numClasses)
			}
			out[i] = ls[0]
		}
		return out, nil
	}
	switch metric {
	case NameAccuracy, NameMeanPerClass:
		y, err := single()
		if err != nil {
			return 0, err
		}
		allowed := make([]int, 0, numClasses)
		if metric == NameAccuracy {
			for c := range numClasses {
				allowed = append(allowed, c)
			}
		} else {
			present := make([]bool, numClasses)
			for _, l := range y {
				present[l] = true
			}
			for c, ok := range present {
				if ok {
					allowed = append(allowed, c)
				}
			}
		}
		pred := make([]int, len(probs))
		for i, p := range probs {
			pred[i] = argmax(p, allowed)
		}
		if metric == NameAccuracy {
			return Accuracy(pred, y)
		}
		return MeanPerClassAccuracy(pred, y)
	case NameROCAUC:
		if numClasses != 2 {
			return 0, fmt.Errorf("metrics: roc_auc needs 2 classes, logits have %d", numClasses)
		}
		y, err := single()
		if err != nil {
			return 0, err
		}
		s := make([]float64, len(probs))
		for i, p := range probs {
			s[i] = p[1]
		}
		return ROCAUC(s, y)
	case NameMAP11:
		return ElevenPointMAP(probs, labels)
	}
	return 0, fmt.Errorf("metrics: unknown metric %q (want %s, %s, %s or %s)",
		metric, NameAccuracy, NameMeanPerClass, NameROCAUC, NameMAP11)
}
