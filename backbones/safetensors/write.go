package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/kadapt/kadapt/host/atomicfile"
)

// Tensor is a float32 tensor for WriteFile.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Writer streams float32 tensors into a new safetensors file.
//
// The header, which precedes the data, depends on every tensor, yet tensors must not
// be buffered in memory (a checkpoint is hundreds of MB). So Add appends each
// tensor's bytes to a scratch file beside the destination, and Close writes the
// length and header into a second temporary file, appends the scratch file to it
// with io.Copy (copy_file_range on Linux: the kernel moves the bytes, or shares
// extents on reflink file systems), fsyncs it and renames it over the
// destination. A crash at any point leaves path either absent or holding its old
// contents, plus at worst stray dot-files named after it.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	path     string
	metadata map[string]string
	scratch  *os.File
	w        *bufio.Writer
	size     uint64 // bytes added so far
	entries  []wentry
	names    map[string]bool
	enc      []byte // reusable encoding buffer
	err      error  // first write failure; sticky
	done     bool
}

type wentry struct {
	name       string
	shape      []int
	begin, end uint64
}

// Create starts writing a file that will appear at path on Close. metadata may be nil.
func Create(path string, metadata map[string]string) (*Writer, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	scratch, err := os.CreateTemp(dir, "."+base+".data-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	md := make(map[string]string, len(metadata))
	for k, v := range metadata {
		// JSON would silently replace invalid UTF-8, changing what was asked for.
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			scratch.Close()
			os.Remove(scratch.Name())
			return nil, fmt.Errorf("%s: metadata key %q: key and value must be valid UTF-8", path, k)
		}
		md[k] = v
	}
	return &Writer{
		path:     path,
		metadata: md,
		scratch:  scratch,
		w:        bufio.NewWriterSize(scratch, 1<<20),
		names:    make(map[string]bool),
	}, nil
}

func (w *Writer) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{w.path}, args...)...)
}

// Add appends a float32 tensor, stored as F32. len(data) must equal the product of
// shape; a nil or empty shape is a scalar.
func (w *Writer) Add(name string, shape []int, data []float32) error {
	switch {
	case w.done:
		return w.errorf("tensor %q: writer already closed", name)
	case w.err != nil:
		return w.err
	case name == metadataKey:
		return w.errorf("tensor name %q is reserved", name)
	case w.names[name]:
		return w.errorf("tensor %q: added twice", name)
	case !utf8.ValidString(name):
		return w.errorf("tensor %q: name is not valid UTF-8", name)
	}
	numel := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return w.errorf("tensor %q: shape %v has a negative dimension", name, shape)
		}
		hi, lo := bits.Mul64(numel, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return w.errorf("tensor %q: shape %v overflows", name, shape)
		}
		numel = lo
	}
	if numel != uint64(len(data)) {
		return w.errorf("tensor %q: shape %v needs %d values, got %d", name, shape, numel, len(data))
	}
	if w.enc == nil {
		w.enc = make([]byte, 64<<10)
	}
	for rest := data; len(rest) > 0; {
		n := min(len(rest), len(w.enc)/4)
		for i, v := range rest[:n] {
			binary.LittleEndian.PutUint32(w.enc[4*i:], math.Float32bits(v))
		}
		if _, err := w.w.Write(w.enc[:4*n]); err != nil {
			w.err = w.errorf("tensor %q: %v", name, err)
			return w.err
		}
		rest = rest[n:]
	}
	begin := w.size
	w.size += 4 * numel
	w.entries = append(w.entries, wentry{name: name, shape: slices.Clone(shape), begin: begin, end: w.size})
	w.names[name] = true
	return nil
}

// header renders the JSON header padded with spaces to a multiple of 8 bytes, as
// the reference writers do, so the data section starts aligned.
func (w *Writer) header() []byte {
	b := []byte{'{'}
	str := func(s string) {
		q, _ := json.Marshal(s) // a string always marshals
		b = append(b, q...)
	}
	if len(w.metadata) > 0 {
		str(metadataKey)
		b = append(b, ":{"...)
		keys := make([]string, 0, len(w.metadata))
		for k := range w.metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			str(k)
			b = append(b, ':')
			str(w.metadata[k])
		}
		b = append(b, '}')
	}
	for i, e := range w.entries {
		if i > 0 || len(w.metadata) > 0 {
			b = append(b, ',')
		}
		str(e.name)
		b = append(b, `:{"dtype":"F32","shape":[`...)
		for j, d := range e.shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendUint(b, e.begin, 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, e.end, 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	return b
}

// Close assembles the file, syncs it and renames it into place. On failure nothing
// appears at path and the temporary files are removed.
func (w *Writer) Close() (err error) {
	if w.done {
		return w.errorf("writer already closed")
	}
	defer w.Abort() // removes the scratch file in every case
	if w.err != nil {
		return w.err
	}
	if err := w.w.Flush(); err != nil {
		return w.errorf("%v", err)
	}
	hdr := w.header()
	if len(hdr) > MaxHeaderSize {
		return w.errorf("header of %d bytes exceeds the %d-byte limit readers accept", len(hdr), MaxHeaderSize)
	}
	out, err := atomicfile.Create(w.path)
	if err != nil {
		return w.errorf("%v", err)
	}
	defer func() {
		if err != nil {
			out.Cleanup()
		}
	}()
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(hdr)))
	if _, err := out.Write(prefix[:]); err != nil {
		return w.errorf("%v", err)
	}
	if _, err := out.Write(hdr); err != nil {
		return w.errorf("%v", err)
	}
	if _, err := w.scratch.Seek(0, io.SeekStart); err != nil {
		return w.errorf("%v", err)
	}
	n, err := io.Copy(out, w.scratch)
	if err != nil {
		return w.errorf("%v", err)
	}
	if uint64(n) != w.size {
		return w.errorf("copied %d data bytes, expected %d", n, w.size)
	}
	if err := out.Commit(); err != nil {
		return w.errorf("%v", err)
	}
	return nil
}

// Abort discards the file being written. It is a no-op after Close or Abort.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	name := w.scratch.Name()
	w.scratch.Close()
	os.Remove(name)
}

// WriteFile writes tensors (stored as F32, in name order) and metadata to path
// atomically.
func WriteFile(path string, tensors map[string]Tensor, metadata map[string]string) error {
	w, err := Create(path, metadata)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := tensors[name]
		if err := w.Add(name, t.Shape, t.Data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}
