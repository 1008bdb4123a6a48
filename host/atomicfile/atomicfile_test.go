package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := Write(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(p, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "{\n  \"a\": 1\n}\n" {
		t.Fatalf("content %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d files in the directory, want only the destination", len(entries))
	}
	if err := Write(filepath.Join(dir, "missing", "f"), nil); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

// Results are read by other users and jobs: 0644 less the umask, not CreateTemp's 0600.
func TestWriteMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	for _, write := range []func(string) error{
		func(p string) error { return Write(p, []byte("x")) },
		func(p string) error { return WriteJSON(p, 1) },
		func(p string) error {
			f, err := Create(p)
			if err != nil {
				return err
			}
			f.WriteString("x")
			return f.Commit()
		},
	} {
		p := filepath.Join(dir, "report.md")
		os.Remove(p)
		if err := write(p); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("mode %v, want -rw-r--r--", fi.Mode().Perm())
		}
	}
	syscall.Umask(0o077)
	p := filepath.Join(dir, "private")
	if err := Write(p, nil); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("under umask 077 the mode is %v, want -rw-------", fi.Mode().Perm())
	}
}

// A writer that gives up (or is killed) leaves the destination as it was, and what it
// left behind is recognised as a temporary.
func TestCleanupAndLeftovers(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "final.json")
	if err := Write(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new, half written")
	entries, _ := os.ReadDir(dir)
	var temps int
	for _, e := range entries {
		if IsTemp(e.Name()) {
			temps++
		} else if e.Name() != "final.json" {
			t.Errorf("unexpected entry %q", e.Name())
		}
	}
	if temps != 1 {
		t.Errorf("%d entries recognised as temporaries while a write is pending, want 1", temps)
	}
	if err := f.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("after Cleanup the destination holds %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries after Cleanup, want only the destination", len(entries))
	}
	for name, want := range map[string]bool{
		".final.json5577006791947779410":       true,
		".checkpoint.safetensors.data-123.tmp": true,
		".checkpoint.safetensors.4242.tmp":     true,
		"final.json":                           false,
		"checkpoint-3.safetensors":             false,
		"epoch12":                              false,
		".lock":                                false,
		".1":                                   false,
	} {
		if IsTemp(name) != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, !want, want)
		}
	}
}
