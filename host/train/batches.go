package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/kadapt/kadapt/core"
)

// fetched is one prefetched batch; done hands its buffers back.
type fetched struct {
	idx    []int
	x      []float32
	labels [][]int
	err    error
	done   func()
}

// batchCount is the number of batches an epoch of n examples trains: a last batch of
// one example is dropped when the epoch has others (BatchNorm needs two; PyTorch's
// drop_last would drop it too). The loss average, the schedule and epochBatches all
// use this one count.
func batchCount(n, batch int) int {
	batches := (n + batch - 1) / batch
	if batches > 1 && n%batch == 1 {
		batches--
	}
	return batches
}

// epochBatches cuts an epoch's order into batchCount batches, leaving out the first
// skip (trained before a mid-epoch checkpoint).
func epochBatches(order []int, batch, skip int) [][]int {
	n := len(order)
	out := make([][]int, batchCount(n, batch))
	for bi := range out {
		out[bi] = order[bi*batch : min((bi+1)*batch, n)]
	}
	return out[min(skip, len(out)):]
}

// prefetchDepth is how many batches are decoded ahead of the step that uses them.
const prefetchDepth = 2

// prefetch fetches an epoch's batches (epochBatches) in order on a goroutine, up to
// prefetchDepth ahead, so decoding overlaps computing. The channel closes after the
// last batch or the first error.
func prefetch(d Data, order []int, batch, per, skip int) (<-chan fetched, func()) {
	out := make(chan fetched, prefetchDepth)
	quit := make(chan struct{})
	free := make(chan int, prefetchDepth+1)
	bufs := make([][]float32, prefetchDepth+1)
	labs := make([][][]int, prefetchDepth+1)
	for i := range bufs {
		bufs[i] = make([]float32, batch*per)
		labs[i] = make([][]int, batch)
		free <- i
	}
	go func() {
		defer close(out)
		for _, idx := range epochBatches(order, batch, skip) {
			var slot int
			select {
			case slot = <-free:
			case <-quit:
				return
			}
			x, l := bufs[slot][:len(idx)*per], labs[slot][:len(idx)]
			err := d.Fetch(idx, x, l)
			select {
			case out <- fetched{idx: idx, x: x, labels: l, err: err, done: func() { free <- slot }}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var once sync.Once
	return out, func() { once.Do(func() { close(quit) }) }
}

// permutation is the epoch's example order, a pure function of (seed, epoch) so a
// resumed run sees exactly the batches an uninterrupted one would.
func permutation(n int, seed uint64, epoch int) []int {
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)+0x9e3779b9))
	return rng.Perm(n)
}

// FetchChunks fetches every example of d in index order, chunk at a time, and hands
// each chunk to use: off is the index of its first example, x its values and labels
// its labels. x is overwritten by the next chunk, so use must copy what it keeps;
// labels are the chunk's own. Between chunks it gives up once ctx is cancelled.
func FetchChunks(ctx context.Context, d Data, chunk int, use func(off int, x []float32, labels [][]int) error) error {
	if chunk <= 0 {
		return fmt.Errorf("fetching examples %d at a time: the chunk size must be positive", chunk)
	}
	n, per := d.Len(), core.Shape(d.Shape()).Size()
	x := make([]float32, min(chunk, n)*per)
	for off := 0; off < n; off += chunk {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		cnt := min(chunk, n-off)
		idx := make([]int, cnt)
		for i := range idx {
			idx[i] = off + i
		}
		labels := make([][]int, cnt)
		if err := d.Fetch(idx, x[:cnt*per], labels); err != nil {
			return err
		}
		if err := use(off, x[:cnt*per], labels); err != nil {
			return err
		}
	}
	return nil
}
