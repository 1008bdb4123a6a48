package data

import (
	"context"
	"sync"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
)

// Loader serves a training split's batches, epoch after epoch, as inputs on the
// backend. Either the split lives on the device (staged, see Staging) and each
// batch is gathered there, or batches are fetched on the host prefetchDepth ahead
// of the step that uses them, so decoding overlaps computing. An EpochSplit is
// told each epoch before its batches are fetched, and is never staged.
type Loader struct {
	b       core.Backend
	d       Split
	shape   []int
	per     int
	staged  *staged    // nil when batches come from the host
	redrawn EpochSplit // nil unless d is drawn afresh each epoch
}

// NewLoader prepares d's batches on b. chunk is how many examples staging fetches
// at a time (the batch size serves).
func NewLoader(b core.Backend, d Split, mode Staging, chunk int) (*Loader, error) {
	l := &Loader{b: b, d: d, shape: d.Shape(), per: core.Shape(d.Shape()).Size()}
	l.redrawn, _ = d.(EpochSplit)
	if l.redrawn == nil && shouldStage(b, mode, d.Len(), l.per) {
		var err error
		if l.staged, err = stage(b, d, chunk); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Close releases the staged split.
func (l *Loader) Close() {
	if l.staged != nil {
		l.b.Release(l.staged.x)
		l.staged = nil
	}
}

// Batch is one batch of an epoch: its examples' indices and labels, or the error
// that fetching them met.
type Batch struct {
	Idx    []int
	Labels [][]int
	Err    error

	x      []float32    // the examples, fetched on the host
	tensor *core.Tensor // or gathered on the device
	l      *Loader
	done   func()
}

// Input is the batch as the model's input on tp: gathered on the device from the
// staged split, or uploaded from the host (tp's Reset releases the upload).
func (bt *Batch) Input(tp *autograd.Tape) *autograd.Var {
	if bt.l.staged != nil {
		bt.tensor = bt.l.staged.gather(bt.Idx)
		return tp.Const(bt.tensor)
	}
	return tp.Input(bt.x, append([]int{len(bt.Idx)}, bt.l.shape...)...)
}

// Done releases what Input gathered and hands the host buffer back for a later
// batch; call it once the step has used the input.
func (bt *Batch) Done() {
	if bt.tensor != nil {
		bt.l.b.Release(bt.tensor)
		bt.tensor = nil
	}
	if bt.done != nil {
		bt.done()
		bt.done = nil
	}
}

// prefetchDepth is how many batches are fetched ahead of the one in use.
const prefetchDepth = 2

// Epoch yields the batches of epoch, each a list of example indices, in order. The
// channel closes after the last batch or the first error; stop ends the fetching
// early and returns once no fetch is under way (an early return must not strand the
// prefetching goroutine).
func (l *Loader) Epoch(epoch int, batches [][]int) (next <-chan Batch, stop func()) {
	if l.redrawn != nil {
		l.redrawn.SetEpoch(epoch)
	}
	if l.staged != nil {
		out := make(chan Batch, len(batches))
		for _, idx := range batches {
			labels := make([][]int, len(idx))
			for i, e := range idx {
				labels[i] = l.staged.labels[e]
			}
			out <- Batch{Idx: idx, Labels: labels, l: l}
		}
		close(out)
		return out, func() {}
	}
	return prefetch(context.Background(), l.d, l, batches)
}

// prefetch fetches d's batches in order on a goroutine, up to prefetchDepth ahead,
// into prefetchDepth+1 buffers that each Batch's Done hands back; l, when not nil,
// is the Loader whose Input the batches serve. It stops after the first error, and
// before fetching once ctx is cancelled.
func prefetch(ctx context.Context, d Split, l *Loader, batches [][]int) (<-chan Batch, func()) {
	per := core.Shape(d.Shape()).Size()
	size := 0
	for _, idx := range batches {
		size = max(size, len(idx))
	}
	out := make(chan Batch, prefetchDepth)
	quit := make(chan struct{})
	free := make(chan int, prefetchDepth+1)
	bufs := make([][]float32, prefetchDepth+1)
	for i := range bufs {
		bufs[i] = make([]float32, size*per)
		free <- i
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer close(out)
		for _, idx := range batches {
			var slot int
			select {
			case slot = <-free:
			case <-quit:
				return
			}
			if ctx.Err() != nil {
				return
			}
			x, labels := bufs[slot][:len(idx)*per], make([][]int, len(idx))
			err := d.Fetch(idx, x, labels)
			select {
			case out <- Batch{Idx: idx, Labels: labels, Err: err, x: x, l: l, done: func() { free <- slot }}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var once sync.Once
	// stop waits for a fetch under way: once it returns, nothing reads the split
	// (a resumed run's SetEpoch must not race a stopped run's last fetch).
	return out, func() {
		once.Do(func() { close(quit) })
		<-finished
	}
}
