package datasets

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// DefaultValFraction is the share of each class of the few-shot set that the
// protocol holds out for hyper-parameter search.
const DefaultValFraction = 0.2

// FewShot draws the k-shot training subset the ELEVATER protocol uses with the
// given seed; the classes are 0 up to the largest label present. It returns nil
// when k < 1 or a label is negative; FewShotClasses reports those as errors.
func FewShot(samples []Sample, k int, seed int) []Sample {
	numClasses := 0
	for _, s := range samples {
		for _, l := range s.Labels {
			numClasses = max(numClasses, l+1)
		}
	}
	out, err := FewShotClasses(samples, numClasses, k, seed)
	if err != nil {
		return nil
	}
	return out
}

// FewShotClasses is FewShot for a dataset of numClasses classes. It reproduces
// DatasetManifest.sample_few_shot_subset of vision-datasets 0.2.17 (the version
// the ELEVATER toolkit and the paper's code pin):
//
//	images = list(manifest); random.Random(seed).shuffle(images)
//	for image in images:
//	    if image has no labels: take it while fewer than k such were taken; continue
//	    counts = [taken[c] for c in image.labels]
//	    if min(counts) >= k: continue
//	    if min(counts) <= k/2 or max(counts) <= 1.5*k: take it; taken[c] += 1 for each label
//	    if min(taken over all classes) >= k: break
//
// For multi-class data this takes, in shuffled order, every image whose class still
// has fewer than k images. For multi-label data an image is taken when any of its
// labels still needs images, unless that would push an already well-stocked label
// past 1.5·k while none of its labels is below k/2; classes can therefore end with
// more than k images, or fewer when the data runs out. Images without labels
// (possible in multi-label data) fill up to k places. The order of the result is
// the order of taking. (The paper's scripts turn a 1-shot request into k = 2 and
// then skip the train+val merge; that policy belongs to the caller.)
func FewShotClasses(samples []Sample, numClasses, k int, seed int) ([]Sample, error) {
	if k < 1 {
		return nil, fmt.Errorf("datasets: few-shot k = %d, want ≥ 1", k)
	}
	for i, s := range samples {
		for _, l := range s.Labels {
			if l < 0 || l >= numClasses {
				return nil, fmt.Errorf("datasets: few-shot: sample %d (%s): label %d out of range [0, %d)", i, s.Source, l, numClasses)
			}
		}
	}
	order := make([]int, len(samples))
	for i := range order {
		order[i] = i
	}
	NewPyRandom(int64(seed)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })

	taken := make([]int, numClasses)
	filled := 0 // classes with taken[c] >= k, so min(taken) >= k is filled == numClasses
	negatives := 0
	var out []Sample
	half, oneAndHalf := float64(k)/2, 1.5*float64(k)
	for _, idx := range order {
		s := samples[idx]
		if len(s.Labels) == 0 {
			if negatives < k {
				negatives++
				out = append(out, s)
			}
			continue
		}
		lo, hi := math.MaxInt, math.MinInt
		for _, l := range s.Labels {
			lo, hi = min(lo, taken[l]), max(hi, taken[l])
		}
		if lo >= k {
			continue
		}
		if float64(lo) <= half || float64(hi) <= oneAndHalf {
			out = append(out, s)
			// A label listed twice counts twice, as Python's per-label loop does.
			for _, l := range s.Labels {
				taken[l]++
				if taken[l] == k {
					filled++
				}
			}
		}
		if filled == numClasses {
			break
		}
	}
	return out, nil
}

// SplitVal splits a few-shot set into training and validation parts as the
// toolkit's get_dataloader(val_split=frac) does. frac is normally
// DefaultValFraction; the final run then trains on the whole few-shot set again.
//
// Multi-class sets (every sample has exactly one label): for each class the first
// ⌈frac·n_c⌉ of its samples, in the given order, go to validation. Otherwise
// (multi-label): each class needs ⌈frac·n_c⌉ validation labels; repeatedly the
// lowest class still short takes the first sample carrying it that is not yet in
// validation, and all of that sample's labels count towards their classes' needs.
//
// train keeps the input order. val is in input order for multi-class sets and in
// order of choice for multi-label sets. The toolkit passes its indices through a
// Python set, whose iteration order is usually but not always ascending; the
// order only decides the order of evaluation, on which no metric depends.
func SplitVal(samples []Sample, frac float64) (train, val []Sample, err error) {
	multiLabel := false
	for _, s := range samples {
		if len(s.Labels) != 1 {
			multiLabel = true
			break
		}
	}
	return splitVal(samples, frac, multiLabel)
}

