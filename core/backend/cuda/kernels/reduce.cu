// Reductions: Reduce, SumSquares. The host (reduce.go) merges x's axes into
// [A, R, K] — kept, reduced, kept — whenever the reduced axes are contiguous, which
// covers bias gradients ([R, K]), means over tokens ([A, R, K]) and row sums
// ([A, R]); anything else takes k_reduce's one-thread-per-output walk.
//
// Sums over long axes are split across S blocks (blockIdx.y or z) that add their
// partial results atomically into a destination the host has zeroed (or that holds
// the value to accumulate onto); the maximum never splits.

// k_reduce_rows: K == 1, contiguous rows of length R. Warp mode (R <= 1024) gives
// each row one warp; block mode gives each (row, split) one block.
extern "C" __global__ void k_reduce_rows(int op, float* d, const float* x, long long A, long long R, int acc,
                                         int warpMode, long long chunk) {
  __shared__ float sh[32];
  Row r = rowStart(warpMode);
  long long lo = 0, hi = R;
  int split = !warpMode && gridDim.y > 1;
  if (split) {
    lo = blockIdx.y * chunk;
    hi = lmin(R, lo + chunk);
  }
  for (; r.row < A; r.row += r.step) {
    const float* xr = x + r.row * R;
    float v = rident(op);
    for (long long j = lo + r.lane; j < hi; j += r.width) v = rcombine(op, v, xr[j]);
    v = rowReduce(r, op, v, sh);
    if (r.lane == 0) {
      if (split)
        atomicAdd(&d[r.row], v);
      else
        d[r.row] = acc ? d[r.row] + v : v;
    }
  }
}

// k_reduce_cols: K > 1. Blocks of 32×8 threads own 32 adjacent columns, so each warp
// reads 32 consecutive floats of a row; the 8 rows of threads stride down R and meet
// in shared memory. grid: x over column tiles, y over A, z over splits of R.
extern "C" __global__ void k_reduce_cols(int op, float* d, const float* x, long long A, long long R, long long K,
                                         int acc, long long chunk) {
  __shared__ float sh[8][33];
  long long k = blockIdx.x * 32LL + threadIdx.x;
  long long lo = blockIdx.z * chunk, hi = lmin(R, lo + chunk);
  int split = gridDim.z > 1;
  for (long long a = blockIdx.y; a < A; a += gridDim.y) {
    float v = rident(op);
    if (k < K) {
      const float* xa = x + a * R * K + k;
      for (long long j = lo + threadIdx.y; j < hi; j += 8) v = rcombine(op, v, xa[j * K]);
    }
    sh[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    if (threadIdx.y == 0 && k < K) {
      for (int t = 1; t < 8; t++) v = rcombine(op, v, sh[t][threadIdx.x]);
      long long o = a * K + k;
      if (split)
        atomicAdd(&d[o], v);
      else
        d[o] = acc ? d[o] + v : v;
    }
    __syncthreads();
  }
}

// k_reduce: one thread per output. ix.shape is dst's shape, ix.sa x's strides and
// ix.sb the reduced axes' sizes (1 on kept axes); inner is their product. Sums
// accumulate in double since one thread adds the whole run.
extern "C" __global__ void k_reduce(int op, float* d, const float* x, Idx ix, long long n, long long inner, int acc) {
  GRID_LOOP(i, n) {
    long long r = i, base = 0;
#pragma unroll
    for (int k = MAXR - 1; k >= 0; k--) {
      if (k >= ix.rank) continue;
      long long c = r % ix.shape[k];
      r /= ix.shape[k];
      base += c * ix.sa[k];
    }
    double s = 0.0;
    float m = NEG_INF;
    for (long long j = 0; j < inner; j++) {
      long long q = j, off = base;
#pragma unroll
      for (int k = MAXR - 1; k >= 0; k--) {
        if (k >= ix.rank) continue;
        long long c = q % ix.sb[k];
        q /= ix.sb[k];
        off += c * ix.sa[k];
      }
      if (op == 0)
        s += x[off];
      else
        m = rcombine(1, m, x[off]);
    }
    float out = op == 0 ? (float)s : m;
    d[i] = acc ? d[i] + out : out;
  }
}

// k_sum_squares adds Σx² into d[0] (zeroed by the host unless accumulating): one
// atomic per block.
extern "C" __global__ void k_sum_squares(float* d, const float* x, long long n) {
  __shared__ float sh[32];
  float v = 0.f;
  GRID_LOOP(i, n) v += x[i] * x[i];
  v = blockReduce(0, v, sh);
  if (threadIdx.x == 0) atomicAdd(d, v);
}
