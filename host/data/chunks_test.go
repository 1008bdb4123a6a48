package data

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestFetchChunks checks that every example arrives once, in order, with its own
// values and label, whatever the chunk size does to the last chunk.
func TestFetchChunks(t *testing.T) {
	type got struct {
		Off    int
		X      []float32
		Labels [][]int
	}
	for _, tc := range []struct {
		name     string
		n, chunk int
		want     []got
	}{
		{"empty split", 0, 4, nil},
		{"chunks fill exactly", 4, 2, []got{
			{0, []float32{0, 0.5, 1, 1.5}, [][]int{{0}, {1}}},
			{2, []float32{2, 2.5, 3, 3.5}, [][]int{{2}, {3}}}}},
		{"last chunk partial", 5, 2, []got{
			{0, []float32{0, 0.5, 1, 1.5}, [][]int{{0}, {1}}},
			{2, []float32{2, 2.5, 3, 3.5}, [][]int{{2}, {3}}},
			{4, []float32{4, 4.5}, [][]int{{4}}}}},
		{"one chunk larger than the split", 3, 8, []got{
			{0, []float32{0, 0.5, 1, 1.5, 2, 2.5}, [][]int{{0}, {1}, {2}}}}},
		{"chunks of one", 2, 1, []got{
			{0, []float32{0, 0.5}, [][]int{{0}}},
			{1, []float32{1, 1.5}, [][]int{{1}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Mem{ExShape: []int{2}}
			for i := range tc.n {
				d.X = append(d.X, float32(i), float32(i)+0.5)
				d.Labels = append(d.Labels, []int{i})
			}
			var calls []got
			err := FetchChunks(context.Background(), d, tc.chunk, func(off int, x []float32, labels [][]int) error {
				calls = append(calls, got{off, append([]float32(nil), x...), labels})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(calls, tc.want) {
				t.Fatalf("chunks %+v, want %+v", calls, tc.want)
			}
		})
	}
}

func TestFetchChunksStops(t *testing.T) {
	d := &Mem{X: make([]float32, 6), Labels: [][]int{{0}, {0}, {0}, {0}, {0}, {0}}, ExShape: []int{1}}
	if err := FetchChunks(context.Background(), d, 0, func(int, []float32, [][]int) error { return nil }); err == nil {
		t.Error("a chunk size of 0 was accepted")
	}
	boom := errors.New("boom")
	calls := 0
	err := FetchChunks(context.Background(), d, 2, func(int, []float32, [][]int) error { calls++; return boom })
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("use's error: got %v after %d calls, want boom after 1", err, calls)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	calls = 0
	err = FetchChunks(ctx, d, 2, func(int, []float32, [][]int) error { calls++; cancel(boom); return nil })
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("cancelled: got %v after %d calls, want the cause after 1", err, calls)
	}
	calls = 0
	err = FetchChunks(context.Background(), failingSplit{d, boom}, 2, func(int, []float32, [][]int) error { calls++; return nil })
	if !errors.Is(err, boom) || calls != 0 {
		t.Errorf("a failing Fetch: got %v after %d calls, want boom after 0", err, calls)
	}
}

type failingSplit struct {
	*Mem
	err error
}

func (f failingSplit) Fetch([]int, []float32, [][]int) error { return f.err }

// overlapSplit blocks each Fetch of a chunk after the first until told, to see
// whether the next chunk is fetched while the previous one is in use.
type overlapSplit struct {
	*Mem
	started chan int // the first index of each fetch, as it begins
}

func (o overlapSplit) Fetch(idx []int, x []float32, labels [][]int) error {
	o.started <- idx[0]
	return o.Mem.Fetch(idx, x, labels)
}

// TestFetchChunksFetchesAhead: the second chunk is fetched while use still holds
// the first, so decoding overlaps the forward pass.
func TestFetchChunksFetchesAhead(t *testing.T) {
	d := overlapSplit{&Mem{X: make([]float32, 4), Labels: [][]int{{0}, {1}, {2}, {3}}, ExShape: []int{1}}, make(chan int, 4)}
	err := FetchChunks(context.Background(), d, 2, func(off int, _ []float32, _ [][]int) error {
		if off != 0 {
			return nil
		}
		<-d.started // the first chunk's own fetch
		select {
		case next := <-d.started:
			if next != 2 {
				t.Errorf("fetched from %d ahead, want 2", next)
			}
		case <-time.After(10 * time.Second):
			t.Error("the second chunk was not fetched while the first was in use")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
