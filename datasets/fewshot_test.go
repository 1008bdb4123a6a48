package datasets

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The expected index lists come from running vision-datasets 0.2.17's
// sample_few_shot_subset loop and the toolkit's train_val_dataset under CPython
// 3.11 (numpy calls replaced by their list equivalents) on the same labels.

func samplesOf(labels [][]int) []Sample {
	out := make([]Sample, len(labels))
	for i, l := range labels {
		out[i] = Sample{Source: fmt.Sprint(i), Labels: l}
	}
	return out
}

func indicesOf(t *testing.T, s []Sample) []int {
	t.Helper()
	out := make([]int, len(s))
	for i, x := range s {
		if _, err := fmt.Sscan(x.Source, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// multiClass40 is `[(i*7+3) % 5 % 3 for i in range(40)]`.
func multiClass40() [][]int {
	out := make([][]int, 40)
	for i := range out {
		out[i] = []int{(i*7 + 3) % 5 % 3}
	}
	return out
}

var multiLabel30 = [][]int{{0, 3}, {0, 1, 2}, {0}, {3}, {0, 1, 2}, {3}, {1, 2, 3}, {1}, {1, 2}, {0}, {0, 1, 2}, {0, 1},
	{0, 1, 3}, {0}, {1, 2}, {0, 1}, {1}, {3}, {0, 1, 2}, {}, {}, {}, {3}, {0, 1}, {}, {2}, {0, 1, 2}, {3}, {0}, {3}}

// skewed24 makes the balance rule matter: taking an image is refused when its
// rarest label already has more than k/2 and its commonest more than 1.5·k.
func skewed24() [][]int {
	var out [][]int
	for range 12 {
		out = append(out, []int{0, 2})
	}
	for range 2 {
		out = append(out, []int{1})
	}
	for range 6 {
		out = append(out, []int{1, 2})
	}
	for range 4 {
		out = append(out, []int{2})
	}
	return out
}

func TestFewShot(t *testing.T) {
	tests := []struct {
		name    string
		labels  [][]int
		classes int
		k, seed int
		want    []int
	}{
		{"multi-class k3 seed0", multiClass40(), 3, 3, 0, []int{0, 27, 12, 21, 29, 15, 38, 34, 7}},
		{"multi-class k3 seed1", multiClass40(), 3, 3, 1, []int{23, 2, 11, 1, 37, 32, 5, 9, 29}},
		{"multi-class k3 seed2", multiClass40(), 3, 3, 2, []int{26, 4, 39, 27, 34, 15, 35, 7, 22}},
		{"multi-class k5 seed0", multiClass40(), 3, 5, 0, []int{0, 27, 12, 21, 29, 15, 38, 34, 1, 20, 7, 13, 14, 37, 22}},
		{"multi-label seed0", multiLabel30, 4, 3, 0, []int{3, 10, 18, 17, 5, 0, 7, 26}},
		{"multi-label seed1 with negative", multiLabel30, 4, 3, 1, []int{26, 16, 11, 10, 1, 5, 29, 20, 17}},
		{"multi-label seed2", multiLabel30, 4, 3, 2, []int{3, 22, 17, 15, 0, 25, 4, 7, 14}},
		{"balance rule seed0", skewed24(), 3, 3, 0, []int{14, 0, 17, 7, 6, 13}},
		{"balance rule seed1", skewed24(), 3, 3, 1, []int{20, 11, 23, 17, 13, 5, 12}},
		{"balance rule seed3", skewed24(), 3, 3, 3, []int{6, 16, 21, 14, 1, 13}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FewShotClasses(samplesOf(tt.labels), tt.classes, tt.k, tt.seed)
			if err != nil {
				t.Fatal(err)
			}
			if g := indicesOf(t, got); !slices.Equal(g, tt.want) {
				t.Errorf("FewShotClasses = %v, want %v", g, tt.want)
			}
			if g := indicesOf(t, FewShot(samplesOf(tt.labels), tt.k, tt.seed)); !slices.Equal(g, tt.want) {
				t.Errorf("FewShot = %v, want %v", g, tt.want)
			}
		})
	}
}

func TestFewShotErrors(t *testing.T) {
	tests := []struct {
		name    string
		labels  [][]int
		classes int
		k       int
	}{
		{"k zero", [][]int{{0}}, 1, 0},
		{"negative label", [][]int{{0}, {-1}}, 2, 1},
		{"label beyond classes", [][]int{{0}, {2}}, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := FewShotClasses(samplesOf(tt.labels), tt.classes, tt.k, 0); err == nil {
				t.Error("FewShotClasses: no error")
			}
		})
	}
	if got := FewShot(samplesOf([][]int{{0}, {-1}}), 1, 0); got != nil {
		t.Errorf("FewShot with a negative label = %v, want nil", got)
	}
}

func TestSplitVal(t *testing.T) {
	pick := func(labels [][]int, idx []int) [][]int {
		out := make([][]int, len(idx))
		for i, j := range idx {
			out[i] = labels[j]
		}
		return out
	}
	// The 5-shot set of multiClass40 for seed 0 (see TestFewShot), re-indexed 0..14.
	mc := pick(multiClass40(), []int{0, 27, 12, 21, 29, 15, 38, 34, 1, 20, 7, 13, 14, 37, 22})
	ml := pick(multiLabel30, []int{3, 10, 18, 17, 5, 0, 7, 26})
	tests := []struct {
		name      string
		labels    [][]int
		frac      float64
		wantTrain []int
		wantVal   []int
	}{
		{"multi-class 0.2", mc, 0.2, []int{2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, []int{0, 1, 4}},
		{"multi-class 0.5", mc, 0.5, []int{8, 9, 11, 12, 13, 14}, []int{0, 1, 2, 3, 4, 5, 6, 7, 10}},
		{"multi-class 0", mc, 0, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, nil},
		{"multi-label 0.2", ml, 0.2, []int{2, 3, 4, 5, 6, 7}, []int{1, 0}},
		{"multi-label 0.3 whole set", multiLabel30, 0.3,
			[]int{5, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29},
			[]int{0, 1, 2, 4, 9, 6, 7, 8, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			train, val, err := SplitVal(samplesOf(tt.labels), tt.frac)
			if err != nil {
				t.Fatal(err)
			}
			if g := indicesOf(t, train); !slices.Equal(g, tt.wantTrain) {
				t.Errorf("train = %v, want %v", g, tt.wantTrain)
			}
			if g := indicesOf(t, val); !slices.Equal(g, tt.wantVal) {
				t.Errorf("val = %v, want %v", g, tt.wantVal)
			}
		})
	}
	for _, frac := range []float64{-0.1, 1.5} {
		if _, _, err := SplitVal(samplesOf(mc), frac); err == nil {
			t.Errorf("SplitVal(frac=%v): no error", frac)
		}
	}
}

// TestSplitValPerClassCount checks the ⌈0.2·n_c⌉ rule directly: with 5 shots
// every class gives exactly its first image to validation.
func TestSplitValPerClassCount(t *testing.T) {
	var labels [][]int
	for i := range 5 * 7 {
		labels = append(labels, []int{i % 7})
	}
	train, val, err := SplitVal(samplesOf(labels), DefaultValFraction)
	if err != nil {
		t.Fatal(err)
	}
	if len(val) != 7 || len(train) != 28 {
		t.Fatalf("split %d/%d, want 28/7", len(train), len(val))
	}
	for c, s := range val {
		if s.Labels[0] != c || indicesOf(t, val[c:c+1])[0] != c {
			t.Errorf("val[%d] = %+v, want the first image of class %d", c, s, c)
		}
	}
}

func TestDatasetFewShotAndSplit(t *testing.T) {
	d := &Dataset{Name: "toy", Classes: []string{"a", "b", "c"}, Samples: samplesOf(multiClass40())}
	fs, err := d.FewShot(5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g, want := indicesOf(t, fs.Samples), []int{0, 27, 12, 21, 29, 15, 38, 34, 1, 20, 7, 13, 14, 37, 22}; !slices.Equal(g, want) {
		t.Errorf("FewShot = %v, want %v", g, want)
	}
	train, val, err := fs.SplitVal(DefaultValFraction)
	if err != nil {
		t.Fatal(err)
	}
	if g, want := indicesOf(t, val.Samples), []int{0, 27, 29}; !slices.Equal(g, want) {
		t.Errorf("val = %v, want %v", g, want)
	}
	if train.Len()+val.Len() != fs.Len() || train.Name != "toy" {
		t.Errorf("train %d + val %d != %d", train.Len(), val.Len(), fs.Len())
	}

	// With a fourth class that has no images the sampler never stops early, as
	// upstream's min over the labelmap never reaches k; multi-class picks are the
	// same.
	d.Classes = append(d.Classes, "empty")
	fs4, err := d.FewShot(5, 0)
	if err != nil || !slices.Equal(indicesOf(t, fs4.Samples), indicesOf(t, fs.Samples)) {
		t.Errorf("with an empty class: %v, %v", fs4, err)
	}

	// The multi-label branch, chosen by the dataset flag, orders val by choice.
	ml := &Dataset{MultiLabel: true, Classes: []string{"a", "b"}, Samples: samplesOf([][]int{{1}, {0}, {1}, {0}, {0}, {1}})}
	_, mlVal, err := ml.SplitVal(0.5)
	if err != nil {
		t.Fatal(err)
	}
	if g, want := indicesOf(t, mlVal.Samples), []int{1, 3, 0, 2}; !slices.Equal(g, want) {
		t.Errorf("multi-label val = %v, want %v", g, want)
	}
	bad := &Dataset{Samples: samplesOf([][]int{{0, 1}})}
	if _, _, err := bad.SplitVal(0.2); err == nil {
		t.Error("multi-class split of a two-label sample: no error")
	}
	if _, err := d.FewShot(0, 0); err == nil || !strings.Contains(err.Error(), "toy") {
		t.Errorf("FewShot(0) error %v, want one naming the dataset", err)
	}
}
