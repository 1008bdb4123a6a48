package main

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/kadapt/kadapt/backbones/preprocess"
	"github.com/kadapt/kadapt/datasets"
)

// imageData feeds a dataset's images to training: workers decode and preprocess the
// examples of a batch in parallel into the caller's buffer, and examples are cached
// preprocessed while a memory budget allows — few-shot training sets are revisited
// every epoch, and decoding dominates a small model's step.
type imageData struct {
	ds      *datasets.Dataset
	cfg     preprocess.Config
	shape   []int
	workers int

	mu     sync.Mutex
	cache  map[int][]float32
	budget int // values still allowed in the cache
}

// cacheBudget bounds the preprocessed pixels kept per split (in float32 values).
const cacheBudget = 512 << 20 / 4

func newImageData(ds *datasets.Dataset, cfg preprocess.Config, workers int) *imageData {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &imageData{ds: ds, cfg: cfg, shape: []int{3, cfg.CropHeight, cfg.CropWidth}, workers: workers,
		cache: map[int][]float32{}, budget: cacheBudget}
}

func (d *imageData) Len() int     { return d.ds.Len() }
func (d *imageData) Shape() []int { return d.shape }

func (d *imageData) Fetch(idx []int, x []float32, labels [][]int) error {
	per := d.shape[0] * d.shape[1] * d.shape[2]
	jobs := make(chan int)
	errs := make(chan error, len(idx))
	var wg sync.WaitGroup
	for w := 0; w < min(d.workers, len(idx)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := d.one(idx[i], x[i*per:(i+1)*per]); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range idx {
		labels[i] = d.ds.Samples[idx[i]].Labels
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

func (d *imageData) one(i int, dst []float32) error {
	d.mu.Lock()
	cached, ok := d.cache[i]
	d.mu.Unlock()
	if ok {
		copy(dst, cached)
		return nil
	}
	img, err := d.ds.Image(i)
	if err != nil {
		return err
	}
	if err := preprocess.ProcessInto(dst, img, d.cfg); err != nil {
		return fmt.Errorf("%s: %v", d.ds.Samples[i].Source, err)
	}
	d.mu.Lock()
	if d.budget >= len(dst) {
		d.cache[i] = append([]float32(nil), dst...)
		d.budget -= len(dst)
	}
	d.mu.Unlock()
	return nil
}
