//go:build unix

package gemm

import (
	"syscall"
	"time"
)

// processCPUTime is the CPU time this process has used. On a shared machine it is a
// steadier measure of single-threaded work than the wall clock, which also counts the
// time other processes held the core.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
