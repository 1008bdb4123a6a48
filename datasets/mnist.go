package datasets

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte) and
// the number of dimensions.
const (
	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801
	// maxIDXBytes bounds the payload an IDX header may announce (MNIST's training
	// images are 47 MB); beyond it the header is taken to be corrupt.
	maxIDXBytes = 1 << 31
)

// readIDX reads an IDX file of unsigned bytes, gzip-compressed or not, checking
// the magic number and that the payload is exactly as long as the header says.
func readIDX(file string, magic uint32) (dims []int, data []byte, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("datasets: %s: gzip: %w", file, err)
		}
		defer zr.Close()
		r = zr
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("datasets: %s: reading IDX magic number: %w", file, err)
	}
	if got := binary.BigEndian.Uint32(hdr[:]); got != magic {
		return nil, nil, fmt.Errorf("datasets: %s: IDX magic number %#08x, want %#08x", file, got, magic)
	}
	n := int(hdr[3])
	raw := make([]byte, 4*n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, fmt.Errorf("datasets: %s: reading %d IDX dimensions: %w", file, n, err)
	}
	total := int64(1)
	for i := range n {
		d := int(binary.BigEndian.Uint32(raw[4*i:]))
		dims = append(dims, d)
		total *= int64(d)
		if total > maxIDXBytes {
			return nil, nil, fmt.Errorf("datasets: %s: IDX dimensions %v announce more than %d bytes", file, dims, int64(maxIDXBytes))
		}
	}
	// ReadAll grows with the data actually present, so a lying header costs nothing.
	data, err = io.ReadAll(io.LimitReader(r, total+1))
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: %s: %w", file, err)
	}
	switch {
	case int64(len(data)) < total:
		return nil, nil, fmt.Errorf("datasets: %s: truncated: dimensions %v need %d bytes, file has %d", file, dims, total, len(data))
	case int64(len(data)) > total:
		return nil, nil, fmt.Errorf("datasets: %s: data continues past the %d bytes dimensions %v describe", file, total, dims)
	}
	return dims, data, nil
}

// LoadMNIST reads an MNIST pair of IDX files (images: magic 0x803, n×rows×cols;
// labels: magic 0x801, n), each optionally gzip-compressed. Labels must lie in
// 0..9; classes are "0" … "9".
func LoadMNIST(imagesFile, labelsFile string) (*Dataset, error) {
	idims, pix, err := readIDX(imagesFile, idxImagesMagic)
	if err != nil {
		return nil, err
	}
	ldims, labels, err := readIDX(labelsFile, idxLabelsMagic)
	if err != nil {
		return nil, err
	}
	if idims[0] != ldims[0] {
		return nil, fmt.Errorf("datasets: %s has %d images but %s has %d labels", imagesFile, idims[0], labelsFile, ldims[0])
	}
	rows, cols := idims[1], idims[2]
	if rows == 0 || cols == 0 {
		return nil, fmt.Errorf("datasets: %s: images of %d×%d pixels", imagesFile, rows, cols)
	}
	samples := make([]Sample, len(labels))
	for i, l := range labels {
		if l > 9 {
			return nil, fmt.Errorf("datasets: %s: item %d: label %d out of range [0, 10)", labelsFile, i, l)
		}
		samples[i] = Sample{Source: imagesFile + "#" + strconv.Itoa(i), Labels: []int{int(l)}}
	}
	raw := &rawImages{
		data:   map[string][]byte{imagesFile: pix},
		stride: rows * cols,
		build: func(p []byte) image.Image {
			img := image.NewGray(image.Rect(0, 0, cols, rows))
			copy(img.Pix, p)
			return img
		},
	}
	return &Dataset{Name: "mnist", Classes: numberedClasses(10), Samples: samples, decode: raw.decode}, nil
}

// LoadMNISTDir finds the standard MNIST file names in dir (train-images-idx3-ubyte
// and train-labels-idx1-ubyte, or the t10k- pair for the test set, each with or
// without .gz) and loads them.
func LoadMNISTDir(dir string, train bool) (*Dataset, error) {
	prefix := "t10k"
	if train {
		prefix = "train"
	}
	find := func(stem string) (string, error) {
		for _, name := range []string{stem, stem + ".gz"} {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("datasets: %w", err)
			}
		}
		return "", fmt.Errorf("datasets: %s: neither %s nor %s.gz exists", dir, stem, stem)
	}
	images, err := find(prefix + "-images-idx3-ubyte")
	if err != nil {
		return nil, err
	}
	labels, err := find(prefix + "-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	return LoadMNIST(images, labels)
}
