package datasets

import (
	"math"
	"slices"
	"testing"
)

// Expected values were produced by CPython 3.11's random module.

func TestPyRandomFloat64(t *testing.T) {
	tests := []struct {
		seed int64
		want float64
	}{
		{0, 0.8444218515250481},
		{1, 0.13436424411240122},
		{42, 0.6394267984578837},
		{-5, 0.6229016948897019}, // random.seed uses |seed|
		{5, 0.6229016948897019},
		{1<<32 + 7, 0.22550888929893187}, // two key words
		{math.MaxInt64, 0.3166448820870279},
	}
	for _, tt := range tests {
		if got := NewPyRandom(tt.seed).Float64(); got != tt.want {
			t.Errorf("Random(%d).random() = %v, want %v", tt.seed, got, tt.want)
		}
	}
}

func TestPyRandomSequence(t *testing.T) {
	r := NewPyRandom(0)
	for i, want := range []uint64{3626764237, 1654615998, 3255389356} {
		if got := r.GetRandBits(32); got != want {
			t.Errorf("Random(0) getrandbits(32) #%d = %d, want %d", i, got, want)
		}
	}
	if got, want := r.Float64(), 0.890243920837131; got != want {
		t.Errorf("random() after three getrandbits = %v, want %v", got, want)
	}

	r = NewPyRandom(1<<32 + 7)
	r.Float64()
	if got, want := r.GetRandBits(64), uint64(6327368671233394168); got != want {
		t.Errorf("getrandbits(64) = %d, want %d", got, want)
	}
	if got, want := r.GetRandBits(40), uint64(67857189579); got != want {
		t.Errorf("getrandbits(40) = %d, want %d", got, want)
	}
	if got, want := r.GetRandBits(1), uint64(1); got != want {
		t.Errorf("getrandbits(1) = %d, want %d", got, want)
	}
}

func TestPyRandomIntn(t *testing.T) {
	r := NewPyRandom(123)
	var got []int
	for range 8 {
		got = append(got, r.Intn(1000))
	}
	for range 8 {
		got = append(got, r.Intn(3))
	}
	want := []int{53, 274, 89, 787, 417, 272, 110, 858, 0, 1, 2, 2, 1, 1, 0, 0}
	if !slices.Equal(got, want) {
		t.Errorf("_randbelow sequence = %v, want %v", got, want)
	}
}

func TestPyRandomShuffle(t *testing.T) {
	tests := []struct {
		seed int64
		n    int
		want []int
	}{
		{0, 10, []int{7, 8, 1, 5, 3, 4, 2, 0, 9, 6}},
		{3, 20, []int{8, 3, 6, 5, 15, 16, 2, 12, 0, 1, 13, 10, 19, 9, 14, 11, 4, 17, 18, 7}},
		{3, 1, []int{0}},
		{3, 0, []int{}},
	}
	for _, tt := range tests {
		x := make([]int, tt.n)
		for i := range x {
			x[i] = i
		}
		NewPyRandom(tt.seed).Shuffle(len(x), func(i, j int) { x[i], x[j] = x[j], x[i] })
		if !slices.Equal(x, tt.want) {
			t.Errorf("Random(%d).shuffle(range(%d)) = %v, want %v", tt.seed, tt.n, x, tt.want)
		}
	}
}
