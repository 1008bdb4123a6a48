// Package safetensors reads and writes the safetensors checkpoint format used for
// every weight file kadapt touches: HF CLIP and timm checkpoints, adapters, and
// fixtures.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON describing
// each tensor's dtype, shape and byte range, then the raw little-endian tensor data.
// Open memory-maps the file so a 600 MB checkpoint is never copied whole into the
// Go heap: conversion functions read straight from the mapping into the caller's
// buffer. The header is validated as strictly as the reference implementation
// (huggingface/safetensors) does before any size taken from it is used, so a
// corrupt or hostile file yields an error naming the file and tensor, never a panic
// or an allocation sized by the file's claims.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/kadapt/kadapt/core"
)

// MaxHeaderSize bounds the JSON header. The reference implementation uses the same
// order of magnitude; a real CLIP ViT-L header is under 100 KiB.
const MaxHeaderSize = 100 << 20

// metadataKey is the reserved header key holding free-form string metadata.
const metadataKey = "__metadata__"

// ErrNotFound is wrapped by lookups of a tensor name the file does not contain.
var ErrNotFound = errors.New("no such tensor")

// TensorInfo describes one stored tensor.
type TensorInfo struct {
	DType string // element type as spelled in the file: "F32", "BF16", "I64", ...
	Shape []int  // dimensions, outermost first; empty for a scalar
}

// NumElements returns the product of the dimensions (1 for a scalar).
func (ti TensorInfo) NumElements() int { return core.Shape(ti.Shape).Size() }

type entry struct {
	name       string
	dtype      dtype
	shape      []int
	numel      int
	begin, end int // byte range within the data section
}

// File is an open, validated safetensors file. Its methods are safe for concurrent
// use; Close waits for conversions in progress.
type File struct {
	path     string
	mu       sync.RWMutex
	buf      []byte // the whole file, mapped; nil once closed
	release  func([]byte) error
	data     []byte // buf after the header
	tensors  map[string]*entry
	names    []string
	metadata map[string]string
}

// Open maps path and validates its header. The returned File must be closed.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close() // the mapping outlives the descriptor
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: file is %d bytes, too short for the 8-byte header length", path, size)
	}
	if uint64(size) > math.MaxInt {
		return nil, fmt.Errorf("%s: file of %d bytes does not fit in memory on this platform", path, size)
	}
	buf, release, err := mapFile(fh, int(size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &File{path: path, buf: buf, release: release}
	if err := f.parse(); err != nil {
		release(buf)
		return nil, err
	}
	return f, nil
}

func (f *File) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{f.path}, args...)...)
}

// parse validates the header and fills the tensor table. It reads from the mapping
// under a fault guard because another process may truncate the file underneath.
func (f *File) parse() error {
	return withFaultGuard(f.path, f.parseHeader)
}

func (f *File) parseHeader() error {
	n := binary.LittleEndian.Uint64(f.buf)
	avail := uint64(len(f.buf) - 8)
	// The first eight bytes of any other file (a PyTorch zip, a pickle) read as an
	// absurd length, or as a header that is not JSON: say what the file is not.
	if n > MaxHeaderSize {
		return f.errorf("not a safetensors file: header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if n > avail {
		return f.errorf("header length %d exceeds the %d bytes after the length prefix", n, avail)
	}
	header := f.buf[8 : 8+n]
	f.data = f.buf[8+n:]
	if !utf8.Valid(header) {
		return f.errorf("not a safetensors file: header is not valid UTF-8")
	}
	if len(header) == 0 || header[0] != '{' {
		return f.errorf("not a safetensors file: header does not start with '{'")
	}

	dec := json.NewDecoder(bytes.NewReader(header))
	dec.DisallowUnknownFields()
	if _, err := dec.Token(); err != nil { // the '{' checked above
		return f.errorf("header: %v", err)
	}
	f.tensors = make(map[string]*entry)
	seenMetadata := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return f.errorf("header: %v", err)
		}
		key := tok.(string) // object keys are always strings once More and Token succeed
		if key == metadataKey {
			if seenMetadata {
				return f.errorf("header: duplicate key %q", key)
			}
			seenMetadata = true
			if err := f.parseMetadata(dec); err != nil {
				return err
			}
			continue
		}
		if _, dup := f.tensors[key]; dup {
			return f.errorf("header: duplicate tensor %q", key)
		}
		e, err := f.parseEntry(dec, key)
		if err != nil {
			return err
		}
		f.tensors[key] = e
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return f.errorf("header: %v", err)
	}
	// Only the space padding writers add to align the data section may follow.
	if rest := header[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return f.errorf("header: unexpected data after the JSON object")
	}
	return f.checkLayout()
}

