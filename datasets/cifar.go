package datasets

import (
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	cifarSide   = 32
	cifarPixels = cifarSide * cifarSide * 3
)

// cifar10Classes are the names in CIFAR-10's batches.meta.txt, used when that file
// is missing.
var cifar10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// CIFAR100Labels selects which of CIFAR-100's two labels becomes Sample.Labels.
type CIFAR100Labels int

const (
	FineLabels   CIFAR100Labels = iota // the 100 classes
	CoarseLabels                       // the 20 superclasses
)

// rawImages holds raw-format records in memory and serves them by Source
// ("<file>#<record>").
type rawImages struct {
	data   map[string][]byte // file → whole file
	offset int               // where pixels start in a record
	stride int               // record size
	build  func(pix []byte) image.Image
}

func (r *rawImages) decode(s Sample) (image.Image, error) {
	i := strings.LastIndexByte(s.Source, '#')
	if i < 0 {
		return nil, fmt.Errorf("datasets: %s: not a raw record reference (<file>#<record>)", s.Source)
	}
	file := s.Source[:i]
	rec, err := strconv.Atoi(s.Source[i+1:])
	data, ok := r.data[file]
	if err != nil || !ok || rec < 0 || (rec+1)*r.stride > len(data) {
		return nil, fmt.Errorf("datasets: %s: no such record in this dataset", s.Source)
	}
	start := rec*r.stride + r.offset
	return r.build(data[start : start+r.stride-r.offset]), nil
}

// cifarImage converts CIFAR's planar layout (1024 red, 1024 green, 1024 blue bytes,
// rows top to bottom) to interleaved RGBA.
func cifarImage(pix []byte) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, cifarSide, cifarSide))
	const plane = cifarSide * cifarSide
	for p := range plane {
		img.Pix[4*p] = pix[p]
		img.Pix[4*p+1] = pix[plane+p]
		img.Pix[4*p+2] = pix[2*plane+p]
		img.Pix[4*p+3] = 0xff
	}
	return img
}

// readNames reads a CIFAR label-names file (one per line, blank lines dropped); a
// missing file yields fallback. A file with the wrong count is an error.
func readNames(file string, want int, fallback []string) ([]string, error) {
	names, err := ReadLabelmap(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fallback, nil
	case err != nil:
		return nil, err
	case len(names) != want:
		return nil, fmt.Errorf("datasets: %s names %d classes, want %d", file, len(names), want)
	}
	return names, nil
}

// loadCIFARFiles reads fixed-size records: one byte per label kind (limits[k] is
// that kind's class count) then 3072 pixel bytes. labelByte picks the label kept.
func loadCIFARFiles(files []string, limits []int, labelByte int) ([]Sample, *rawImages, error) {
	raw := &rawImages{data: map[string][]byte{}, offset: len(limits), stride: len(limits) + cifarPixels, build: cifarImage}
	var samples []Sample
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, fmt.Errorf("datasets: %w", err)
		}
		if len(data) == 0 || len(data)%raw.stride != 0 {
			return nil, nil, fmt.Errorf("datasets: %s: %d bytes is not a whole number of %d-byte records (record %d is cut short)",
				file, len(data), raw.stride, len(data)/raw.stride)
		}
		for rec := range len(data) / raw.stride {
			for k, n := range limits {
				if l := int(data[rec*raw.stride+k]); l >= n {
					return nil, nil, fmt.Errorf("datasets: %s: record %d: label byte %d is %d, out of range [0, %d)", file, rec, k, l, n)
				}
			}
			label := int(data[rec*raw.stride+labelByte])
			samples = append(samples, Sample{Source: file + "#" + strconv.Itoa(rec), Labels: []int{label}})
		}
		raw.data[file] = data
	}
	return samples, raw, nil
}

// LoadCIFAR10 reads the CIFAR-10 binary version from dir: data_batch_1.bin …
// data_batch_5.bin for training (every data_batch_*.bin present, in numeric order)
// or test_batch.bin, each record a label byte and 3072 pixel bytes. Class names
// come from batches.meta.txt when present.
func LoadCIFAR10(dir string, train bool) (*Dataset, error) {
	var files []string
	if train {
		matches, err := filepath.Glob(filepath.Join(dir, "data_batch_*.bin"))
		if err != nil {
			return nil, fmt.Errorf("datasets: %w", err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("datasets: no CIFAR-10 training batches (data_batch_*.bin) in %s", dir)
		}
		sort.Slice(matches, func(i, j int) bool { return batchNumber(matches[i]) < batchNumber(matches[j]) })
		files = matches
	} else {
		files = []string{filepath.Join(dir, "test_batch.bin")}
	}
	classes, err := readNames(filepath.Join(dir, "batches.meta.txt"), 10, cifar10Classes)
	if err != nil {
		return nil, err
	}
	samples, raw, err := loadCIFARFiles(files, []int{10}, 0)
	if err != nil {
		return nil, err
	}
	return &Dataset{Name: "cifar-10", Classes: classes, Samples: samples, decode: raw.decode}, nil
}

func batchNumber(path string) int {
	s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "data_batch_"), ".bin")
	n, err := strconv.Atoi(s)
	if err != nil {
		return 1 << 30
	}
	return n
}

// LoadCIFAR100 reads the CIFAR-100 binary version from dir: train.bin or test.bin,
// each record a coarse label byte, a fine label byte and 3072 pixel bytes. which
// picks the label kept in Sample.Labels. Class names come from fine_label_names.txt
// or coarse_label_names.txt when present, else they are the label numbers.
func LoadCIFAR100(dir string, train bool, which CIFAR100Labels) (*Dataset, error) {
	file := filepath.Join(dir, "test.bin")
	if train {
		file = filepath.Join(dir, "train.bin")
	}
	labelByte, numClasses, namesFile := 1, 100, "fine_label_names.txt"
	switch which {
	case FineLabels:
	case CoarseLabels:
		labelByte, numClasses, namesFile = 0, 20, "coarse_label_names.txt"
	default:
		return nil, fmt.Errorf("datasets: unknown CIFAR-100 label kind %d", which)
	}
	classes, err := readNames(filepath.Join(dir, namesFile), numClasses, numberedClasses(numClasses))
	if err != nil {
		return nil, err
	}
	samples, raw, err := loadCIFARFiles([]string{file}, []int{20, 100}, labelByte)
	if err != nil {
		return nil, err
	}
	return &Dataset{Name: "cifar-100", Classes: classes, Samples: samples, decode: raw.decode}, nil
}
