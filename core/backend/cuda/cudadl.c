//go:build cuda

// kadapt reaches the CUDA driver, cuBLAS and NVRTC through dlopen rather than by
// linking them, so a binary built with -tags cuda starts on any machine and says
// which library or call is missing instead of failing in the dynamic loader. The
// headers still declare every function: each pointer below has the type of the
// prototype it stands for, so the compiler checks every call, and the symbol looked
// up is the one the header's macros select (cuMemAlloc is cuMemAlloc_v2, and so on).
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cudadl.h"

#define KD_STR(s) #s
#define KD_XSTR(s) KD_STR(s)

#define KD_CU_FUNCS(X) \
	X(cuInit) X(cuDriverGetVersion) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetAttribute) \
	X(cuDeviceGetName) X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuCtxSetCurrent) \
	X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize) X(cuModuleLoadData) X(cuModuleUnload) \
	X(cuModuleGetFunction) X(cuModuleGetGlobal) X(cuMemAlloc) X(cuMemFree) X(cuMemsetD32Async) \
	X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync) X(cuMemcpyDtoDAsync) X(cuLaunchKernel) X(cuGetErrorName) \
	X(cuGetErrorString) X(cuMemGetInfo)

#define KD_BLAS_FUNCS(X) \
	X(cublasCreate) X(cublasDestroy) X(cublasSetStream) X(cublasSetMathMode) X(cublasGemmEx) \
	X(cublasGemmStridedBatchedEx) X(cublasGetStatusString)

#define KD_NVRTC_FUNCS(X) \
	X(nvrtcCreateProgram) X(nvrtcDestroyProgram) X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize) \
	X(nvrtcGetProgramLog) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN) X(nvrtcGetErrorString)

#define KD_DECLARE(f) static __typeof__(f) *p_##f;
KD_CU_FUNCS(KD_DECLARE)
KD_BLAS_FUNCS(KD_DECLARE)
KD_NVRTC_FUNCS(KD_DECLARE)

// kd_open_lib tries each name in turn, then each under $CUDA_HOME/lib64 and
// /usr/local/cuda/lib64, where the toolkit's libraries live when they are not on the
// loader's path.
static void *kd_open_lib(const char *const *names, char *err, int errlen) {
	const char *dirs[] = {getenv("CUDA_HOME"), "/usr/local/cuda"};
	char path[4096], first[512] = "";
	for (int i = 0; names[i]; i++) {
		void *h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
		if (h) return h;
		if (i == 0) {
			const char *why = dlerror();
			snprintf(first, sizeof first, "%s", why ? why : "not found");
		}
	}
	for (int d = 0; d < 2; d++) {
		if (!dirs[d] || !dirs[d][0]) continue;
		for (int i = 0; names[i]; i++) {
			snprintf(path, sizeof path, "%s/lib64/%s", dirs[d], names[i]);
			void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
			if (h) return h;
		}
	}
	// The first name's failure is the informative one (the soname the loader looked for).
	snprintf(err, errlen, "%s not loadable (%s)", names[0], first);
	return NULL;
}

// The pointer's name is pasted where the function's name is still unexpanded
// (p_cuMemAlloc); the symbol string is taken after expansion ("cuMemAlloc_v2").
#define KD_RESOLVE(lib, ptr, f) \
	ptr = (__typeof__(ptr))dlsym(lib, KD_XSTR(f)); \
	if (!ptr) { snprintf(err, errlen, "symbol %s missing from %s", KD_XSTR(f), libname); return 4; }
#define KD_RESOLVE_CU(f) KD_RESOLVE(cu, p_##f, f)
#define KD_RESOLVE_BLAS(f) KD_RESOLVE(blas, p_##f, f)
#define KD_RESOLVE_NVRTC(f) KD_RESOLVE(rtc, p_##f, f)