func (f *File) parseMetadata(dec *json.Decoder) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return f.errorf("header: %q: %v", metadataKey, err)
	}
	if string(raw) == "null" {
		return nil
	}
	var md map[string]string
	if err := json.Unmarshal(raw, &md); err != nil {
		return f.errorf("header: %q must map strings to strings: %v", metadataKey, err)
	}
	f.metadata = md
	return nil
}

// rawEntry uses pointers to tell a missing field from a zero one.
type rawEntry struct {
	DType       *string            `json:"dtype"`
	Shape       *[]json.RawMessage `json:"shape"`
	DataOffsets *[]json.RawMessage `json:"data_offsets"`
}

func (f *File) parseEntry(dec *json.Decoder, name string) (*entry, error) {
	var r rawEntry
	if err := dec.Decode(&r); err != nil {
		return nil, f.errorf("tensor %q: %v", name, err)
	}
	switch {
	case r.DType == nil:
		return nil, f.errorf("tensor %q: missing dtype", name)
	case r.Shape == nil:
		return nil, f.errorf("tensor %q: missing shape", name)
	case r.DataOffsets == nil:
		return nil, f.errorf("tensor %q: missing data_offsets", name)
	}
	dt, ok := dtypes[*r.DType]
	if !ok {
		return nil, f.errorf("tensor %q: unknown dtype %q", name, *r.DType)
	}
	// Every size below is bounded by the data section before it is used, so nothing
	// is allocated from a claim the file cannot back.
	dataLen := uint64(len(f.data))
	shape := make([]int, len(*r.Shape))
	numel := uint64(1)
	for i, num := range *r.Shape {
		d, err := parseUint(num)
		if err != nil {
			return nil, f.errorf("tensor %q: shape %v: dimension %d: %v", name, fmtList(*r.Shape), i, err)
		}
		hi, lo := bits.Mul64(numel, d)
		if hi != 0 || lo > math.MaxInt64 {
			return nil, f.errorf("tensor %q: shape %v: element count overflows", name, fmtList(*r.Shape))
		}
		if d > math.MaxInt {
			return nil, f.errorf("tensor %q: shape %v: dimension %d too large for this platform", name, fmtList(*r.Shape), i)
		}
		numel = lo
		shape[i] = int(d)
	}
	hi, nbits := bits.Mul64(numel, dt.bits)
	if hi != 0 {
		return nil, f.errorf("tensor %q: shape %v: byte size overflows", name, fmtList(*r.Shape))
	}
	if nbits%8 != 0 {
		return nil, f.errorf("tensor %q: %d elements of %s do not fill whole bytes", name, numel, dt.name)
	}
	nbytes := nbits / 8
	if len(*r.DataOffsets) != 2 {
		return nil, f.errorf("tensor %q: data_offsets must be [begin, end], got %d values", name, len(*r.DataOffsets))
	}
	begin, err1 := parseUint((*r.DataOffsets)[0])
	end, err2 := parseUint((*r.DataOffsets)[1])
	if err := errors.Join(err1, err2); err != nil {
		return nil, f.errorf("tensor %q: data_offsets %v: %v", name, fmtList(*r.DataOffsets), err)
	}
	if begin > end {
		return nil, f.errorf("tensor %q: data_offsets [%d,%d] are reversed", name, begin, end)
	}
	if end > dataLen {
		return nil, f.errorf("tensor %q: data_offsets [%d,%d] exceed data section of %d bytes", name, begin, end, dataLen)
	}
	if end-begin != nbytes {
		return nil, f.errorf("tensor %q: data_offsets [%d,%d] span %d bytes but %s%v needs %d",
			name, begin, end, end-begin, dt.name, shape, nbytes)
	}
	return &entry{name: name, dtype: dt, shape: shape, numel: int(numel), begin: int(begin), end: int(end)}, nil
}

// fmtList renders a JSON array's elements for error messages.
func fmtList(list []json.RawMessage) string {
	parts := make([]string, len(list))
	for i, r := range list {
		parts[i] = string(r)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// parseUint accepts only non-negative JSON integer literals, rejecting 1.0, 1e3,
// -1 and "1" rather than guessing.
func parseUint(num json.RawMessage) (uint64, error) {
	s := string(num)
	if s == "" || s[0] == '-' {
		return 0, fmt.Errorf("%s is negative", s)
	}
	var v uint64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s is not an integer", s)
		}
		hi, lo := bits.Mul64(v, 10)
		lo, carry := bits.Add64(lo, uint64(c-'0'), 0)
		if hi != 0 || carry != 0 {
			return 0, fmt.Errorf("%s is out of range", s)
		}
		v = lo
	}
	return v, nil
}

