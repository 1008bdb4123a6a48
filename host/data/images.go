package data

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/preprocess"
	"github.com/kadapt/kadapt/datasets"
)

// Images is a dataset's images as a Split: workers decode (Dataset.Image, the one
// decoder) and preprocess (preprocess.ProcessInto) the examples of a batch in
// parallel into the caller's buffer, and examples are cached preprocessed while a
// memory budget allows — few-shot training sets are revisited every epoch, and
// decoding dominates a small model's step.
type Images struct {
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

// NewImages serves ds's images preprocessed as cfg says, decoding with workers
// goroutines (GOMAXPROCS when workers ≤ 0).
func NewImages(ds *datasets.Dataset, cfg preprocess.Config, workers int) *Images {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &Images{ds: ds, cfg: cfg, shape: []int{3, cfg.CropHeight, cfg.CropWidth}, workers: workers,
		cache: map[int][]float32{}, budget: cacheBudget}
}

// Files is the image files at paths, unlabelled, as a Split.
func Files(paths []string, cfg preprocess.Config) *Images {
	return NewImages(datasets.FromFiles(paths), cfg, 0)
}

func (d *Images) Len() int     { return d.ds.Len() }
func (d *Images) Shape() []int { return d.shape }

func (d *Images) Fetch(idx []int, x []float32, labels [][]int) error {
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

func (d *Images) one(i int, dst []float32) error {
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

// PreprocessConfig is how m wants its pixels: the model folder's
// preprocessor_config.json when there is one, else the architecture's defaults
// (CLIP's pipeline at the tower's image size, mean and std). A nil m gives CLIP's
// 224-pixel defaults.
func PreprocessConfig(m *backbones.Model) (preprocess.Config, error) {
	if m != nil && m.Dir != "" {
		p := filepath.Join(m.Dir, "preprocessor_config.json")
		if _, err := os.Stat(p); err == nil {
			return preprocess.LoadConfig(p)
		}
	}
	cfg := preprocess.CLIPConfig(224)
	if m != nil {
		vc := m.Vision.Cfg
		cfg.ShortestEdge, cfg.CropHeight, cfg.CropWidth = vc.ImageSize, vc.ImageSize, vc.ImageSize
		cfg.Mean, cfg.Std = vc.Mean, vc.Std
	}
	return cfg, nil
}
