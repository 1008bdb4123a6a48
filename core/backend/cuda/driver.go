//go:build cuda

package cuda

/*
#cgo LDFLAGS: -lcuda -lcublas
#include <stdlib.h>
#include <string.h>
#include <cuda.h>
#include <cublas_v2.h>

// launch builds the kernel parameter array in C memory (cgo forbids passing Go
// memory that holds Go pointers) from a packed argument buffer and offsets.
static CUresult kadapt_launch(CUfunction f, unsigned gx, unsigned bx, unsigned shmem, CUstream s,
                              void* args, const int* offs, int n) {
	void* params[32];
	for (int i = 0; i < n && i < 32; i++) params[i] = (char*)args + offs[i];
	return cuLaunchKernel(f, gx, 1, 1, bx, 1, 1, shmem, s, params, NULL);
}

static cublasStatus_t kadapt_gemm(cublasHandle_t h, int opA, int opB, int m, int n, int k, float alpha,
                                  CUdeviceptr a, int lda, long long sa, CUdeviceptr b, int ldb, long long sb,
                                  float beta, CUdeviceptr c, int ldc, long long sc, int batch) {
	return cublasSgemmStridedBatched(h, opA ? CUBLAS_OP_T : CUBLAS_OP_N, opB ? CUBLAS_OP_T : CUBLAS_OP_N,
		m, n, k, &alpha, (const float*)a, lda, sa, (const float*)b, ldb, sb, &beta, (float*)c, ldc, sc, batch);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// driverError turns a CUresult into an error naming the call.
func driverError(call string, r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	var name, msg *C.char
	C.cuGetErrorName(r, &name)
	C.cuGetErrorString(r, &msg)
	if name == nil {
		return fmt.Errorf("cuda: %s: error %d", call, int(r))
	}
	return fmt.Errorf("cuda: %s: %s (%s)", call, C.GoString(name), C.GoString(msg))
}

func blasError(call string, s C.cublasStatus_t) error {
	if s == C.CUBLAS_STATUS_SUCCESS {
		return nil
	}
	return fmt.Errorf("cuda: %s: cuBLAS status %d", call, int(s))
}

// device is one GPU's context, stream, cuBLAS handle and compiled kernels.
type device struct {
	ordinal int
	dev     C.CUdevice
	ctx     C.CUcontext
	stream  C.CUstream
	blas    C.cublasHandle_t
	module  C.CUmodule
	funcs   map[string]C.CUfunction
	args    unsafe.Pointer // C buffer for kernel arguments
	offs    *C.int
	major   int
	minor   int
}

const argBytes = 4096

func openDevice(ordinal int) (*device, error) {
	if err := driverError("cuInit", C.cuInit(0)); err != nil {
		return nil, fmt.Errorf("%w: no usable NVIDIA driver or GPU", err)
	}
	var count C.int
	if err := driverError("cuDeviceGetCount", C.cuDeviceGetCount(&count)); err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= int(count) {
		return nil, fmt.Errorf("cuda: device %d does not exist (%d GPUs visible)", ordinal, int(count))
	}
	d := &device{ordinal: ordinal, funcs: map[string]C.CUfunction{}}
	if err := driverError("cuDeviceGet", C.cuDeviceGet(&d.dev, C.int(ordinal))); err != nil {
		return nil, err
	}
	var maj, min C.int
	C.cuDeviceGetAttribute(&maj, C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d.dev)
	C.cuDeviceGetAttribute(&min, C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d.dev)
	d.major, d.minor = int(maj), int(min)
	if err := driverError("cuDevicePrimaryCtxRetain", C.cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return nil, err
	}
	if err := d.bind(); err != nil {
		return nil, err
	}
	if err := driverError("cuStreamCreate", C.cuStreamCreate(&d.stream, C.CU_STREAM_NON_BLOCKING)); err != nil {
		return nil, err
	}
	if err := blasError("cublasCreate", C.cublasCreate(&d.blas)); err != nil {
		return nil, err
	}
	if err := blasError("cublasSetStream", C.cublasSetStream(d.blas, C.cudaStream_t(unsafe.Pointer(d.stream)))); err != nil {
		return nil, err
	}
	d.args = C.malloc(argBytes)
	d.offs = (*C.int)(C.malloc(32 * C.sizeof_int))
	return d, nil
}

// bind makes the device's context current on this OS thread. Go moves goroutines
// between threads, so every entry point binds first (cheap when already current).
func (d *device) bind() error {
	return driverError("cuCtxSetCurrent", C.cuCtxSetCurrent(d.ctx))
}

func (d *device) loadPTX(ptx string) error {
	src := C.CString(ptx)
	defer C.free(unsafe.Pointer(src))
	if err := driverError("cuModuleLoadData", C.cuModuleLoadData(&d.module, unsafe.Pointer(src))); err != nil {
		return err
	}
	for _, name := range kernelNames {
		cname := C.CString(name)
		var f C.CUfunction
		err := driverError("cuModuleGetFunction "+name, C.cuModuleGetFunction(&f, d.module, cname))
		C.free(unsafe.Pointer(cname))
		if err != nil {
			return err
		}
		d.funcs[name] = f
	}
	return nil
}

func (d *device) alloc(bytes int) (uintptr, error) {
	var p C.CUdeviceptr
	if err := driverError("cuMemAlloc", C.cuMemAlloc(&p, C.size_t(bytes))); err != nil {
		return 0, err
	}
	return uintptr(p), nil
}

func (d *device) free(p uintptr) { C.cuMemFree(C.CUdeviceptr(p)) }

func (d *device) zero(p uintptr, n int) error {
	return driverError("cuMemsetD32Async", C.cuMemsetD32Async(C.CUdeviceptr(p), 0, C.size_t(n), d.stream))
}

func (d *device) upload(p uintptr, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	// Synchronous with respect to the host buffer, ordered after queued work.
	if err := d.sync(); err != nil {
		return err
	}
	return driverError("cuMemcpyHtoD", C.cuMemcpyHtoD(C.CUdeviceptr(p), unsafe.Pointer(&src[0]), C.size_t(4*len(src))))
}

func (d *device) download(dst []float32, p uintptr) error {
	if len(dst) == 0 {
		return nil
	}
	if err := d.sync(); err != nil {
		return err
	}
	return driverError("cuMemcpyDtoH", C.cuMemcpyDtoH(unsafe.Pointer(&dst[0]), C.CUdeviceptr(p), C.size_t(4*len(dst))))
}

func (d *device) copy(dst, src uintptr, n int) error {
	return driverError("cuMemcpyDtoDAsync", C.cuMemcpyDtoDAsync(C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(4*n), d.stream))
}

func (d *device) sync() error {
	return driverError("cuStreamSynchronize", C.cuStreamSynchronize(d.stream))
}

// launch runs a kernel over grid blocks of block threads with packed arguments.
func (d *device) launch(name string, grid, block int, a *args) error {
	f, ok := d.funcs[name]
	if !ok {
		return fmt.Errorf("cuda: no kernel %q", name)
	}
	if len(a.buf) > argBytes || len(a.offs) > 32 {
		return fmt.Errorf("cuda: %s: too many kernel arguments", name)
	}
	C.memcpy(d.args, unsafe.Pointer(&a.buf[0]), C.size_t(len(a.buf)))
	offs := unsafe.Slice(d.offs, 32)
	for i, o := range a.offs {
		offs[i] = C.int(o)
	}
	return driverError("cuLaunchKernel "+name, C.kadapt_launch(f, C.uint(grid), C.uint(block), 0, d.stream, d.args, d.offs, C.int(len(a.offs))))
}

// gemm is cublasSgemmStridedBatched on column-major operands.
func (d *device) gemm(opA, opB bool, m, n, k int, alpha float32, a uintptr, lda int, sa int64, b uintptr, ldb int, sb int64,
	beta float32, c uintptr, ldc int, sc int64, batch int) error {
	return blasError("cublasSgemmStridedBatched", C.kadapt_gemm(d.blas, boolInt(opA), boolInt(opB), C.int(m), C.int(n), C.int(k),
		C.float(alpha), C.CUdeviceptr(a), C.int(lda), C.longlong(sa), C.CUdeviceptr(b), C.int(ldb), C.longlong(sb),
		C.float(beta), C.CUdeviceptr(c), C.int(ldc), C.longlong(sc), C.int(batch)))
}

// setTF32 switches cuBLAS products to TF32 tensor cores (or back to strict fp32).
func (d *device) setTF32(on bool) error {
	mode := C.cublasMath_t(C.CUBLAS_DEFAULT_MATH)
	if on {
		mode = C.CUBLAS_TF32_TENSOR_OP_MATH
	}
	return blasError("cublasSetMathMode", C.cublasSetMathMode(d.blas, mode))
}

func (d *device) memInfo() (free, total int64) {
	var f, t C.size_t
	C.cuMemGetInfo(&f, &t)
	return int64(f), int64(t)
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
