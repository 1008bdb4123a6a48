//go:build ignore

// emulator.cc runs kadapt's CUDA kernels on the CPU. It is not part of any Go build
// (hence the ignore constraint): package emu compiles it with the system's C++
// compiler into a shared library when a test asks, so the kernels it includes are
// always the current ones (the Go build cache does not track headers outside a
// package's directory), and loads it with dlopen.
//
// The kernel sources are compiled as C++ with the CUDA keywords defined away; each block's threads run as cooperative
// fibers (ucontext) on one OS thread, so __syncthreads and warp shuffles are real
// barriers and atomics need no locking. __shared__ becomes static, which is shared
// memory for the one block that runs at a time. Nothing here is fast; it exists so
// the kernels' indexing, reductions and row modes can be tested without a GPU.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>


struct Dim3 {
  unsigned x, y, z;
};

namespace {
enum State { Run, BlockBarrier, WarpBarrier, Done };
struct Fiber {
  ucontext_t ctx;
  Dim3 tid;
  int linear;
  State state;
};
Dim3 g_blockIdx, g_blockDim, g_gridDim;
Fiber* g_cur;
ucontext_t g_sched;
float g_warpVals[32][32];
std::function<void()> g_body;

void syncBlock() {
  g_cur->state = BlockBarrier;
  swapcontext(&g_cur->ctx, &g_sched);
}
void syncWarp() {
  g_cur->state = WarpBarrier;
  swapcontext(&g_cur->ctx, &g_sched);
}
}  // namespace

#define threadIdx (g_cur->tid)
#define blockIdx g_blockIdx
#define blockDim g_blockDim
#define gridDim g_gridDim
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

static inline float __int_as_float(long long v) {
  int32_t i = (int32_t)(uint32_t)v;
  float f;
  memcpy(&f, &i, 4);
  return f;
}
static inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline void __syncthreads() { syncBlock(); }
static inline float __shfl_xor_sync(unsigned, float v, int o) {
  int lane = g_cur->linear & 31, warp = g_cur->linear >> 5;
  g_warpVals[warp][lane] = v;
  syncWarp();
  float r = g_warpVals[warp][lane ^ o];
  syncWarp();
  return r;
}
static inline float atomicAdd(float* p, float v) {
  float old = *p;
  *p = old + v;
  return old;
}
static inline unsigned atomicOr(unsigned* p, unsigned v) {
  unsigned old = *p;
  *p = old | v;
  return old;
}

#include "../kernels/common.cuh"
#include "../kernels/attention.cu"
#include "../kernels/convert.cu"
#include "../kernels/elementwise.cu"
#include "../kernels/layernorm.cu"
#include "../kernels/layout.cu"
#include "../kernels/optim.cu"
#include "../kernels/reduce.cu"
#include "../kernels/softmax.cu"

namespace {
template <typename... A, size_t... I>
void invoke(void (*f)(A...), void** p, std::index_sequence<I...>) {
  f(*static_cast<A*>(p[I])...);
}
// launcher reads each parameter from its slot exactly as the driver would: the
// parameter's type decides how many bytes, so a Go-side packing error shows here.
template <typename... A>
std::pair<int, std::function<void(void**)>> launcher(void (*f)(A...)) {
  return {int(sizeof...(A)), [f](void** p) { invoke(f, p, std::index_sequence_for<A...>{}); }};
}
#define K(name) {#name, launcher(name)}
const std::map<std::string, std::pair<int, std::function<void(void**)>>> kernels = {
    K(k_axpby), K(k_binary_suffix), K(k_binary), K(k_unary), K(k_unary_grad), K(k_dropout), K(k_scale_by),
    K(k_permute), K(k_copy_along), K(k_gather), K(k_scatter_add), K(k_reduce_rows), K(k_reduce_cols), K(k_reduce),
    K(k_sum_squares), K(k_softmax), K(k_softmax_grad), K(k_cross_entropy), K(k_bce), K(k_layer_norm),
    K(k_layer_norm_dx), K(k_layer_norm_dparams), K(k_sgd), K(k_adamw), K(k_to_bf16), K(k_mha_fwd), K(k_mha_bwd), K(k_bias_unary),
};

const size_t kStack = 64 << 10;
std::vector<Fiber> g_fibers(1024);
std::vector<char*> g_stacks;

void fiberMain() {
  g_body();
  g_cur->state = Done;
}

// runBlock runs every thread of the current block to completion, releasing barriers
// when all live threads of the block (or of a warp) have reached them.
int runBlock(int threads) {
  while ((int)g_stacks.size() < threads) g_stacks.push_back((char*)malloc(kStack));
  for (int i = 0; i < threads; i++) {
    Fiber& f = g_fibers[i];
    f.linear = i;
    f.tid = Dim3{i % g_blockDim.x, i / g_blockDim.x, 0};
    f.state = Run;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = g_stacks[i];
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &g_sched;
    makecontext(&f.ctx, fiberMain, 0);
  }
  for (;;) {
    bool ran = false;
    for (int i = 0; i < threads; i++) {
      if (g_fibers[i].state != Run) continue;
      g_cur = &g_fibers[i];
      swapcontext(&g_sched, &g_fibers[i].ctx);
      ran = true;
    }
    int live = 0, atBlock = 0;
    for (int i = 0; i < threads; i++) {
      State s = g_fibers[i].state;
      live += s != Done;
      atBlock += s == BlockBarrier;
    }
    if (live == 0) return 0;
    if (atBlock == live) {
      for (int i = 0; i < threads; i++)
        if (g_fibers[i].state == BlockBarrier) g_fibers[i].state = Run;
      continue;
    }
    bool released = false;
    for (int w = 0; w * 32 < threads; w++) {
      int wl = 0, at = 0;
      for (int i = w * 32; i < threads && i < w * 32 + 32; i++) {
        wl += g_fibers[i].state != Done;
        at += g_fibers[i].state == WarpBarrier;
      }
      if (wl > 0 && at == wl) {
        for (int i = w * 32; i < threads && i < w * 32 + 32; i++) g_fibers[i].state = Run;
        released = true;
      }
    }
    if (!ran && !released) return 2;
  }
}
}  // namespace

