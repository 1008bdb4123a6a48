package data

import (
	"context"
	"fmt"

	"github.com/kadapt/kadapt/core"
)

// Staging says whether a Loader uploads the training split to the device once and
// gathers each batch there, instead of copying every batch from the host. Few-shot
// training sets are small and run for dozens of epochs: staged, a step on a GPU
// starts without waiting on a host-to-device copy of its images.
type Staging uint8

const (
	// StageAuto stages on a device backend (one that reports its memory, as cuda
	// does) when the split takes at most a quarter of the free device memory and
	// maxStagedBytes.
	StageAuto Staging = iota
	StageOff
	// StageOn stages on any backend (tests use it on the CPU).
	StageOn
)

// maxStagedBytes bounds an automatically staged split.
const maxStagedBytes = 4 << 30

// shouldStage applies the Staging policy to a split of n examples of per values.
func shouldStage(b core.Backend, mode Staging, n, per int) bool {
	switch mode {
	case StageOff:
		return false
	case StageOn:
		return true
	}
	dm, ok := b.(core.DeviceMemory)
	if !ok {
		return false
	}
	free, _, err := dm.MemoryInfo()
	bytes := int64(n) * int64(per) * 4
	return err == nil && bytes <= maxStagedBytes && bytes <= free/4
}

// staged is a split resident on the backend.
type staged struct {
	b      core.Backend
	x      *core.Tensor // [n, example shape...]
	labels [][]int
}

// stage fetches every example of d once, chunk by chunk, into one backend tensor.
func stage(b core.Backend, d Split, chunk int) (*staged, error) {
	n, shape := d.Len(), d.Shape()
	s := &staged{b: b, x: core.AllocUninit(b, append(core.Shape{n}, shape...)), labels: make([][]int, n)}
	err := FetchChunks(context.Background(), d, chunk, func(off int, x []float32, labels [][]int) error {
		copy(s.labels[off:], labels)
		part := b.Alloc(append(core.Shape{len(labels)}, shape...))
		b.Upload(part, x)
		b.CopyAlong(s.x, part, 0, off, 0, len(labels), false)
		b.Release(part)
		return nil
	})
	if err != nil {
		b.Release(s.x)
		return nil, fmt.Errorf("staging the training split on %s: %w", b.Name(), err)
	}
	return s, nil
}

// gather copies the examples idx into a new tensor the caller releases.
func (s *staged) gather(idx []int) *core.Tensor {
	pos := make([]float32, len(idx))
	for i, e := range idx {
		pos[i] = float32(e)
	}
	it := s.b.Alloc(core.Shape{len(idx)})
	s.b.Upload(it, pos)
	shape := s.x.Shape().Clone()
	shape[0] = len(idx)
	x := core.AllocUninit(s.b, shape)
	s.b.Gather(x, s.x, it, 0)
	s.b.Release(it)
	return x
}
