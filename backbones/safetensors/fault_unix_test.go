//go:build unix

package safetensors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTruncatedAfterOpen shrinks the file under a live mapping: touching the
// vanished pages raises SIGBUS, which must surface as an error, not a crash.
func TestTruncatedAfterOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shrink.safetensors")
	data := make([]float32, 1<<16) // 256 KiB: many pages past the cut
	if err := WriteFile(path, map[string]Tensor{"w": {Shape: []int{len(data)}, Data: data}}, nil); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, path)
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	_, err := f.Float32s("w")
	if err == nil || !strings.Contains(err.Error(), "reading mapped data failed") || !strings.Contains(err.Error(), path) {
		t.Errorf("Float32s on a truncated mapping: %v", err)
	}
}
