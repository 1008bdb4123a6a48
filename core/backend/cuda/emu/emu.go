//go:build cuda

// Package emu runs kadapt's CUDA kernels (core/backend/cuda/kernels) on the CPU, one
// fiber per GPU thread, so their indexing, barriers and reductions can be tested on
// machines without a GPU. Build compiles emulator.cc (embedded here) together with
// the kernel sources it is handed, with the system's C++ compiler, into a shared
// library; Load opens it.
// Device pointers are host addresses from malloc.
package emu

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

typedef uintptr_t (*alloc_fn)(size_t);
typedef void (*free_fn)(uintptr_t);
typedef void (*memset_fn)(uintptr_t, uint32_t, size_t);
typedef void (*copy_fn)(uintptr_t, uintptr_t, size_t);
typedef void (*upload_fn)(uintptr_t, const void *, size_t);
typedef void (*download_fn)(void *, uintptr_t, size_t);
typedef uint32_t (*status_fn)(void);
typedef int (*launch_fn)(const char *, int, int, int, int, int, const char *, const int32_t *, int);
typedef void (*gemm_fn)(int, int, int, int, int, int, float, uintptr_t, int, long long, uintptr_t, int, long long, float,
                        uintptr_t, int, long long, int);

static struct {
	alloc_fn alloc; free_fn free; memset_fn memset32; copy_fn copy; upload_fn upload; download_fn download;
	status_fn status; launch_fn launch; gemm_fn gemm;
} emu;

static const char *emu_open(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) return dlerror();
	if (!(emu.alloc = (alloc_fn)dlsym(h, "emu_alloc"))) return "emu_alloc missing";
	if (!(emu.free = (free_fn)dlsym(h, "emu_free"))) return "emu_free missing";
	if (!(emu.memset32 = (memset_fn)dlsym(h, "emu_memset32"))) return "emu_memset32 missing";
	if (!(emu.copy = (copy_fn)dlsym(h, "emu_copy"))) return "emu_copy missing";
	if (!(emu.upload = (upload_fn)dlsym(h, "emu_upload"))) return "emu_upload missing";
	if (!(emu.download = (download_fn)dlsym(h, "emu_download"))) return "emu_download missing";
	if (!(emu.status = (status_fn)dlsym(h, "emu_take_status"))) return "emu_take_status missing";
	if (!(emu.launch = (launch_fn)dlsym(h, "emu_launch"))) return "emu_launch missing";
	if (!(emu.gemm = (gemm_fn)dlsym(h, "emu_gemm"))) return "emu_gemm missing";
	return NULL;
}

static uintptr_t e_alloc(size_t n) { return emu.alloc(n); }
static void e_free(uintptr_t p) { emu.free(p); }
static void e_memset32(uintptr_t p, uint32_t v, size_t n) { emu.memset32(p, v, n); }
static void e_copy(uintptr_t d, uintptr_t s, size_t n) { emu.copy(d, s, n); }
static void e_upload(uintptr_t d, const void *s, size_t n) { emu.upload(d, s, n); }
static void e_download(void *d, uintptr_t s, size_t n) { emu.download(d, s, n); }
static uint32_t e_status(void) { return emu.status(); }
static int e_launch(const char *name, int gx, int gy, int gz, int bx, int by, const char *a, const int32_t *o, int n) {
	return emu.launch(name, gx, gy, gz, bx, by, a, o, n);
}
static void e_gemm(int bf16, int tx, int ty, int m, int n, int k, float alpha, uintptr_t x, int ldx, long long sx, uintptr_t y,
                   int ldy, long long sy, float beta, uintptr_t c, int ldc, long long sc, int batch) {
	emu.gemm(bf16, tx, ty, m, n, k, alpha, x, ldx, sx, y, ldy, sy, beta, c, ldc, sc, batch);
}
*/
import "C"

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"unsafe"
)

//go:embed emulator.cc
var emulatorSource []byte

