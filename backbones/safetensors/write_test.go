package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestRoundTrip(t *testing.T) {
	nan := float32(math.NaN())
	tensors := map[string]Tensor{
		"vision_model.embeddings.patch_embedding.weight": {Shape: []int{2, 3, 2, 2}, Data: make([]float32, 24)},
		"special": {Shape: []int{6}, Data: []float32{nan, float32(math.Inf(1)), float32(math.Inf(-1)),
			float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32}},
		"scalar":    {Shape: nil, Data: []float32{3.25}},
		"empty":     {Shape: []int{0, 7}, Data: nil},
		"odd":       {Shape: []int{1, 3}, Data: []float32{1, 2, 3}},
		"ünïcødé":   {Shape: []int{1}, Data: []float32{-1}},
		`quote"<&>`: {Shape: []int{1}, Data: []float32{5}},
	}
	for i := range tensors["vision_model.embeddings.patch_embedding.weight"].Data {
		tensors["vision_model.embeddings.patch_embedding.weight"].Data[i] = float32(i)*0.5 - 3
	}
	md := map[string]string{"format": "pt", "kadapt": `{"method":"lora"}`}
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	if err := WriteFile(path, tensors, md); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"out.safetensors"}) {
		t.Errorf("directory holds %v, want only the output", got)
	}

	// Check the layout by hand: aligned data start, JSON header as the format says.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	if len(hdr) != len(tensors)+1 {
		t.Errorf("header has %d keys, want %d", len(hdr), len(tensors)+1)
	}
	if want := uint64(4 * (24 + 6 + 1 + 0 + 3 + 1 + 1)); uint64(len(raw))-8-n != want {
		t.Errorf("data section is %d bytes, want %d", uint64(len(raw))-8-n, want)
	}

	f := mustOpen(t, path)
	if got := f.Metadata(); len(got) != 2 || got["format"] != "pt" || got["kadapt"] != md["kadapt"] {
		t.Errorf("Metadata = %v, want %v", got, md)
	}
	if got := len(f.Names()); got != len(tensors) {
		t.Errorf("%d tensors, want %d", got, len(tensors))
	}
	for name, want := range tensors {
		info, ok := f.Info(name)
		if !ok || info.DType != "F32" || !slices.Equal(info.Shape, want.Shape) && len(want.Shape)+len(info.Shape) > 0 {
			t.Errorf("Info(%q) = %+v, %v; want F32 %v", name, info, ok, want.Shape)
		}
		got, err := f.Float32s(name)
		if err != nil {
			t.Errorf("Float32s(%q): %v", name, err)
			continue
		}
		if len(got) != len(want.Data) {
			t.Errorf("Float32s(%q) has %d values, want %d", name, len(got), len(want.Data))
			continue
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want.Data[i]) {
				t.Errorf("%q[%d] = %v, want %v (bit-exact)", name, i, got[i], want.Data[i])
			}
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", st.Mode(), err)
	}
}

// TestWriterStreams adds tensors larger than the encoding buffer and checks their
// values, so chunk boundaries are exercised.
func TestWriterStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.safetensors")
	w, err := Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40000 // > 16384 values per 64 KiB chunk
	for k := range 3 {
		data := make([]float32, n+k)
		for i := range data {
			data[i] = float32(i*(k+1)) - 0.5
		}
		if err := w.Add(string(rune('a'+k)), []int{n + k}, data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("output exists before Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, path)
	if f.Metadata() != nil {
		t.Errorf("Metadata = %v, want nil", f.Metadata())
	}
	for k := range 3 {
		got, err := f.Float32s(string(rune('a' + k)))
		if err != nil || len(got) != n+k {
			t.Fatalf("tensor %d: %v, %d values", k, err, len(got))
		}
		for i, v := range got {
			if v != float32(i*(k+1))-0.5 {
				t.Fatalf("tensor %d [%d] = %v", k, i, v)
			}
		}
	}
}

func TestWriterErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	w, err := Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add("a", []int{2}, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		shape []int
		data  []float32
		want  string
	}{
		{"a", []int{1}, []float32{1}, `tensor "a": added twice`},
		{"__metadata__", []int{1}, []float32{1}, `tensor name "__metadata__" is reserved`},
		{"b", []int{2, 2}, []float32{1, 2, 3}, `tensor "b": shape [2 2] needs 4 values, got 3`},
		{"c", []int{-1}, nil, `tensor "c": shape [-1] has a negative dimension`},
		{"d", []int{1 << 40, 1 << 40}, nil, `tensor "d": shape [1099511627776 1099511627776] overflows`},
		{"bad\xffutf8", []int{1}, []float32{1}, "name is not valid UTF-8"},
	}
	for _, tt := range tests {
		err := w.Add(tt.name, tt.shape, tt.data)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), path) {
			t.Errorf("Add(%q): %v, want %q", tt.name, err, tt.want)
		}
	}
	// Failed Adds leave the file consistent.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, path)
	if got := f.Names(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Names = %v", got)
	}
	if err := w.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	if err := w.Add("z", []int{1}, []float32{1}); err == nil {
		t.Error("Add after Close succeeded")
	}

	if _, err := Create(filepath.Join(dir, "no/such/dir/x.safetensors"), nil); err == nil {
		t.Error("Create in a missing directory succeeded")
	}
	if _, err := Create(filepath.Join(dir, "m.safetensors"), map[string]string{"k": "\xff"}); err == nil ||
		!strings.Contains(err.Error(), `metadata key "k"`) {
		t.Errorf("Create with invalid UTF-8 metadata: %v", err)
	}
	if err := WriteFile(filepath.Join(dir, "bad.safetensors"), map[string]Tensor{"x": {Shape: []int{3}}}, nil); err == nil {
		t.Error("WriteFile with a wrong-length tensor succeeded")
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"w.safetensors"}) {
		t.Errorf("directory holds %v after failures, want only w.safetensors", got)
	}
}

// TestAbortKeepsOld checks atomicity: an aborted rewrite leaves the previous file
// intact and no temporaries behind, and a completed one replaces it whole.
func TestAbortKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	if err := WriteFile(path, map[string]Tensor{"old": {Shape: []int{1}, Data: []float32{1}}}, nil); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add("new", []int{2}, []float32{2, 3}); err != nil {
		t.Fatal(err)
	}
	if got := len(listDir(t, dir)); got != 2 {
		t.Errorf("%d files while writing, want the old file and one scratch file", got)
	}
	w.Abort()
	w.Abort()
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"ckpt.safetensors"}) {
		t.Errorf("directory holds %v after Abort", got)
	}
	f := mustOpen(t, path)
	if got := f.Names(); !slices.Equal(got, []string{"old"}) {
		t.Errorf("after Abort the file holds %v, want [old]", got)
	}

	if err := WriteFile(path, map[string]Tensor{"new": {Shape: []int{2}, Data: []float32{2, 3}}}, nil); err != nil {
		t.Fatal(err)
	}
	g := mustOpen(t, path)
	if got, err := g.Float32s("new"); err != nil || !slices.Equal(got, []float32{2, 3}) {
		t.Errorf("replacement holds %v, %v", got, err)
	}
	// The first mapping still sees the old contents: rename never modified them.
	if got, err := f.Float32s("old"); err != nil || !slices.Equal(got, []float32{1}) {
		t.Errorf("old mapping reads %v, %v", got, err)
	}
}
