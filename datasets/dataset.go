package datasets

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/kadapt/kadapt/backbones/preprocess"
)

// Limits on what one encoded image may cost. Index files and archives come from
// the network, so a lying header must produce an error, not a multi-gigabyte
// allocation.
const (
	// MaxImagePixels bounds width·height of a decoded image (64 Mpx, 192 MiB as
	// RGB): the decoder's own bound, checked on the header before it allocates.
	MaxImagePixels = preprocess.MaxPixels
	// MaxEncodedBytes bounds the encoded size of one image file or zip member.
	MaxEncodedBytes = 64 << 20
)

// Sample is one image and the indices of its classes (one for multi-class data,
// any number, possibly none, for multi-label data).
type Sample struct {
	// Source locates the encoded image: a file path, or a zip archive's path, "@"
	// and the member's name inside it (the vision-datasets convention). Raw formats
	// held in memory use "<file>#<record>" (CIFAR, MNIST).
	Source string
	Labels []int
}

// Dataset is a list of labelled samples with access to their images. Subsets made
// with Subset share the parent's open archives; Close releases them.
type Dataset struct {
	Name       string
	Classes    []string
	MultiLabel bool
	Samples    []Sample

	// open returns the encoded bytes of a sample; nil means plain files and zip
	// members opened without a cache.
	open func(Sample) (io.ReadCloser, error)
	// decode builds the image directly for raw formats that have no encoded form.
	decode func(Sample) (image.Image, error)
	// closer releases what open holds (cached zip readers).
	closer io.Closer
}

// Relabel returns d with its labels indexing classes instead of d.Classes, mapped
// by name: a test split whose classes differ from the training split's (a class
// missing from it, or listed in another order) is scored against the training
// classes, which is what the head predicts. A class of d that classes lacks is an
// error naming it, found before training rather than at test time. When the
// lists are equal d itself is returned.
func (d *Dataset) Relabel(classes []string) (*Dataset, error) {
	if slices.Equal(d.Classes, classes) {
		return d, nil
	}
	index := make(map[string]int, len(classes))
	for i, c := range classes {
		index[c] = i
	}
	to := make([]int, len(d.Classes))
	var missing []string
	for i, c := range d.Classes {
		j, ok := index[c]
		if !ok {
			j = -1
		}
		to[i] = j
	}
	used := make([]bool, len(d.Classes))
	for _, s := range d.Samples {
		for _, l := range s.Labels {
			if l >= 0 && l < len(used) {
				used[l] = true
			}
		}
	}
	for i, j := range to {
		// A class without samples (a labelmap entry) needs no place in classes.
		if j < 0 && used[i] {
			missing = append(missing, d.Classes[i])
		}
	}
	if len(missing) > 0 {
		shown := missing[:min(len(missing), 10)]
		return nil, fmt.Errorf("datasets: %s has images of %d class(es) the training split lacks: %s; class lists must agree across splits",
			d.Name, len(missing), strings.Join(shown, ", "))
	}
	samples := make([]Sample, len(d.Samples))
	for i, s := range d.Samples {
		labels := make([]int, len(s.Labels))
		for k, l := range s.Labels {
			if l < 0 || l >= len(to) {
				return nil, fmt.Errorf("datasets: %s: sample %d (%s): label %d outside its %d classes", d.Name, i, s.Source, l, len(d.Classes))
			}
			labels[k] = to[l]
		}
		samples[i] = Sample{Source: s.Source, Labels: labels}
	}
	out := d.Subset(samples)
	out.Classes = classes
	return out, nil
}

// Len returns the number of samples.
func (d *Dataset) Len() int { return len(d.Samples) }

// Subset returns a dataset with d's name, classes and image access over samples,
// which are normally drawn from d.Samples (FewShot, SplitVal).
func (d *Dataset) Subset(samples []Sample) *Dataset {
	return &Dataset{
		Name:       d.Name,
		Classes:    d.Classes,
		MultiLabel: d.MultiLabel,
		Samples:    samples,
		open:       d.open,
		decode:     d.decode,
		closer:     d.closer,
	}
}

