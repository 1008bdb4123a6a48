//go:build cuda

package cuda

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "cudadl.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

var (
	loadOnce sync.Once
	loadErr  error
)

// load opens libcuda, libcublas and libnvrtc once per process.
func load() error {
	loadOnce.Do(func() {
		buf := (*C.char)(C.malloc(1024))
		defer C.free(unsafe.Pointer(buf))
		switch C.kd_load(buf, 1024) {
		case 0:
		case 1:
			loadErr = fmt.Errorf("cuda: no CUDA driver: %s", C.GoString(buf))
		case 2, 3:
			loadErr = fmt.Errorf("cuda: %s (install the CUDA toolkit's libraries or add their directory to LD_LIBRARY_PATH)", C.GoString(buf))
		default:
			loadErr = fmt.Errorf("cuda: %s (the driver or toolkit is older than this build needs)", C.GoString(buf))
		}
	})
	return loadErr
}

// Probe reports whether this process can use a GPU: the driver library loads, cuInit
// succeeds and at least one device is visible. It never exits the process, so tests
// and `host` can call it to decide whether to skip or fall back.
func Probe() (devices int, err error) {
	if err := load(); err != nil {
		return 0, err
	}
	var count, version C.int
	if r := C.kd_init(&count, &version); r != C.CUDA_SUCCESS {
		return 0, fmt.Errorf("cuda: no usable CUDA driver or GPU: cuInit returned %d (%s)", int(r), cuName(r))
	}
	if count == 0 {
		return 0, errors.New("cuda: the CUDA driver sees no GPU")
	}
	return int(count), nil
}

// cuResultNames covers the codes a missing or mismatched driver returns, for when
// cuGetErrorName itself cannot answer (the link stub, say).
var cuResultNames = map[int]string{
	3: "CUDA_ERROR_NOT_INITIALIZED", 34: "CUDA_ERROR_STUB_LIBRARY: a link stub, not the driver, was loaded",
	35: "CUDA_ERROR_INSUFFICIENT_DRIVER: the driver is older than the CUDA runtime", 100: "CUDA_ERROR_NO_DEVICE",
	101: "CUDA_ERROR_INVALID_DEVICE", 999: "CUDA_ERROR_UNKNOWN",
}

func cuName(r C.CUresult) string {
	name, msg := C.kd_cu_error_name(r), C.kd_cu_error_string(r)
	switch {
	case name == nil:
		if s, ok := cuResultNames[int(r)]; ok {
			return s
		}
		return "unknown error"
	case msg == nil:
		return C.GoString(name)
	}
	return C.GoString(name) + ": " + C.GoString(msg)
}

// cuErr names the failed call; nil on success.
func cuErr(call string, r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return fmt.Errorf("cuda: %s: %s", call, cuName(r))
}

func blasErr(call string, s C.cublasStatus_t) error {
	if s == C.CUBLAS_STATUS_SUCCESS {
		return nil
	}
	if msg := C.kd_blas_error_string(s); msg != nil {
		return fmt.Errorf("cuda: %s: %s", call, C.GoString(msg))
	}
	return fmt.Errorf("cuda: %s: cuBLAS status %d", call, int(s))
}

// device is one GPU: its primary context, one stream, a cuBLAS handle and the loaded
// kernels. Its mutex serialises every call into the driver, so a Backend may be used
// from several goroutines, as the CPU backend may.
type device struct {
	mu           sync.Mutex
	c            *C.kd_device // in C memory: the driver keeps no pointer to it, but cgo's rules are simplest so
	ordinal      int
	name         string
	major, minor int
	sms          int
	funcs        map[string]C.CUfunction
}

