//go:build cuda

package cuda

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// profiler is a driver that waits for each launch, product, copy and fill and adds its
// time to the kernel's total (Options.Profile). The kernels' status bits that its waits
// collect are kept for the next Sync or Download, so bad indices are still reported.
type profiler struct {
	driver
	mu     sync.Mutex
	totals map[string]*profileEntry
	status uint32
}

type profileEntry struct {
	calls int
	time  time.Duration
}

func newProfiler(d driver) *profiler { return &profiler{driver: d, totals: map[string]*profileEntry{}} }

// timed runs f, waits for the device and charges the time to name.
func (p *profiler) timed(name string, f func() error) error {
	start := time.Now()
	err := f()
	st, serr := p.driver.sync()
	elapsed := time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status |= st
	e := p.totals[name]
	if e == nil {
		e = &profileEntry{}
		p.totals[name] = e
	}
	e.calls++
	e.time += elapsed
	if err == nil {
		err = serr
	}
	return err
}

func (p *profiler) takeStatus(st uint32) uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	st |= p.status
	p.status = 0
	return st
}

func (p *profiler) launch(name string, gx, gy, gz, bx, by int, a *args) error {
	return p.timed(name, func() error { return p.driver.launch(name, gx, gy, gz, bx, by, a) })
}

func (p *profiler) gemm(g gemmPlan, tf32, bf16 bool, x, y, c uintptr, alpha, beta float32) error {
	name := "cublas gemm fp32"
	switch {
	case bf16:
		name = "cublas gemm bf16"
	case tf32:
		name = "cublas gemm tf32"
	}
	return p.timed(name, func() error { return p.driver.gemm(g, tf32, bf16, x, y, c, alpha, beta) })
}

func (p *profiler) memset32(ptr uintptr, v uint32, n int) error {
	return p.timed("memset", func() error { return p.driver.memset32(ptr, v, n) })
}

func (p *profiler) copy(dst, src uintptr, n int) error {
	return p.timed("copy device to device", func() error { return p.driver.copy(dst, src, n) })
}

func (p *profiler) upload(ptr uintptr, src []float32) error {
	return p.timed("copy host to device", func() error { return p.driver.upload(ptr, src) })
}

func (p *profiler) sync() (uint32, error) {
	st, err := p.driver.sync()
	return p.takeStatus(st), err
}

func (p *profiler) download(dst []float32, ptr uintptr) (uint32, error) {
	st, err := p.driver.download(dst, ptr)
	return p.takeStatus(st), err
}

// ProfileReport lists the time spent per kernel since the last ResetProfile, most
// first, when the device was opened with profile=1, and "" otherwise.
func (b *Backend) ProfileReport() string {
	p, ok := b.d.(*profiler)
	if !ok {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.totals))
	var total time.Duration
	for n, e := range p.totals {
		names = append(names, n)
		total += e.time
	}
	sort.Slice(names, func(i, j int) bool { return p.totals[names[i]].time > p.totals[names[j]].time })
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-26s %8s %12s %7s\n", "kernel", "calls", "ms", "share")
	for _, n := range names {
		e := p.totals[n]
		fmt.Fprintf(&sb, "%-26s %8d %12.3f %6.1f%%\n", n, e.calls, float64(e.time)/1e6, 100*float64(e.time)/float64(max(total, 1)))
	}
	fmt.Fprintf(&sb, "%-26s %8s %12.3f\n", "total", "", float64(total)/1e6)
	return sb.String()
}

// ResetProfile clears the totals, so a report covers only what follows (the timed
// steps after warm-up).
func (b *Backend) ResetProfile() {
	if p, ok := b.d.(*profiler); ok {
		p.mu.Lock()
		clear(p.totals)
		p.mu.Unlock()
	}
}