// checkLayout requires the tensors to tile the data section exactly, as the
// reference implementation does: no overlaps (two tensors aliasing bytes) and no
// holes (room for a second, hidden payload).
func (f *File) checkLayout() error {
	order := make([]*entry, 0, len(f.tensors))
	for _, e := range f.tensors {
		order = append(order, e)
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.name < b.name
	})
	pos := 0
	var prev *entry
	for _, e := range order {
		switch {
		case e.begin < pos:
			return f.errorf("tensor %q: data_offsets [%d,%d] overlap tensor %q at [%d,%d]",
				e.name, e.begin, e.end, prev.name, prev.begin, prev.end)
		case e.begin > pos:
			return f.errorf("tensor %q: data_offsets [%d,%d] leave bytes [%d,%d) of the data section unused",
				e.name, e.begin, e.end, pos, e.begin)
		}
		pos = e.end
		prev = e
	}
	if pos != len(f.data) {
		return f.errorf("tensors cover %d bytes but the data section has %d", pos, len(f.data))
	}
	f.names = make([]string, 0, len(order))
	for name := range f.tensors {
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info describes the named tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	e, ok := f.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	return TensorInfo{DType: e.dtype.name, Shape: slices.Clone(e.shape)}, true
}

// Metadata returns a copy of the header's __metadata__ map (nil if absent).
func (f *File) Metadata() map[string]string {
	if f.metadata == nil {
		return nil
	}
	md := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		md[k] = v
	}
	return md
}

// Float32s returns the named tensor converted to a fresh float32 slice. F32, F16,
// BF16 and F64 convert (F64 rounds to nearest); other dtypes are an error.
func (f *File) Float32s(name string) ([]float32, error) {
	e, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	dst := make([]float32, e.numel)
	if err := f.Float32sInto(name, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// Float32sInto converts the named tensor into dst, which must hold exactly its
// element count. It allocates nothing, so loaders can fill upload buffers directly.
func (f *File) Float32sInto(name string, dst []float32) error {
	return f.convert(name, len(dst), func(raw []byte, dt string) error {
		if !decodeFloat32(dst, raw, dt) {
			return f.errorf("tensor %q: dtype %s is not a float type", name, dt)
		}
		return nil
	})
}

// Float64s returns the named float tensor widened exactly to float64, for reference
// outputs stored in double precision.
func (f *File) Float64s(name string) ([]float64, error) {
	e, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	dst := make([]float64, e.numel)
	err = f.convert(name, len(dst), func(raw []byte, dt string) error {
		if !decodeFloat64(dst, raw, dt) {
			return f.errorf("tensor %q: dtype %s is not a float type", name, dt)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

// Int64s returns the named integer or BOOL tensor as int64s (token ids, labels).
// A U64 value above math.MaxInt64 is an error.
func (f *File) Int64s(name string) ([]int64, error) {
	e, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	dst := make([]int64, e.numel)
	err = f.convert(name, len(dst), func(raw []byte, dt string) error {
		bad, ok := decodeInt64(dst, raw, dt)
		if !ok {
			return f.errorf("tensor %q: dtype %s is not an integer type", name, dt)
		}
		if bad >= 0 {
			return f.errorf("tensor %q: element %d does not fit an int64", name, bad)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

func (f *File) lookup(name string) (*entry, error) {
	e, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	return e, nil
}

// convert hands fn the named tensor's bytes after checking the destination length,
// holding the read lock so Close cannot unmap them mid-copy.
func (f *File) convert(name string, n int, fn func(raw []byte, dt string) error) error {
	e, err := f.lookup(name)
	if err != nil {
		return err
	}
	if n != e.numel {
		return f.errorf("tensor %q: destination holds %d elements, tensor %v has %d", name, n, e.shape, e.numel)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.buf == nil {
		return f.errorf("file is closed")
	}
	raw := f.data[e.begin:e.end]
	return withFaultGuard(f.path, func() error { return fn(raw, e.dtype.name) })
}

// withFaultGuard runs fn with faults on the mapping (the file was truncated after
// Open, or its disk failed) turned into an error instead of a crash of the process.
func withFaultGuard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		r := recover()
		if r == nil {
			return
		}
		if fault, ok := r.(interface{ Addr() uintptr }); ok {
			err = fmt.Errorf("%s: reading mapped data failed (file changed or unreadable): %v", path, fault)
			return
		}
		panic(r)
	}()
	return fn()
}

// Close unmaps the file. Later conversions return an error.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buf == nil {
		return nil
	}
	err := f.release(f.buf)
	f.buf, f.data = nil, nil
	if err != nil {
		return f.errorf("unmap: %v", err)
	}
	return nil
}