func openDevice(ordinal int) (*device, error) {
	n, err := Probe()
	if err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("cuda: device %d does not exist (%d GPUs visible)", ordinal, n)
	}
	d := &device{ordinal: ordinal, funcs: map[string]C.CUfunction{}}
	d.c = (*C.kd_device)(C.calloc(1, C.sizeof_kd_device))
	var maj, min, sms C.int
	name := (*C.char)(C.calloc(256, 1))
	defer C.free(unsafe.Pointer(name))
	if err := cuErr("opening the device", C.kd_open(d.c, C.int(ordinal), &maj, &min, &sms, name, 256)); err != nil {
		d.close()
		return nil, err
	}
	d.major, d.minor, d.sms, d.name = int(maj), int(min), int(sms), C.GoString(name)
	if err := blasErr("cublasCreate", C.kd_blas_create(d.c)); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

var errClosed = errors.New("cuda: the backend was closed")

// lock takes the device's mutex, or fails once the device is closed.
func (d *device) lock() error {
	d.mu.Lock()
	if d.c == nil {
		d.mu.Unlock()
		return errClosed
	}
	return nil
}

func (d *device) smCount() int { return d.sms }

func (d *device) describe() string {
	return fmt.Sprintf("%s (sm_%d%d, %d SMs)", d.name, d.major, d.minor, d.sms)
}

func (d *device) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c != nil {
		C.kd_close(d.c)
		C.free(unsafe.Pointer(d.c))
		d.c = nil
	}
}

// images caches compiled kernels by architecture, so a second Open in the process
// (another device, another precision) skips NVRTC.
var images sync.Map // int -> []byte

// compile builds the kernels with NVRTC for this device's architecture (or takes them
// from images) and loads them, resolving every name in kernels.
func (d *device) compile(src string, kernels []string) error {
	arch := d.major*10 + d.minor
	var image []byte
	if v, ok := images.Load(arch); ok {
		image = v.([]byte)
	} else {
		csrc := C.CString(src)
		defer C.free(unsafe.Pointer(csrc))
		var cimage, log *C.char
		var size C.size_t
		r := C.kd_compile(csrc, C.int(arch), &cimage, &size, &log)
		defer C.free(unsafe.Pointer(cimage))
		defer C.free(unsafe.Pointer(log))
		if r != C.NVRTC_SUCCESS {
			msg := "NVRTC error"
			if s := C.kd_nvrtc_error_string(r); s != nil {
				msg = C.GoString(s)
			}
			return fmt.Errorf("cuda: compiling kernels for sm_%d: %s\n%s", arch, msg, C.GoString(log))
		}
		image = C.GoBytes(unsafe.Pointer(cimage), C.int(size))
		if len(image) == 0 {
			return fmt.Errorf("cuda: compiling kernels for sm_%d: NVRTC returned an empty image", arch)
		}
		images.Store(arch, image)
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := cuErr("loading the kernels (cuModuleLoadData)", C.kd_module_load(d.c, unsafe.Pointer(&image[0]))); err != nil {
		return err
	}
	for _, k := range kernels {
		cname := C.CString(k)
		var f C.CUfunction
		err := cuErr("cuModuleGetFunction "+k, C.kd_function(d.c, cname, &f))
		C.free(unsafe.Pointer(cname))
		if err != nil {
			return err
		}
		d.funcs[k] = f
	}
	return nil
}

func (d *device) alloc(bytes int) (uintptr, error) {
	if err := d.lock(); err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	var p C.CUdeviceptr
	if err := cuErr("cuMemAlloc", C.kd_alloc(d.c, C.size_t(bytes), &p)); err != nil {
		return 0, err
	}
	return uintptr(p), nil
}

func (d *device) free(p uintptr) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return cuErr("cuMemFree", C.kd_free(d.c, C.CUdeviceptr(p)))
}