int kd_load(char *err, int errlen) {
	static const char *cuNames[] = {"libcuda.so.1", "libcuda.so", NULL};
	static const char *blasNames[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", NULL};
	static const char *rtcNames[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", NULL};
	const char *libname;
	void *cu = kd_open_lib(cuNames, err, errlen);
	if (!cu) return 1;
	libname = "libcuda";
	KD_CU_FUNCS(KD_RESOLVE_CU)
	void *blas = kd_open_lib(blasNames, err, errlen);
	if (!blas) return 2;
	libname = "libcublas";
	KD_BLAS_FUNCS(KD_RESOLVE_BLAS)
	void *rtc = kd_open_lib(rtcNames, err, errlen);
	if (!rtc) return 3;
	libname = "libnvrtc";
	KD_NVRTC_FUNCS(KD_RESOLVE_NVRTC)
	return 0;
}

const char *kd_cu_error_name(CUresult r) {
	const char *s = NULL;
	if (p_cuGetErrorName) p_cuGetErrorName(r, &s);
	return s;
}

const char *kd_cu_error_string(CUresult r) {
	const char *s = NULL;
	if (p_cuGetErrorString) p_cuGetErrorString(r, &s);
	return s;
}

const char *kd_blas_error_string(cublasStatus_t s) {
	return p_cublasGetStatusString ? p_cublasGetStatusString(s) : NULL;
}

const char *kd_nvrtc_error_string(nvrtcResult r) {
	return p_nvrtcGetErrorString ? p_nvrtcGetErrorString(r) : NULL;
}

CUresult kd_init(int *count, int *driverVersion) {
	CUresult r = p_cuInit(0);
	if (r != CUDA_SUCCESS) return r;
	r = p_cuDriverGetVersion(driverVersion);
	if (r != CUDA_SUCCESS) return r;
	return p_cuDeviceGetCount(count);
}

// Every entry point below makes the device's context current first: Go may run a
// goroutine on a different OS thread from one cgo call to the next, and a context is
// current per thread. Doing it inside the same C call as the work closes that window.
#define KD_BIND(d) do { CUresult _r = p_cuCtxSetCurrent((d)->ctx); if (_r != CUDA_SUCCESS) return _r; } while (0)

CUresult kd_open(kd_device *d, int ordinal, int *major, int *minor, int *sms, char *name, int namelen) {
	CUresult r;
	memset(d, 0, sizeof *d);
	if ((r = p_cuDeviceGet(&d->dev, ordinal)) != CUDA_SUCCESS) return r;
	if ((r = p_cuDeviceGetAttribute(major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d->dev)) != CUDA_SUCCESS) return r;
	if ((r = p_cuDeviceGetAttribute(minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d->dev)) != CUDA_SUCCESS) return r;
	if ((r = p_cuDeviceGetAttribute(sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d->dev)) != CUDA_SUCCESS) return r;
	if ((r = p_cuDeviceGetName(name, namelen, d->dev)) != CUDA_SUCCESS) return r;
	if ((r = p_cuDevicePrimaryCtxRetain(&d->ctx, d->dev)) != CUDA_SUCCESS) return r;
	d->haveCtx = 1;
	KD_BIND(d);
	return p_cuStreamCreate(&d->stream, CU_STREAM_NON_BLOCKING);
}

cublasStatus_t kd_blas_create(kd_device *d) {
	if (p_cuCtxSetCurrent(d->ctx) != CUDA_SUCCESS) return CUBLAS_STATUS_NOT_INITIALIZED;
	cublasStatus_t s = p_cublasCreate(&d->blas);
	if (s != CUBLAS_STATUS_SUCCESS) return s;
	return p_cublasSetStream(d->blas, (cudaStream_t)d->stream);
}

void kd_close(kd_device *d) {
	if (!d->haveCtx) return;
	p_cuCtxSetCurrent(d->ctx);
	if (d->stream) p_cuStreamSynchronize(d->stream);
	if (d->blas) p_cublasDestroy(d->blas);
	if (d->module) p_cuModuleUnload(d->module);
	if (d->stream) p_cuStreamDestroy(d->stream);
	p_cuDevicePrimaryCtxRelease(d->dev);
	memset(d, 0, sizeof *d);
}

nvrtcResult kd_compile(const char *src, int arch, char **image, size_t *imageLen, char **log) {
	nvrtcProgram prog;
	*image = NULL;
	*log = NULL;
	nvrtcResult r = p_nvrtcCreateProgram(&prog, src, "kadapt_kernels.cu", 0, NULL, NULL);
	if (r != NVRTC_SUCCESS) return r;
	char archOpt[64];
	snprintf(archOpt, sizeof archOpt, "--gpu-architecture=sm_%d", arch);
	const char *opts[] = {archOpt, "--std=c++17"};
	r = p_nvrtcCompileProgram(prog, 2, opts);
	size_t n = 0;
	if (p_nvrtcGetProgramLogSize(prog, &n) == NVRTC_SUCCESS && n > 1) {
		*log = malloc(n);
		if (*log && p_nvrtcGetProgramLog(prog, *log) != NVRTC_SUCCESS) (*log)[0] = 0;
	}
	if (r == NVRTC_SUCCESS) {
		r = p_nvrtcGetCUBINSize(prog, imageLen);
		if (r == NVRTC_SUCCESS) {
			*image = malloc(*imageLen);
			r = *image ? p_nvrtcGetCUBIN(prog, *image) : NVRTC_ERROR_OUT_OF_MEMORY;
		}
	}
	p_nvrtcDestroyProgram(&prog);
	return r;
}

CUresult kd_module_load(kd_device *d, const void *image) {
	KD_BIND(d);
	CUresult r = p_cuModuleLoadData(&d->module, image);
	if (r != CUDA_SUCCESS) return r;
	size_t bytes;
	r = p_cuModuleGetGlobal(&d->status, &bytes, d->module, "kd_status");
	if (r != CUDA_SUCCESS) return r;
	return p_cuMemsetD32Async(d->status, 0, 1, d->stream);
}

CUresult kd_function(kd_device *d, const char *name, CUfunction *f) {
	return p_cuModuleGetFunction(f, d->module, name);
}

CUresult kd_alloc(kd_device *d, size_t bytes, CUdeviceptr *p) {
	KD_BIND(d);
	return p_cuMemAlloc(p, bytes);
}

CUresult kd_free(kd_device *d, CUdeviceptr p) {
	KD_BIND(d);
	return p_cuMemFree(p);
}

CUresult kd_memset32(kd_device *d, CUdeviceptr p, unsigned int v, size_t n) {
	KD_BIND(d);
	return p_cuMemsetD32Async(p, v, n, d->stream);
}

// kd_upload queues the copy on the stream, so it lands after every op already queued
// that may still read the buffer (pooled buffers are reused at once). The driver
// stages pageable host memory before the call returns, so the caller may reuse src.
CUresult kd_upload(kd_device *d, CUdeviceptr dst, const void *src, size_t bytes) {
	KD_BIND(d);
	return p_cuMemcpyHtoDAsync(dst, src, bytes, d->stream);
}

// kd_sync waits for the stream and reads the kernels' error word, clearing it.
CUresult kd_sync(kd_device *d, unsigned int *status) {
	KD_BIND(d);
	*status = 0;
	CUresult r;
	if (d->status && (r = p_cuMemcpyDtoHAsync(status, d->status, sizeof *status, d->stream)) != CUDA_SUCCESS) return r;
	if ((r = p_cuStreamSynchronize(d->stream)) != CUDA_SUCCESS) return r;
	if (*status) return p_cuMemsetD32Async(d->status, 0, 1, d->stream);
	return CUDA_SUCCESS;
}

CUresult kd_download(kd_device *d, void *dst, CUdeviceptr src, size_t bytes, unsigned int *status) {
	KD_BIND(d);
	CUresult r = p_cuMemcpyDtoHAsync(dst, src, bytes, d->stream);
	if (r != CUDA_SUCCESS) return r;
	return kd_sync(d, status);
}

CUresult kd_copy(kd_device *d, CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
	KD_BIND(d);
	return p_cuMemcpyDtoDAsync(dst, src, bytes, d->stream);
}

CUresult kd_mem_info(kd_device *d, size_t *freeBytes, size_t *totalBytes) {
	KD_BIND(d);
	return p_cuMemGetInfo(freeBytes, totalBytes);
}

// kd_launch points one kernelParams entry at each packed parameter. The driver copies
// the values before returning, so the buffer may live in Go memory.
CUresult kd_launch(kd_device *d, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   char *args, const int *offs, int n) {
	void *params[KD_MAX_PARAMS];
	if (n > KD_MAX_PARAMS) return CUDA_ERROR_INVALID_VALUE;
	for (int i = 0; i < n; i++) params[i] = args + offs[i];
	KD_BIND(d);
	return p_cuLaunchKernel(f, gx, gy, gz, bx, by, 1, 0, d->stream, params, NULL);
}

cublasStatus_t kd_set_tf32(kd_device *d, int on) {
	if (p_cuCtxSetCurrent(d->ctx) != CUDA_SUCCESS) return CUBLAS_STATUS_NOT_INITIALIZED;
	return p_cublasSetMathMode(d->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
}

// kd_gemm is C = alpha·op(A)·op(B) + beta·C on column-major operands, batched with
// element strides (0 shares an operand across the batch). C is float32; A and B are
// float32, or bfloat16 when bf16 is set (float32 accumulation either way). TF32 is
// chosen per call through the compute type as well as by the handle's math mode, so
// neither can leave the other stale.
cublasStatus_t kd_gemm(kd_device *d, int tf32, int bf16, int opA, int opB, int m, int n, int k, float alpha,
                       CUdeviceptr a, int lda, long long sa, CUdeviceptr b, int ldb, long long sb, float beta,
                       CUdeviceptr c, int ldc, long long sc, int batch) {
	if (p_cuCtxSetCurrent(d->ctx) != CUDA_SUCCESS) return CUBLAS_STATUS_NOT_INITIALIZED;
	cublasOperation_t ta = opA ? CUBLAS_OP_T : CUBLAS_OP_N, tb = opB ? CUBLAS_OP_T : CUBLAS_OP_N;
	cublasComputeType_t ct = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
	cudaDataType_t in = bf16 ? CUDA_R_16BF : CUDA_R_32F;
	if (batch == 1)
		return p_cublasGemmEx(d->blas, ta, tb, m, n, k, &alpha, (const void *)a, in, lda,
			(const void *)b, in, ldb, &beta, (void *)c, CUDA_R_32F, ldc, ct, CUBLAS_GEMM_DEFAULT);
	return p_cublasGemmStridedBatchedEx(d->blas, ta, tb, m, n, k, &alpha, (const void *)a, in, lda, sa,
		(const void *)b, in, ldb, sb, &beta, (void *)c, CUDA_R_32F, ldc, sc, batch, ct, CUBLAS_GEMM_DEFAULT);
}

// A parameter list shaped like k_binary's: (int, float*, const float*, const float*,
// Idx, long long), plus the other scalar kinds the packer handles.
struct kd_idx { long long rank, shape[8], sa[8], sb[8]; };
struct kd_params {
	int op;
	float *d;
	const float *a;
	struct kd_idx ix;
	float f;
	long long n;
	int acc;
	unsigned long long seed;
	float g;
};

void kd_param_layout(long long *out) {
	out[0] = offsetof(struct kd_params, op);
	out[1] = offsetof(struct kd_params, d);
	out[2] = offsetof(struct kd_params, a);
	out[3] = offsetof(struct kd_params, ix);
	out[4] = offsetof(struct kd_params, f);
	out[5] = offsetof(struct kd_params, n);
	out[6] = offsetof(struct kd_params, acc);
	out[7] = offsetof(struct kd_params, seed);
	out[8] = offsetof(struct kd_params, g);
	out[9] = sizeof(struct kd_idx);
}
