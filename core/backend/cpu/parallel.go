package cpu

import (
	"runtime"

	"github.com/kadapt/kadapt/core/backend/cpu/internal/pool"
)

// parallelMin is the element count below which an op runs on the calling goroutine:
// at ~1 ns per element the op then takes tens of microseconds at most, and fanning out
// (a goroutine start and a WaitGroup round trip per worker) would eat the gain.
var parallelMin = 1 << 15

// workers returns how many goroutines should share units of work that together touch
// elems elements: 1 below parallelMin, else up to GOMAXPROCS with at least
// parallelMin/2 elements each, and never more than there are units.
func workers(units, elems int) int {
	if elems < parallelMin || units < 2 {
		return 1
	}
	p := runtime.GOMAXPROCS(0)
	if m := elems / max(parallelMin/2, 1); m < p {
		p = m
	}
	if units < p {
		p = units
	}
	return max(p, 1)
}

// parallel runs fn over [0, n) split into p contiguous chunks on the worker pool the
// matrix products use, the calling goroutine among the workers. Callers take the p == 1
// branch themselves so that the closure, and its heap allocation, only exists on the
// parallel path.
func parallel(p, n int, fn func(lo, hi int)) {
	if p <= 1 || n <= 1 {
		fn(0, n)
		return
	}
	pool.For(p, p, func(i int) { fn(i*n/p, (i+1)*n/p) })
}

// rangeKernel is an op's inner loop over units [lo, hi): rows, blocks or elements.
type rangeKernel interface {
	run(lo, hi int)
}

// forEach runs k over [0, n) units of cost elements each, splitting across goroutines
// when the work is large. K is a small struct of slices and scalars passed by value, so
// the serial path neither allocates nor escapes anything.
func forEach[K rangeKernel](k K, n, cost int) {
	p := workers(n, n*cost)
	if p == 1 {
		k.run(0, n)
		return
	}
	// Copy k so that only this branch's variable is captured (and perhaps moved to the
	// heap); the serial path above then stays allocation-free.
	kk := k
	parallel(p, n, func(lo, hi int) { kk.run(lo, hi) })
}
