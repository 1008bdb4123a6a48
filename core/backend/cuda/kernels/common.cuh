// Shared definitions for kadapt's kernels. The .cu files in this directory are
// concatenated after this one and compiled as one NVRTC program at start-up (see
// docs/cuda.md); each extern "C" kernel is the device twin of a core.Backend method.
// The CPU and reference backends define the semantics and core/backendtest checks
// these kernels against the reference.

#define MAXR 8
#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)
#define QNAN __int_as_float(0x7fffffff)

// Idx describes a strided walk over a shape of up to MAXR axes.
struct Idx {
  long long rank;
  long long shape[MAXR];  // iteration shape
  long long sa[MAXR];     // element strides of the first operand over it (0 = broadcast)
  long long sb[MAXR];     // strides of the second operand, or the reduced axes' sizes
};

// kd_status collects bad-input flags (an out-of-range index, say) that kernels cannot
// report otherwise. The host reads and clears it when it synchronises, so Sync and
// Download name the op at fault without a round trip per launch. Bits match
// statusNames in the Go package. C linkage keeps the symbol's name for
// cuModuleGetGlobal.
extern "C" {
__device__ unsigned int kd_status;
}
#define ST_GATHER 1u
#define ST_SCATTER 2u
#define ST_LABEL 4u

#define GRID_LOOP(i, n)                                                       \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
       i += (long long)blockDim.x * gridDim.x)

// Reductions: op 0 sums, op 1 takes the maximum. The maximum propagates NaN, as
// math.Max does on the CPU side.
__device__ __forceinline__ float rident(int op) { return op == 0 ? 0.f : NEG_INF; }

__device__ __forceinline__ float rcombine(int op, float a, float b) {
  if (op == 0) return a + b;
  return (a != a || a > b) ? a : b;
}

__device__ __forceinline__ float warpReduce(int op, float v) {
  for (int o = 16; o > 0; o >>= 1) v = rcombine(op, v, __shfl_xor_sync(FULL_MASK, v, o));
  return v;
}

// blockReduce combines one value per thread of the block; every thread gets the
// result. sh needs 32 floats. Every thread of the block must call it.
__device__ float blockReduce(int op, float v, float* sh) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warpReduce(op, v);
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < nw ? sh[lane] : rident(op);
    v = warpReduce(op, v);
    if (lane == 0) sh[0] = v;
  }
  __syncthreads();
  float r = sh[0];
  __syncthreads();
  return r;
}

// Row kernels (softmax, losses, layer norm) reduce along a contiguous row with either
// one warp per row (rows of at most 1024: the attention rows of a ViT are 50 long) or
// one block per row (longer rows). Row walks a kernel's rows in either mode: lane and
// width are the thread's position and the number of threads sharing the row.
struct Row {
  long long row, step;
  int lane, width, warpMode;
};

__device__ __forceinline__ Row rowStart(int warpMode) {
  Row r;
  r.warpMode = warpMode;
  if (warpMode) {
    int perBlock = blockDim.x >> 5;
    r.row = (long long)blockIdx.x * perBlock + (threadIdx.x >> 5);
    r.step = (long long)gridDim.x * perBlock;
    r.lane = threadIdx.x & 31;
    r.width = 32;
  } else {
    r.row = blockIdx.x;
    r.step = gridDim.x;
    r.lane = threadIdx.x;
    r.width = blockDim.x;
  }
  return r;
}

// rowReduce combines v over the threads sharing r's row. In warp mode a warp whose
// row is past the end has left its loop as a whole, so the shuffles stay in step; in
// block mode every thread of the block is on the same row.
__device__ __forceinline__ float rowReduce(const Row& r, int op, float v, float* sh) {
  return r.warpMode ? warpReduce(op, v) : blockReduce(op, v, sh);
}

__device__ __forceinline__ long long lmin(long long a, long long b) { return a < b ? a : b; }

// validIndex reports whether v is an integer in [0, n).
__device__ __forceinline__ bool validIndex(float v, long long n) {
  return v >= 0.f && v < (float)n && v == floorf(v);
}

// bf16Bits rounds float32 to bfloat16 to nearest, ties to even, as
// __float2bfloat16_rn does: adding 0x7fff plus the lowest kept bit carries into the
// kept half exactly when the dropped half is above one half, or equal to it with an
// odd kept half; overflow carries into the exponent and gives infinity. NaNs are kept
// quiet rather than rounded, which could turn them into infinities.
__device__ __forceinline__ unsigned short bf16Bits(float x) {
  unsigned u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// asBF16 is x rounded to bfloat16 when bf16 is set (an operand of a product under bf16
// autocast), x itself otherwise.
__device__ __forceinline__ float asBF16(float x, int bf16) {
  return bf16 ? __uint_as_float((unsigned)bf16Bits(x) << 16) : x;
}
