/*
 * Compatibility shim so gorgonia.org/cu v0.9.6 builds against CUDA 13 headers.
 *
 * CUDA 13.0 re-pointed five driver entry-point macros at new signatures
 * (cuCtxCreate -> _v4, cuMemAdvise/cuMemPrefetchAsync/cuGraphGetEdges/
 * cuGraphAddDependencies -> _v2). cu v0.9.6 calls them with the CUDA 12 argument
 * lists. The driver still exports the old symbols, so undoing the macros and
 * declaring the CUDA 12 prototypes is enough. This directory must come first on
 * the include path (the Makefile's CUDA_ENV does that); CUDA 12 headers pass
 * through untouched.
 */
#include_next <cuda.h>

#if defined(CUDA_VERSION) && CUDA_VERSION >= 13000 && !defined(KADAPT_CUDA13_COMPAT)
#define KADAPT_CUDA13_COMPAT 1
#ifdef __cplusplus
extern "C" {
#endif

#undef cuCtxCreate
#define cuCtxCreate cuCtxCreate_v2
CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev);

#undef cuMemAdvise
CUresult CUDAAPI cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device);

#undef cuMemPrefetchAsync
CUresult CUDAAPI cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream hStream);

#undef cuGraphGetEdges
CUresult CUDAAPI cuGraphGetEdges(CUgraph hGraph, CUgraphNode *from, CUgraphNode *to, size_t *numEdges);

#undef cuGraphAddDependencies
CUresult CUDAAPI cuGraphAddDependencies(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to, size_t numDependencies);

#ifdef __cplusplus
}
#endif
#endif