// Close releases the archives held open for reading samples. The dataset and every
// Subset of it may still be used afterwards; archives are reopened on demand.
func (d *Dataset) Close() error {
	if d.closer == nil {
		return nil
	}
	return d.closer.Close()
}

func (d *Dataset) sample(i int) (Sample, error) {
	if i < 0 || i >= len(d.Samples) {
		return Sample{}, fmt.Errorf("datasets: %s: sample %d out of range [0, %d)", d.Name, i, len(d.Samples))
	}
	return d.Samples[i], nil
}

// Open returns the encoded bytes of sample i: the file or zip member it names. For
// raw formats (CIFAR, MNIST) the image is encoded as PNG on the fly so that every
// dataset offers the same byte-level access.
func (d *Dataset) Open(i int) (io.ReadCloser, error) {
	s, err := d.sample(i)
	if err != nil {
		return nil, err
	}
	if d.decode != nil && d.open == nil {
		img, err := d.decode(s)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return nil, fmt.Errorf("datasets: %s: encode png: %w", s.Source, err)
		}
		return io.NopCloser(&buf), nil
	}
	if d.open != nil {
		return d.open(s)
	}
	return openUncached(s.Source)
}

// Image returns sample i decoded: JPEG, PNG, GIF, BMP, TIFF and WebP files by
// preprocess.DecodeBytes, the one decoder of the project, which gives the pixels
// PIL's Image.open(...).convert("RGB") gives (an *preprocess.RGB); CIFAR and MNIST
// as an *image.RGBA or *image.Gray built directly from their raw bytes.
func (d *Dataset) Image(i int) (image.Image, error) {
	s, err := d.sample(i)
	if err != nil {
		return nil, err
	}
	if d.decode != nil {
		return d.decode(s)
	}
	rc, err := d.Open(i)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return decodeImage(rc, s.Source)
}

// decodeImage reads at most MaxEncodedBytes, a dataset's bound on one file, before
// handing the bytes to the decoder (which checks the header against MaxImagePixels).
func decodeImage(r io.Reader, source string) (image.Image, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxEncodedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: read: %w", source, err)
	}
	if len(data) > MaxEncodedBytes {
		return nil, fmt.Errorf("datasets: %s: encoded image larger than %d bytes", source, MaxEncodedBytes)
	}
	return preprocess.DecodeBytes(data, source) // its errors name source
}

// splitZipSource splits "dir/archive.zip@member/path.jpg" at the archive's name.
// Matching ".zip@" rather than the first "@" keeps paths with "@" in folder names
// working. The match folds ASCII case only, on the bytes themselves: lower-casing
// the string first changes its length (invalid UTF-8 becomes U+FFFD, "İ" changes
// width), so an offset found there would split the original in the wrong place.
func splitZipSource(source string) (archive, member string, ok bool) {
	const sep = ".zip@"
	for i := 0; i+len(sep) <= len(source); i++ {
		j := 0
		for j < len(sep) && asciiLower(source[i+j]) == sep[j] {
			j++
		}
		if j == len(sep) {
			return source[:i+4], source[i+5:], true
		}
	}
	return "", "", false
}

func asciiLower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}