extern "C" {

uintptr_t emu_alloc(size_t bytes);
void emu_free(uintptr_t p);
void emu_memset32(uintptr_t p, uint32_t v, size_t n);
void emu_copy(uintptr_t dst, uintptr_t src, size_t bytes);
void emu_upload(uintptr_t dst, const void* src, size_t bytes);
void emu_download(void* dst, uintptr_t src, size_t bytes);
uint32_t emu_take_status(void);
// emu_launch returns 0, 1 for an unknown kernel or parameter count, 2 for a deadlock
// (threads of a block waiting at different barriers), 3 for a bad block shape.
int emu_launch(const char* name, int gx, int gy, int gz, int bx, int by, const char* args, const int32_t* offs, int n);
void emu_gemm(int bf16, int transX, int transY, int m, int n, int k, float alpha, uintptr_t x, int ldx, long long sx,
              uintptr_t y, int ldy, long long sy, float beta, uintptr_t c, int ldc, long long sc, int batch);

uintptr_t emu_alloc(size_t bytes) { return (uintptr_t)malloc(bytes ? bytes : 1); }
void emu_free(uintptr_t p) { free((void*)p); }
void emu_memset32(uintptr_t p, uint32_t v, size_t n) {
  uint32_t* d = (uint32_t*)p;
  for (size_t i = 0; i < n; i++) d[i] = v;
}
void emu_copy(uintptr_t dst, uintptr_t src, size_t bytes) { memmove((void*)dst, (const void*)src, bytes); }
void emu_upload(uintptr_t dst, const void* src, size_t bytes) { memcpy((void*)dst, src, bytes); }
void emu_download(void* dst, uintptr_t src, size_t bytes) { memcpy(dst, (const void*)src, bytes); }
uint32_t emu_take_status(void) {
  uint32_t s = kd_status;
  kd_status = 0;
  return s;
}

int emu_launch(const char* name, int gx, int gy, int gz, int bx, int by, const char* args, const int32_t* offs, int n) {
  auto it = kernels.find(name);
  if (it == kernels.end() || it->second.first != n) return 1;
  if (bx * by > 1024 || bx * by < 1) return 3;
  void* params[32];
  for (int i = 0; i < n; i++) params[i] = (void*)(args + offs[i]);
  const auto& fn = it->second.second;
  g_body = [&fn, &params] { fn(params); };
  g_gridDim = Dim3{(unsigned)gx, (unsigned)gy, (unsigned)gz};
  g_blockDim = Dim3{(unsigned)bx, (unsigned)by, 1};
  for (int z = 0; z < gz; z++)
    for (int y = 0; y < gy; y++)
      for (int x = 0; x < gx; x++) {
        g_blockIdx = Dim3{(unsigned)x, (unsigned)y, (unsigned)z};
        if (int r = runBlock(bx * by)) return r;
      }
  return 0;
}

// emu_gemm is cuBLAS's column-major strided-batched GEMM, accumulating in double. With
// bf16 set the operands hold bfloat16: the high halves of float32s.
void emu_gemm(int bf16, int transX, int transY, int m, int n, int k, float alpha, uintptr_t x, int ldx, long long sx,
              uintptr_t y, int ldy, long long sy, float beta, uintptr_t c, int ldc, long long sc, int batch) {
  auto at = [bf16](uintptr_t base, long long i) -> double {
    if (!bf16) return ((const float*)base)[i];
    uint32_t u = (uint32_t)((const uint16_t*)base)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  };
  float* C = (float*)c;
  for (int p = 0; p < batch; p++)
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        double s = 0;
        for (int l = 0; l < k; l++) {
          double a = transX ? at(x, p * sx + l + (long long)i * ldx) : at(x, p * sx + i + (long long)l * ldx);
          double b = transY ? at(y, p * sy + j + (long long)l * ldy) : at(y, p * sy + l + (long long)j * ldy);
          s += a * b;
        }
        float* o = &C[p * sc + i + (long long)j * ldc];
        *o = beta == 0 ? (float)(alpha * s) : (float)(alpha * s + beta * *o);
      }
}
}
