package data

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/backend/cpu"
)

// randomMem is n examples of shape with values from seed and label i%3.
func randomMem(n int, shape []int, seed uint64) *Mem {
	rng := rand.New(rand.NewPCG(seed, 7))
	d := &Mem{X: make([]float32, n*core.Shape(shape).Size()), ExShape: shape}
	for i := range d.X {
		d.X[i] = float32(rng.NormFloat64())
	}
	for i := range n {
		d.Labels = append(d.Labels, []int{i % 3})
	}
	return d
}

// rows is what Mem holds for idx, the reference every split's Fetch must match.
func rows(d *Mem, idx []int) ([]float32, [][]int) {
	per := core.Shape(d.ExShape).Size()
	var x []float32
	var l [][]int
	for _, i := range idx {
		x = append(x, d.X[i*per:(i+1)*per]...)
		l = append(l, d.Labels[i])
	}
	return x, l
}

func TestConcatFetchesFromBothParts(t *testing.T) {
	a, b := randomMem(4, []int{3}, 1), randomMem(3, []int{3}, 2)
	all := &Mem{X: append(append([]float32(nil), a.X...), b.X...), Labels: append(append([][]int(nil), a.Labels...), b.Labels...), ExShape: []int{3}}
	c := Concat(a, b)
	if c.Len() != 7 {
		t.Fatalf("Len %d, want 7", c.Len())
	}
	idx := []int{6, 0, 4, 3, 5, 1}
	x := make([]float32, len(idx)*3)
	labels := make([][]int, len(idx))
	if err := c.Fetch(idx, x, labels); err != nil {
		t.Fatal(err)
	}
	wantX, wantL := rows(all, idx)
	if !reflect.DeepEqual(x, wantX) || !reflect.DeepEqual(labels, wantL) {
		t.Errorf("Concat fetched %v %v, want %v %v", x, labels, wantX, wantL)
	}
	if err := c.Fetch([]int{7}, x[:3], labels[:1]); err == nil {
		t.Error("an index past both parts was accepted")
	}
}

// memoryBackend is the CPU backend reporting free device memory, as cuda does.
type memoryBackend struct {
	core.Backend
	free int64
}

func (m memoryBackend) MemoryInfo() (free, total int64, err error) { return m.free, 2 * m.free, nil }
func (memoryBackend) PeakBytes() int64                             { return 0 }
func (memoryBackend) PeakInUseBytes() int64                        { return 0 }
func (memoryBackend) ResetPeak()                                   {}