// openFile opens an image file named by a dataset. Only regular files are read:
// a manifest naming a FIFO hung the run, and /dev/zero was read up to the size
// cap. The first check comes before opening (opening a FIFO blocks); the second,
// on the open file, closes the gap between the two.
func openFile(path string) (io.ReadCloser, error) {
	if err := checkRegular(path, os.Stat); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	if err := checkRegular(path, func(string) (os.FileInfo, error) { return f.Stat() }); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkRegular(path string, stat func(string) (os.FileInfo, error)) error {
	fi, err := stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("datasets: %w", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("datasets: %s is not a regular file (%s); images must be files", path, fi.Mode().Type())
	case fi.Size() > MaxEncodedBytes:
		return fmt.Errorf("datasets: %s: %d bytes, more than the %d an image may have", path, fi.Size(), MaxEncodedBytes)
	}
	return nil
}

func openUncached(source string) (io.ReadCloser, error) {
	archive, member, ok := splitZipSource(source)
	if !ok {
		return openFile(source)
	}
	a := openArchive(archive)
	if a.err != nil {
		return nil, a.err
	}
	rc, err := a.openMember(member)
	if err != nil {
		a.rc.Close()
		return nil, err
	}
	return &closeBoth{ReadCloser: rc, also: a.rc}, nil
}

type closeBoth struct {
	io.ReadCloser
	also io.Closer
}

func (c *closeBoth) Close() error {
	return errors.Join(c.ReadCloser.Close(), c.also.Close())
}

// archive is one open zip file with its members indexed by name; vision-datasets
// archives hold up to 262,144 members, so a linear scan per image is not an option.
type archive struct {
	path    string
	rc      *zip.ReadCloser
	members map[string]*zip.File
	err     error
}

func openArchive(path string) *archive {
	a := &archive{path: path}
	rc, err := zip.OpenReader(path)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// Member names are only looked up, never extracted, so insecure names are
		// harmless here.
		a.err = fmt.Errorf("datasets: open archive %s: %w", path, err)
		return a
	}
	a.rc = rc
	a.members = make(map[string]*zip.File, len(rc.File))
	for _, f := range rc.File {
		a.members[f.Name] = f
	}
	return a
}

func (a *archive) openMember(name string) (io.ReadCloser, error) {
	f, ok := a.members[name]
	if !ok {
		// Index files written on Windows use backslashes; zip names never do.
		f, ok = a.members[strings.ReplaceAll(name, `\`, "/")]
	}
	if !ok {
		return nil, fmt.Errorf("datasets: archive %s has no member %q", a.path, name)
	}
	if f.UncompressedSize64 > MaxEncodedBytes {
		return nil, fmt.Errorf("datasets: archive %s: member %q claims %d bytes, more than %d",
			a.path, name, f.UncompressedSize64, MaxEncodedBytes)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("datasets: archive %s: member %q: %w", a.path, name, err)
	}
	return rc, nil
}

// zipCache keeps every archive a dataset touches open, so reading 50,000 members
// parses each central directory once. It is safe for concurrent use: zip members
// read through ReadAt on the shared file.
type zipCache struct {
	mu       sync.Mutex
	archives map[string]*archive
}

func newZipCache() *zipCache { return &zipCache{archives: make(map[string]*archive)} }

func (c *zipCache) open(s Sample) (io.ReadCloser, error) {
	path, member, ok := splitZipSource(s.Source)
	if !ok {
		return openFile(s.Source)
	}
	c.mu.Lock()
	a, ok := c.archives[path]
	if !ok || a.err != nil {
		// A failed open is retried next time: the archive may still be downloading.
		a = openArchive(path)
		c.archives[path] = a
	}
	c.mu.Unlock()
	if a.err != nil {
		return nil, a.err
	}
	return a.openMember(member)
}

// Close closes every cached archive. Readers already handed out keep working only
// until then.
func (c *zipCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for path, a := range c.archives {
		if a.rc != nil {
			errs = append(errs, a.rc.Close())
		}
		delete(c.archives, path)
	}
	return errors.Join(errs...)
}

// FromFiles is an unlabelled dataset of the image files at paths, in order (the
// images given to `host embed`, `preprocess` and `zeroshot`).
func FromFiles(paths []string) *Dataset {
	samples := make([]Sample, len(paths))
	for i, p := range paths {
		samples[i] = Sample{Source: p}
	}
	return &Dataset{Name: "files", Samples: samples}
}

// newFileDataset returns a dataset whose samples are files or zip members.
func newFileDataset(name string, classes []string, multiLabel bool, samples []Sample) *Dataset {
	c := newZipCache()
	return &Dataset{Name: name, Classes: classes, MultiLabel: multiLabel, Samples: samples, open: c.open, closer: c}
}
