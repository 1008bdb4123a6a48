// Package atomicfile writes files so that a reader, or a crash, never sees a
// half-written one: the data goes to a temporary file in the destination's directory,
// which is synced, renamed over the destination, and then the directory is synced so
// that the rename itself is on disk.
//
// It is built on github.com/google/renameio/v2, which creates the temporary with
// O_EXCL and the requested permissions less the umask (os.CreateTemp would make every
// result 0600), syncs it and renames it. renameio does not sync the directory, so
// Commit does that here.
package atomicfile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/renameio/v2"
)

// Perm is the mode of every file written here, less the umask: results, reports and
// checkpoints are ordinary data that a colleague or a later job may read.
const Perm os.FileMode = 0o644

// File is a pending replacement of one path: write to it, then Commit, or Cleanup to
// leave the destination untouched.
type File struct {
	*renameio.PendingFile
	dir string
}

// Create starts replacing path; nothing appears there until Commit.
func Create(path string) (*File, error) {
	dir := filepath.Dir(path)
	// WithTempDir keeps the temporary beside the destination, where a killed writer's
	// leftover is found (IsTemp) and the rename cannot cross file systems.
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithPermissions(Perm))
	if err != nil {
		return nil, err
	}
	return &File{PendingFile: f, dir: dir}, nil
}

// Commit syncs and closes the file, renames it over the destination and syncs the
// directory. On failure the temporary is removed.
func (f *File) Commit() error {
	if err := f.CloseAtomicallyReplace(); err != nil {
		f.Cleanup()
		return err
	}
	return syncDir(f.dir)
}

// syncDir makes a rename in dir durable. Some file systems cannot sync a directory
// (EINVAL); there the rename is still atomic and its durability is the system's, so
// only an error that says the data is at risk (EIO) is returned.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	if err != nil && !isUnsupported(err) {
		return err
	}
	return nil
}

func isUnsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP)
}

// Write replaces path with data atomically.
func Write(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Cleanup()
		return err
	}
	return f.Commit()
}

// WriteJSON writes v as indented JSON atomically.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return Write(path, append(data, '\n'))
}

// IsTemp reports whether a directory entry's name is a temporary that a writer killed
// before Commit left behind: renameio's ".NAME" followed by digits, or a ".NAME….tmp"
// scratch file (the safetensors writer's). Only hidden names match, so no result can.
func IsTemp(name string) bool {
	if !strings.HasPrefix(name, ".") || len(name) < 3 {
		return false
	}
	if strings.Contains(name, ".tmp") {
		return true
	}
	digits := len(name) - len(strings.TrimRight(name, "0123456789"))
	return digits > 0 && digits < len(name)-1
}
