//go:build cuda

package cuda

// Where a C++ compiler is installed, the real kernel sources run on the CPU through
// package emu, and the conformance suite checks them against the float64 reference
// backend: the kernels' arithmetic, indexing, barriers, row modes and split
// reductions, and the host code's plans and packing, all without a GPU. cuBLAS is
// emulated by its column-major definition. Without a compiler these tests skip.

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/backend/cuda/emu"
	"github.com/kadapt/kadapt/core/backendtest"
)

// emuDriver is the driver interface over the emulator.
type emuDriver struct{ sms int }

func (emuDriver) alloc(bytes int) (uintptr, error)          { return emu.Alloc(bytes), nil }
func (emuDriver) free(p uintptr) error                      { emu.Free(p); return nil }
func (emuDriver) memset32(p uintptr, v uint32, n int) error { emu.Memset32(p, v, n); return nil }
func (emuDriver) upload(p uintptr, src []float32) error     { emu.Upload(p, src); return nil }
func (emuDriver) download(dst []float32, p uintptr) (uint32, error) {
	emu.Download(dst, p)
	return emu.TakeStatus(), nil
}
func (emuDriver) sync() (uint32, error)              { return emu.TakeStatus(), nil }
func (emuDriver) copy(dst, src uintptr, n int) error { emu.Copy(dst, src, n); return nil }
func (emuDriver) launch(name string, gx, gy, gz, bx, by int, a *args) error {
	return emu.Launch(name, gx, gy, gz, bx, by, a.buf, a.offs)
}
func (emuDriver) gemm(g gemmPlan, tf32, bf16 bool, x, y, c uintptr, alpha, beta float32) error {
	emu.Gemm(bf16, g.transX, g.transY, g.m, g.n, g.k, alpha, x, g.ldx, g.strideX, y, g.ldy, g.strideY, beta, c, g.ldc, g.strideC, g.batch)
	return nil
}
func (emuDriver) setTF32(bool) error                    { return nil }
func (emuDriver) memInfo() (free, total int64, e error) { return 0, 0, nil }
func (d emuDriver) smCount() int                        { return d.sms }
func (emuDriver) describe() string                      { return "CPU emulator" }
func (emuDriver) close()                                {}

var (
	emuOnce sync.Once
	emuErr  error
)

// loadEmu compiles the emulator (and with it the current kernels) once per process.
func loadEmu(t *testing.T) {
	t.Helper()
	emuOnce.Do(func() {
		if emu.Compiler() == "" {
			emuErr = errors.New("no C++ compiler")
			return
		}
		dir, err := os.MkdirTemp("", "kdemu")
		if err != nil {
			emuErr = err
			return
		}
		// The library stays mapped once loaded, so its files can go at once.
		defer os.RemoveAll(dir)
		srcs := map[string][]byte{}
		names, err := fs.Glob(kernelFS, "kernels/*")
		for _, n := range names {
			if err == nil {
				srcs[path.Base(n)], err = kernelFS.ReadFile(n)
			}
		}
		var lib string
		if err == nil {
			lib, err = emu.Build(dir, srcs)
		}
		if err == nil {
			err = emu.Load(lib)
		}
		emuErr = err
	})
	if emuErr != nil {
		if emu.Compiler() == "" {
			t.Skipf("kernel emulator unavailable: %v", emuErr)
		}
		t.Fatal(emuErr)
	}
}

func newEmu(t *testing.T, sms int) *Backend {
	t.Helper()
	loadEmu(t)
	b, err := newBackend(emuDriver{sms: sms}, "cuda:emu", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEmulatedConformance runs the shared suite on the emulated kernels. A small SM
// count makes the reductions split across blocks on the suite's shapes too.
func TestEmulatedConformance(t *testing.T) {
	for _, sms := range []int{1, 132} {
		b := newEmu(t, sms)
		t.Run(map[int]string{1: "sms=1", 132: "sms=132"}[sms], func(t *testing.T) {
			backendtest.Run(t, func() core.Backend { return b }, backendtest.DefaultTolerances())
		})
	}
}

// TestEmulatedBadIndex checks the status word end to end.
func TestEmulatedBadIndex(t *testing.T) {
	b := newEmu(t, 4)
	x := b.Alloc(core.Shape{4, 3})
	idx := b.Alloc(core.Shape{2})
	b.Upload(idx, []float32{1, 4})
	d := b.Alloc(core.Shape{2, 3})
	b.Gather(d, x, idx, 0)
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "Gather") {
		t.Fatalf("Sync after a bad index: %v", err)
	}
	b.Upload(idx, []float32{1, 2.5})
	b.ScatterAdd(x, d, idx, 0)
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "ScatterAdd") {
		t.Fatalf("Sync after a fractional index: %v", err)
	}
	if err := b.Sync(); err != nil {
		t.Fatalf("status not cleared: %v", err)
	}
}

// TestEmulatedConformanceBF16 runs the suite with bf16 autocast products.
func TestEmulatedConformanceBF16(t *testing.T) {
	b := newEmu(t, 8)
	if err := b.SetPrecision(BF16); err != nil {
		t.Fatal(err)
	}
	backendtest.Run(t, func() core.Backend { return b }, backendtest.BF16Tolerances())
}

// TestEmulatedBF16Products holds the conversion kernel and the operand plumbing to
// products of inputs rounded by roundBF16: the emulated cuBLAS accumulates in double,
// so only the float32 result's rounding separates them.
func TestEmulatedBF16Products(t *testing.T) {
	b := newEmu(t, 8)
	if err := b.SetPrecision(BF16); err != nil {
		t.Fatal(err)
	}
	checkBF16Products(t, b, 1e-6)
}

// TestEmulatedBF16Rounding runs k_to_bf16 on the cases where rounding is delicate.
func TestEmulatedBF16Rounding(t *testing.T) {
	b := newEmu(t, 4)
	checkBF16Rounding(t, b)
}

// TestProfiler runs ops on the emulator under profile=1: the report counts each
// kernel's launches, and a bad index found while the profiler waited is still
// reported by the next Sync.
func TestProfiler(t *testing.T) {
	loadEmu(t)
	b, err := newBackend(emuDriver{sms: 4}, "cuda:emu", Options{Profile: true})
	if err != nil {
		t.Fatal(err)
	}
	x := b.Alloc(core.Shape{4, 3})
	idx := b.Alloc(core.Shape{2})
	d := b.Alloc(core.Shape{2, 3})
	b.ResetProfile()
	b.Upload(idx, []float32{1, 7})
	b.Gather(d, x, idx, 0)
	b.Unary(core.Exp, d, d)
	b.Unary(core.Exp, d, d)
	rep := b.ProfileReport()
	for _, want := range []string{"k_gather", "k_unary", "copy host to device", "total"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	for _, line := range strings.Split(rep, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "k_unary" && f[1] != "2" {
			t.Errorf("k_unary counted %s times, launched twice", f[1])
		}
	}
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "Gather") {
		t.Fatalf("Sync after a bad index under the profiler: %v", err)
	}
	if rep := (&Backend{d: emuDriver{}}).ProfileReport(); rep != "" {
		t.Errorf("a backend without profile=1 reported %q", rep)
	}
}