func (d *device) memset32(p uintptr, v uint32, n int) error {
	if n == 0 {
		return nil
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return cuErr("cuMemsetD32Async", C.kd_memset32(d.c, C.CUdeviceptr(p), C.uint(v), C.size_t(n)))
}

func (d *device) upload(p uintptr, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return cuErr("cuMemcpyHtoDAsync", C.kd_upload(d.c, C.CUdeviceptr(p), unsafe.Pointer(&src[0]), C.size_t(4*len(src))))
}

// download copies and waits; status is the kernels' error word (see statusError).
func (d *device) download(dst []float32, p uintptr) (status uint32, err error) {
	if len(dst) == 0 {
		return d.sync()
	}
	if err := d.lock(); err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	var st C.uint
	err = cuErr("cuMemcpyDtoHAsync", C.kd_download(d.c, unsafe.Pointer(&dst[0]), C.CUdeviceptr(p), C.size_t(4*len(dst)), &st))
	return uint32(st), err
}

func (d *device) sync() (status uint32, err error) {
	if err := d.lock(); err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	var st C.uint
	err = cuErr("cuStreamSynchronize", C.kd_sync(d.c, &st))
	return uint32(st), err
}

func (d *device) copy(dst, src uintptr, n int) error {
	if n == 0 || dst == src {
		return nil
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return cuErr("cuMemcpyDtoDAsync", C.kd_copy(d.c, C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(4*n)))
}

func (d *device) memInfo() (free, total int64, err error) {
	if err := d.lock(); err != nil {
		return 0, 0, err
	}
	defer d.mu.Unlock()
	var f, t C.size_t
	err = cuErr("cuMemGetInfo", C.kd_mem_info(d.c, &f, &t))
	return int64(f), int64(t), err
}

// launch runs kernel name over a grid of (gx, gy, gz) blocks of (bx, by) threads.
func (d *device) launch(name string, gx, gy, gz, bx, by int, a *args) error {
	f, ok := d.funcs[name]
	if !ok {
		return fmt.Errorf("cuda: no kernel %q", name)
	}
	if gx < 1 || gy < 1 || gz < 1 || gx > maxGridX || gy > maxGridYZ || gz > maxGridYZ {
		return fmt.Errorf("cuda: %s: grid %d×%d×%d is outside the device's limits", name, gx, gy, gz)
	}
	if len(a.offs) == 0 || len(a.offs) > maxParams {
		return fmt.Errorf("cuda: %s: %d parameters", name, len(a.offs))
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return cuErr("launching "+name, C.kd_launch(d.c, f, C.uint(gx), C.uint(gy), C.uint(gz), C.uint(bx), C.uint(by),
		(*C.char)(unsafe.Pointer(&a.buf[0])), (*C.int)(unsafe.Pointer(&a.offs[0])), C.int(len(a.offs))))
}

const (
	maxGridX  = 1<<31 - 1
	maxGridYZ = 65535
)

func (d *device) setTF32(on bool) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return blasErr("cublasSetMathMode", C.kd_set_tf32(d.c, cbool(on)))
}

// gemm is one column-major cuBLAS call; see gemmPlan for how row-major products map
// onto it.
func (d *device) gemm(g gemmPlan, tf32, bf16 bool, x, y, c uintptr, alpha, beta float32) error {
	call := "cublasGemmStridedBatchedEx"
	if g.batch == 1 {
		call = "cublasGemmEx"
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return blasErr(call, C.kd_gemm(d.c, cbool(tf32), cbool(bf16), cbool(g.transX), cbool(g.transY), C.int(g.m), C.int(g.n), C.int(g.k),
		C.float(alpha), C.CUdeviceptr(x), C.int(g.ldx), C.longlong(g.strideX), C.CUdeviceptr(y), C.int(g.ldy),
		C.longlong(g.strideY), C.float(beta), C.CUdeviceptr(c), C.int(g.ldc), C.longlong(g.strideC), C.int(g.batch)))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// cParamLayout is what the C compiler makes of a parameter list shaped like the
// kernels' (see kd_param_layout); the tests hold the Go packer to it.
func cParamLayout() [10]int {
	var out [10]C.longlong
	C.kd_param_layout(&out[0])
	var r [10]int
	for i, v := range out {
		r[i] = int(v)
	}
	return r
}
