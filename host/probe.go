package main

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/host/data"
)

// transferProbe measures how well a backbone's frozen features serve the demo task,
// the cheap way: nearest class mean (cosine) from `shots` images per digit of 5–9,
// drawn by the demo's own few-shot sampler, scored on every test image of those
// digits. It returns the accuracy for each few-shot seed 0..seeds-1. Training an
// adaptation method costs minutes; this costs one forward pass over the test set, so
// candidate pretraining recipes can be compared before any method is run on them.
func transferProbe(vision *backbones.Vision, shots, seeds int) ([]float64, error) {
	digits := []int{5, 6, 7, 8, 9}
	trainAll, err := data.MNISTDigits(true, digits)
	if err != nil {
		return nil, err
	}
	testDS, err := data.MNISTDigits(false, digits)
	if err != nil {
		return nil, err
	}
	testData, err := data.MNISTPixels(testDS)
	if err != nil {
		return nil, err
	}
	testF, err := frozenFeatures(vision, testData)
	if err != nil {
		return nil, err
	}
	var accs []float64
	for seed := range seeds {
		few, err := trainAll.FewShot(shots, seed)
		if err != nil {
			return nil, err
		}
		fewData, err := data.MNISTPixels(few)
		if err != nil {
			return nil, err
		}
		fewF, err := frozenFeatures(vision, fewData)
		if err != nil {
			return nil, err
		}
		accs = append(accs, nearestMeanAccuracy(fewF, fewData.Labels, testF, testData.Labels, len(digits)))
	}
	return accs, nil
}

// frozenFeatures returns the tower's embeddings of every example, L2-normalised.
func frozenFeatures(vision *backbones.Vision, d *data.Mem) ([][]float32, error) {
	shown := display(false).Start("probe features", int64(d.Len()))
	f, err := data.Features(context.Background(), vision, d, 256, func(done, total int) {
		shown.Update(int64(done), int64(total), "")
	})
	shown.End()
	if err != nil {
		return nil, err
	}
	if f.Len() == 0 {
		return nil, nil
	}
	dim := f.ExShape[0]
	feats := make([][]float32, f.Len())
	for i := range feats {
		feats[i] = normalized(f.X[i*dim : (i+1)*dim])
	}
	return feats, nil
}

func normalized(v []float32) []float32 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	inv := 1 / math.Max(math.Sqrt(ss), 1e-12)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}

// nearestMeanAccuracy classifies each test row by the highest cosine similarity to a
// class's mean training feature.
func nearestMeanAccuracy(trainF [][]float32, trainL [][]int, testF [][]float32, testL [][]int, classes int) float64 {
	dim := len(trainF[0])
	means := make([][]float32, classes)
	for c := range means {
		means[c] = make([]float32, dim)
	}
	for i, f := range trainF {
		m := means[trainL[i][0]]
		for j, x := range f {
			m[j] += x
		}
	}
	for c := range means {
		means[c] = normalized(means[c])
	}
	correct := 0
	for i, f := range testF {
		best, arg := math.Inf(-1), -1
		for c, m := range means {
			var dot float64
			for j, x := range f {
				dot += float64(x) * float64(m[j])
			}
			if dot > best {
				best, arg = dot, c
			}
		}
		if arg == testL[i][0] {
			correct++
		}
	}
	return float64(correct) / float64(len(testF))
}

// probeAndLog runs transferProbe and logs its mean and spread.
func probeAndLog(log interface{ Info(string, ...any) }, vision *backbones.Vision, seeds int) (string, error) {
	if seeds <= 0 {
		return "", nil
	}
	accs, err := transferProbe(vision, 5, seeds)
	if err != nil {
		return "", err
	}
	// The sample standard deviation (n−1): the seeds are a sample of few-shot draws.
	mean, std := stat.MeanStdDev(accs, nil)
	summary := fmt.Sprintf("5-shot nearest-class-mean accuracy on digits 5-9 from frozen features %.4f ± %.4f over %d few-shot seeds", mean, std, seeds)
	log.Info("transfer probe", "ncm_5shot_digits_5_9", fmt.Sprintf("%.4f", mean), "std", fmt.Sprintf("%.4f", std), "per_seed", fmt.Sprint(accs))
	return summary, nil
}