func splitVal(samples []Sample, frac float64, multiLabel bool) (train, val []Sample, err error) {
	if !(frac >= 0 && frac <= 1) {
		return nil, nil, fmt.Errorf("datasets: validation fraction %v outside [0, 1]", frac)
	}
	if !multiLabel {
		for i, s := range samples {
			if len(s.Labels) != 1 {
				return nil, nil, fmt.Errorf("datasets: validation split: multi-class sample %d (%s) has %d labels", i, s.Source, len(s.Labels))
			}
		}
	}
	inVal := make([]bool, len(samples))
	if multiLabel {
		order, err := multiLabelValOrder(samples, frac)
		if err != nil {
			return nil, nil, err
		}
		for _, i := range order {
			inVal[i] = true
			val = append(val, samples[i])
		}
	} else {
		count := map[int]int{}
		for _, s := range samples {
			count[s.Labels[0]]++
		}
		need := map[int]int{}
		for c, n := range count {
			need[c] = int(math.Ceil(float64(n) * frac))
		}
		for i, s := range samples {
			if c := s.Labels[0]; need[c] > 0 {
				need[c]--
				inVal[i] = true
				val = append(val, s)
			}
		}
	}
	for i, s := range samples {
		if !inVal[i] {
			train = append(train, s)
		}
	}
	return train, val, nil
}

// multiLabelValOrder is the toolkit's multi-label branch: labels become a 0/1
// matrix (duplicates collapse), val_target_count = ceil(column sums · frac), and
// while some target is positive the lowest such class takes its first remaining
// sample, whose row is then subtracted from the targets and zeroed.
func multiLabelValOrder(samples []Sample, frac float64) ([]int, error) {
	rows := make([]map[int]bool, len(samples))
	sum := map[int]int{}
	for i, s := range samples {
		rows[i] = map[int]bool{}
		for _, l := range s.Labels {
			if !rows[i][l] {
				rows[i][l] = true
				sum[l]++
			}
		}
	}
	target := map[int]float64{}
	var classes []int
	for c, n := range sum {
		target[c] = math.Ceil(float64(n) * frac)
		classes = append(classes, c)
	}
	sort.Ints(classes)
	var order []int
	for {
		next := -1
		for _, c := range classes {
			if target[c] > 0 {
				next = c
				break
			}
		}
		if next < 0 {
			return order, nil
		}
		pick := -1
		for i, r := range rows {
			if r[next] {
				pick = i
				break
			}
		}
		if pick < 0 {
			// Cannot happen for frac ≤ 1: a class needs at most as many samples as carry it.
			return nil, errors.New("datasets: validation split: a class ran out of samples")
		}
		order = append(order, pick)
		for c := range rows[pick] {
			target[c]--
		}
		rows[pick] = nil
	}
}

// FewShot returns the k-shot subset of d for seed, counting d.Classes as the
// classes to fill (as the toolkit counts its labelmap); see FewShotClasses.
func (d *Dataset) FewShot(k, seed int) (*Dataset, error) {
	samples, err := FewShotClasses(d.Samples, len(d.Classes), k, seed)
	if err != nil {
		return nil, fmt.Errorf("%w (dataset %s)", err, d.Name)
	}
	return d.Subset(samples), nil
}

// SplitVal splits d into training and validation parts as the package-level
// SplitVal does, taking the multi-label branch when d.MultiLabel is set (the
// toolkit decides by dataset type; the two branches pick the same samples for
// single-label data but order the validation part differently).
func (d *Dataset) SplitVal(frac float64) (train, val *Dataset, err error) {
	t, v, err := splitVal(d.Samples, frac, d.MultiLabel)
	if err != nil {
		return nil, nil, err
	}
	return d.Subset(t), d.Subset(v), nil
}
