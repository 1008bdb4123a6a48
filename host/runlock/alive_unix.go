//go:build unix

package runlock

import (
	"errors"
	"syscall"
)

// alive reports whether pid names a running process on this host.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