// Compiler is the C++ compiler Build uses: $CXX, else c++, g++ or clang++ from PATH;
// "" when there is none.
func Compiler() string {
	if cxx := os.Getenv("CXX"); cxx != "" {
		return cxx
	}
	for _, c := range []string{"c++", "g++", "clang++"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// Build writes the emulator and kernels (file name -> source, laid out as
// kernels/<name> beside emu/emulator.cc, which includes them) under dir, compiles them
// and returns the library's path. Taking the sources as data keeps the result
// independent of the working directory and always as current as the caller's copy.
func Build(dir string, kernels map[string][]byte) (string, error) {
	cxx := Compiler()
	if cxx == "" {
		return "", errors.New("emu: no C++ compiler (set CXX)")
	}
	for _, sub := range []string{"emu", "kernels"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", err
		}
	}
	src := filepath.Join(dir, "emu", "emulator.cc")
	if err := os.WriteFile(src, emulatorSource, 0o644); err != nil {
		return "", err
	}
	for name, text := range kernels {
		if filepath.Base(name) != name {
			return "", fmt.Errorf("emu: kernel file name %q has a directory", name)
		}
		if err := os.WriteFile(filepath.Join(dir, "kernels", name), text, 0o644); err != nil {
			return "", err
		}
	}
	lib := filepath.Join(dir, "libkdemu.so")
	out, err := exec.Command(cxx, "-std=c++17", "-O1", "-Wall", "-Wno-unknown-pragmas", "-Werror", "-shared", "-fPIC",
		"-o", lib, src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("emu: compiling %s: %v\n%s", src, err, out)
	}
	return lib, nil
}

var (
	mu     sync.Mutex
	loaded string
)

// Load opens the library Build made. One emulator serves the process: loading a
// second, different library is refused.
func Load(lib string) error {
	mu.Lock()
	defer mu.Unlock()
	if loaded != "" {
		if loaded == lib {
			return nil
		}
		return fmt.Errorf("emu: %s is already loaded", loaded)
	}
	cpath := C.CString(lib)
	defer C.free(unsafe.Pointer(cpath))
	if msg := C.emu_open(cpath); msg != nil {
		return fmt.Errorf("emu: loading %s: %s", lib, C.GoString(msg))
	}
	loaded = lib
	return nil
}

// Alloc returns bytes of emulated device memory (uninitialised, like cuMemAlloc).
func Alloc(bytes int) uintptr { return uintptr(C.e_alloc(C.size_t(bytes))) }

// Free releases memory from Alloc.
func Free(p uintptr) { C.e_free(C.uintptr_t(p)) }

// Memset32 sets n 32-bit words at p to v, like cuMemsetD32.
func Memset32(p uintptr, v uint32, n int) { C.e_memset32(C.uintptr_t(p), C.uint32_t(v), C.size_t(n)) }

// Copy copies n float32s from src to dst.
func Copy(dst, src uintptr, n int) { C.e_copy(C.uintptr_t(dst), C.uintptr_t(src), C.size_t(4*n)) }

// TakeStatus reads and clears the kernels' kd_status word.
func TakeStatus() uint32 { return uint32(C.e_status()) }

// Upload copies src to device address p.
func Upload(p uintptr, src []float32) {
	if len(src) > 0 {
		C.e_upload(C.uintptr_t(p), unsafe.Pointer(&src[0]), C.size_t(4*len(src)))
	}
}

// Download copies from device address p into dst.
func Download(dst []float32, p uintptr) {
	if len(dst) > 0 {
		C.e_download(unsafe.Pointer(&dst[0]), C.uintptr_t(p), C.size_t(4*len(dst)))
	}
}

// Launch runs kernel name over a gx×gy×gz grid of bx×by blocks; buf and offs are the
// packed parameters as the driver would receive them.
func Launch(name string, gx, gy, gz, bx, by int, buf []byte, offs []int32) error {
	if len(offs) == 0 || len(buf) == 0 {
		return fmt.Errorf("emu: %s: no parameters", name)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	switch C.e_launch(cname, C.int(gx), C.int(gy), C.int(gz), C.int(bx), C.int(by),
		(*C.char)(unsafe.Pointer(&buf[0])), (*C.int32_t)(unsafe.Pointer(&offs[0])), C.int(len(offs))) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("emu: %s: unknown kernel or wrong parameter count %d", name, len(offs))
	case 2:
		return fmt.Errorf("emu: %s: deadlock: threads of a block wait at different barriers", name)
	default:
		return fmt.Errorf("emu: %s: bad block %d×%d", name, bx, by)
	}
}

// Gemm is cuBLAS's column-major strided-batched product, accumulated in double; with
// bf16 set, x and y hold bfloat16 elements (c is float32 either way).
func Gemm(bf16, transX, transY bool, m, n, k int, alpha float32, x uintptr, ldx int, sx int64, y uintptr, ldy int, sy int64,
	beta float32, c uintptr, ldc int, sc int64, batch int) {
	b := func(v bool) C.int {
		if v {
			return 1
		}
		return 0
	}
	C.e_gemm(b(bf16), b(transX), b(transY), C.int(m), C.int(n), C.int(k), C.float(alpha), C.uintptr_t(x), C.int(ldx),
		C.longlong(sx), C.uintptr_t(y), C.int(ldy), C.longlong(sy), C.float(beta), C.uintptr_t(c), C.int(ldc),
		C.longlong(sc), C.int(batch))
}
