//go:build cuda

// The CUDA driver, cuBLAS and NVRTC reached through dlopen: see cudadl.c.
#ifndef KADAPT_CUDADL_H
#define KADAPT_CUDADL_H

#include <stddef.h>
#include <cuda.h>
#include <cublas_v2.h>
#include <nvrtc.h>

// kd_device is one GPU's primary context with its stream, cuBLAS handle and module.
typedef struct {
	CUdevice dev;
	CUcontext ctx;
	CUstream stream;
	cublasHandle_t blas;
	CUmodule module;
	CUdeviceptr status; // the kernels' error word (kd_status in the module)
	int haveCtx;
} kd_device;

int kd_load(char *err, int errlen);
const char *kd_cu_error_name(CUresult r);
const char *kd_cu_error_string(CUresult r);
const char *kd_blas_error_string(cublasStatus_t s);
const char *kd_nvrtc_error_string(nvrtcResult r);

CUresult kd_init(int *count, int *driverVersion);
CUresult kd_open(kd_device *d, int ordinal, int *major, int *minor, int *sms, char *name, int namelen);
cublasStatus_t kd_blas_create(kd_device *d);
void kd_close(kd_device *d);

// kd_compile compiles src with NVRTC for sm_<arch>. On success *image is a malloc'd
// cubin; on failure *log is a malloc'd compiler log (either may be NULL).
nvrtcResult kd_compile(const char *src, int arch, char **image, size_t *imageLen, char **log);
CUresult kd_module_load(kd_device *d, const void *image);
CUresult kd_function(kd_device *d, const char *name, CUfunction *f);

CUresult kd_alloc(kd_device *d, size_t bytes, CUdeviceptr *p);
CUresult kd_free(kd_device *d, CUdeviceptr p);
CUresult kd_memset32(kd_device *d, CUdeviceptr p, unsigned int v, size_t n);
CUresult kd_upload(kd_device *d, CUdeviceptr dst, const void *src, size_t bytes);
CUresult kd_download(kd_device *d, void *dst, CUdeviceptr src, size_t bytes, unsigned int *status);
CUresult kd_copy(kd_device *d, CUdeviceptr dst, CUdeviceptr src, size_t bytes);
CUresult kd_sync(kd_device *d, unsigned int *status);
CUresult kd_mem_info(kd_device *d, size_t *freeBytes, size_t *totalBytes);
#define KD_MAX_PARAMS 16
CUresult kd_launch(kd_device *d, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   char *args, const int *offs, int n);

cublasStatus_t kd_set_tf32(kd_device *d, int on);
cublasStatus_t kd_gemm(kd_device *d, int tf32, int bf16, int opA, int opB, int m, int n, int k, float alpha,
                       CUdeviceptr a, int lda, long long sa, CUdeviceptr b, int ldb, long long sb, float beta,
                       CUdeviceptr c, int ldc, long long sc, int batch);

// kd_param_layout reports where a C compiler puts the members of a struct shaped like
// a kernel's parameter list, so the tests can check the Go packer against the ABI.
void kd_param_layout(long long *out);

#endif