func TestShouldStage(t *testing.T) {
	b := cpu.New()
	for _, tc := range []struct {
		name string
		b    core.Backend
		mode Staging
		n    int
		want bool
	}{
		{"auto on a backend without memory of its own", b, StageAuto, 90, false},
		{"on, forced", b, StageOn, 90, true},
		{"off", memoryBackend{b, 1 << 40}, StageOff, 90, false},
		{"auto, a quarter of free memory", memoryBackend{b, 4 * 90 * 4 * 4}, StageAuto, 90, true},
		{"auto, more than a quarter", memoryBackend{b, 4*90*4*4 - 1}, StageAuto, 90, false},
		{"auto, beyond maxStagedBytes", memoryBackend{b, 1 << 40}, StageAuto, maxStagedBytes/16 + 1, false},
	} {
		if got := shouldStage(tc.b, tc.mode, tc.n, 4); got != tc.want {
			t.Errorf("%s: shouldStage = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// epochLog is a Mem that records the epochs it is told and adds the epoch to each
// value, as an augmentation redrawn per epoch would change it.
type epochLog struct {
	*Mem
	epoch  int
	epochs []int
}

func (d *epochLog) SetEpoch(e int) { d.epoch = e; d.epochs = append(d.epochs, e) }
func (d *epochLog) Fetch(idx []int, x []float32, labels [][]int) error {
	if err := d.Mem.Fetch(idx, x, labels); err != nil {
		return err
	}
	for i := range x {
		x[i] += float32(d.epoch)
	}
	return nil
}

// TestLoaderServesTheBatchesAsked runs two epochs of uneven batches through a
// staged and a host Loader: every batch's input on the backend and its labels
// must be the rows of the split the indices name, and a split redrawn per epoch is
// told the epoch first and never staged.
func TestLoaderServesTheBatchesAsked(t *testing.T) {
	b := cpu.New()
	d := randomMem(11, []int{2, 3}, 3)
	batches := [][]int{{3, 1, 4}, {10, 5, 9}, {2, 6}, {0}}
	for _, tc := range []struct {
		name      string
		split     Split
		mode      Staging
		staged    bool
		redrawOff float32
	}{
		{"host", d, StageOff, false, 0},
		{"staged", d, StageOn, true, 1},
		{"redrawn", &epochLog{Mem: d}, StageOn, false, 1},
	} {
		l, err := NewLoader(b, tc.split, tc.mode, 4)
		if err != nil {
			t.Fatal(err)
		}
		if (l.staged != nil) != tc.staged {
			t.Errorf("%s: staged %v, want %v", tc.name, l.staged != nil, tc.staged)
		}
		tp := autograd.NewTape(b)
		for epoch := range 2 {
			next, stop := l.Epoch(epoch, batches)
			got := 0
			for fb := range next {
				if fb.Err != nil {
					t.Fatal(fb.Err)
				}
				x := fb.Input(tp)
				vals := make([]float32, x.Value.Size())
				b.Download(vals, x.Value)
				wantX, wantL := rows(d, batches[got])
				if _, redrawn := tc.split.(*epochLog); redrawn {
					for i := range wantX {
						wantX[i] += float32(epoch)
					}
				}
				if want := append([]int{len(batches[got])}, 2, 3); !reflect.DeepEqual([]int(x.Shape()), want) {
					t.Errorf("%s: batch %d has shape %v, want %v", tc.name, got, x.Shape(), want)
				}
				if !reflect.DeepEqual(vals, wantX) || !reflect.DeepEqual(fb.Labels, wantL) || !reflect.DeepEqual(fb.Idx, batches[got]) {
					t.Errorf("%s: epoch %d batch %d: got %v %v, want %v %v", tc.name, epoch, got, vals, fb.Labels, wantX, wantL)
				}
				tp.Reset()
				fb.Done()
				got++
			}
			stop()
			if got != len(batches) {
				t.Errorf("%s: %d batches, want %d", tc.name, got, len(batches))
			}
		}
		if e, ok := tc.split.(*epochLog); ok && !reflect.DeepEqual(e.epochs, []int{0, 1}) {
			t.Errorf("SetEpoch calls %v, want [0 1]", e.epochs)
		}
		l.Close()
	}
}

func TestLoaderReportsAFailedFetch(t *testing.T) {
	boom := errors.New("boom")
	l, err := NewLoader(cpu.New(), failingSplit{randomMem(4, []int{1}, 1), boom}, StageOff, 2)
	if err != nil {
		t.Fatal(err)
	}
	next, stop := l.Epoch(0, [][]int{{0, 1}, {2, 3}})
	defer stop()
	fb := <-next
	if !errors.Is(fb.Err, boom) {
		t.Errorf("first batch error %v, want boom", fb.Err)
	}
	if _, open := <-next; open {
		t.Error("batches kept coming after a failed fetch")
	}
	if _, err := NewLoader(cpu.New(), failingSplit{randomMem(4, []int{1}, 1), boom}, StageOn, 2); !errors.Is(err, boom) || !strings.Contains(err.Error(), "staging") {
		t.Errorf("staging a failing split: %v", err)
	}
}

func tinyVision(t *testing.T) *backbones.Vision {
	t.Helper()
	cfg := backbones.Config{Name: "tiny", Family: backbones.CLIP, ImageSize: 8, PatchSize: 4, Channels: 3, Width: 16,
		Layers: 2, Heads: 2, MLPDim: 32, EmbedDim: 8, ActName: "quick_gelu", Eps: 1e-5}
	v, err := backbones.NewVision(cpu.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	v.InitRandom(5)
	return v
}

// TestEmbedRowsFollowTheExamples: embedding a split chunk by chunk gives each
// example the row the tower gives it alone, in order, with its label; a
// non-finite output names the image.
func TestEmbedRowsFollowTheExamples(t *testing.T) {
	v := tinyVision(t)
	b := v.Params()[0].Value.Backend()
	d := randomMem(7, []int{3, 8, 8}, 4)
	var reports [][2]int
	embeds, pooled, err := Embed(context.Background(), v, d, 3, func(done, total int) { reports = append(reports, [2]int{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	if want := [][2]int{{3, 7}, {6, 7}, {7, 7}}; !reflect.DeepEqual(reports, want) {
		t.Errorf("progress reports %v, want %v", reports, want)
	}
	if embeds.Len() != 7 || pooled.Len() != 7 || embeds.ExShape[0] != 8 || pooled.ExShape[0] != 16 {
		t.Fatalf("embeds %d×%v, pooled %d×%v; want 7×[8], 7×[16]", embeds.Len(), embeds.ExShape, pooled.Len(), pooled.ExShape)
	}
	if !reflect.DeepEqual(embeds.Labels, d.Labels) {
		t.Errorf("labels %v, want %v", embeds.Labels, d.Labels)
	}
	tp := autograd.NewTape(b)
	tp.SetGradEnabled(false)
	per := 3 * 8 * 8
	for i := range 7 {
		out := v.Forward(tp, tp.Input(d.X[i*per:(i+1)*per], 1, 3, 8, 8))
		want := make([]float32, 8)
		b.Download(want, out.Embeds.Value)
		for j, w := range want {
			if g := embeds.X[i*8+j]; math.Abs(float64(g-w)) > 1e-5 {
				t.Fatalf("image %d: embedding[%d] = %v, alone %v", i, j, g, w)
			}
		}
		tp.Reset()
	}
	f, err := Features(context.Background(), v, d, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.X {
		if math.Abs(float64(f.X[i]-embeds.X[i])) > 1e-5 {
			t.Fatalf("Features[%d] = %v, Embed %v", i, f.X[i], embeds.X[i])
		}
	}
	d.X[5*per+10] = float32(math.NaN())
	if _, _, err := Embed(context.Background(), v, d, 3, nil); err == nil || !strings.Contains(err.Error(), "image 5 is not finite") {
		t.Errorf("a NaN pixel in image 5: %v", err)
	}
}

// TestPreprocessConfigFromTheModelFolder: a model folder's preprocessor_config.json
// wins over the tower's defaults.
func TestPreprocessConfigFromTheModelFolder(t *testing.T) {
	v := tinyVision(t)
	cfg, err := PreprocessConfig(&backbones.Model{Vision: v})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CropHeight != 8 || cfg.CropWidth != 8 || cfg.ShortestEdge != 8 {
		t.Errorf("defaults for an 8-pixel tower: %+v", cfg)
	}
	dir := t.TempDir()
	json := `{"crop_size": {"height": 6, "width": 6}, "size": {"shortest_edge": 7}, "do_center_crop": true, "do_resize": true,
		"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3, "rescale_factor": 0.00392156862745098, "do_normalize": true, "do_rescale": true}`
	if err := os.WriteFile(filepath.Join(dir, "preprocessor_config.json"), []byte(json), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg, err = PreprocessConfig(&backbones.Model{Vision: v, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if cfg.CropHeight != 6 || cfg.ShortestEdge != 7 || cfg.Mean[0] != 0.5 {
		t.Errorf("from preprocessor_config.json: %+v", cfg)
	}
}

// blockingSplit's Fetch says it started and then waits to be released.
type blockingSplit struct {
	*Mem
	started, release chan struct{}
}

func (d blockingSplit) Fetch(idx []int, x []float32, labels [][]int) error {
	d.started <- struct{}{}
	<-d.release
	return d.Mem.Fetch(idx, x, labels)
}

// TestLoaderStopWaitsForTheFetch: after stop returns, no fetch of the split is
// under way, so a resumed run may tell the split its epoch (a stopped run's last
// fetch read the epoch while the resumed run set it, a data race).
func TestLoaderStopWaitsForTheFetch(t *testing.T) {
	d := blockingSplit{randomMem(4, []int{1}, 1), make(chan struct{}, 4), make(chan struct{})}
	l, err := NewLoader(cpu.New(), d, StageOff, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, stop := l.Epoch(0, [][]int{{0, 1}, {2, 3}})
	<-d.started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("stop returned while a fetch was under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(d.release)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return after the fetch ended")
	}
}
