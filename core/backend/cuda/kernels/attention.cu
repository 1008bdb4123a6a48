// Fused multi-head self-attention (core.FusedAttention): one block per (sequence,
// head) reads its head's columns straight from the [N, L, H·D] q, k and v
// projections and writes the output in the same layout, so the four head permutes of
// the composed path, its separate softmax pass and the batched-product launches are
// gone. probs [N, H, L, L] keeps the attention weights for the backward pass. Under
// bf16 autocast (bf16 = 1) every product operand is rounded as the cuBLAS path rounds
// it. ViT sequences are short (50 tokens at B/32, 197 at B/16, 77 in the text tower),
// so a head's q, k, v and weights stay in L1/L2 and are read from global memory.

// MHA_TILE bounds the shared-memory copy of one head's k (forward) or v (backward):
// L·(D+1) floats, 32 KB. Rows are padded to D+1 so that the lanes of a warp, which
// read different rows at the same column, hit different banks; read straight from the
// [N, L, H·D] layout they would touch a cache line each. Longer heads (ViT-B/16's 197
// tokens) read global memory.
#define MHA_TILE 8192

// mhaStage copies the L×D head at src (row stride w) into tile with row stride D+1
// (rounded to bfloat16 under autocast) when it fits, and says where to read it.
__device__ __forceinline__ const float* mhaStage(float* tile, const float* src, int L, int D, long long w, int bf16,
                                                 long long* stride) {
  if ((long long)L * (D + 1) > MHA_TILE) {
    *stride = w;
    return src;
  }
  for (int e = threadIdx.x; e < L * D; e += blockDim.x) {
    int r = e / D, c = e % D;
    tile[r * (D + 1) + c] = asBF16(src[r * w + c], bf16);
  }
  __syncthreads();
  *stride = D + 1;
  return tile;
}

// mhaHead points q, k, v (and an output o) at head h of sequence n.
struct MhaHead {
  long long base, w, nh;
};

__device__ __forceinline__ MhaHead mhaHead(int L, int H, int D) {
  MhaHead m;
  m.nh = blockIdx.x;
  long long n = m.nh / H, h = m.nh % H;
  m.w = (long long)H * D;
  m.base = n * L * m.w + h * D;
  return m;
}

// mhaProduct writes (or with acc adds) out = scale·op(S)·X for one head: S is [L, L]
// row-major, op(S) is S or, with trans, Sᵀ; X and out are [L, D] with row stride w.
// With causal, row r of S has no weight past column r. The lanes of a warp take
// consecutive columns d, so X's rows are read coalesced and S's entry is shared.
__device__ void mhaProduct(float* out, const float* S, const float* X, int L, int D, long long w, int trans,
                           int causal, float scale, int acc, int bf16) {
  for (int e = threadIdx.x; e < L * D; e += blockDim.x) {
    int r = e / D, d = e % D;
    int end = causal ? r + 1 : L;
    float s = 0.f;
    for (int c = 0; c < end; c++) s += asBF16(trans ? S[c * L + r] : S[r * L + c], bf16) * asBF16(X[c * w + d], bf16);
    s *= scale;
    out[r * w + d] = acc ? out[r * w + d] + s : s;
  }
}

// k_mha_fwd: probs = softmax(q·kᵀ·scale + mask), out = probs·v.
extern "C" __global__ void k_mha_fwd(float* out, float* probs, const float* q, const float* k, const float* v, int L,
                                     int H, int D, int causal, float scale, int bf16) {
  MhaHead m = mhaHead(L, H, D);
  const float *Q = q + m.base, *K = k + m.base, *V = v + m.base;
  float* O = out + m.base;
  float* P = probs + m.nh * L * L;
  long long W = m.w;
  __shared__ float tile[MHA_TILE];
  long long ks;
  // A staged k is already rounded; asBF16 leaves a rounded value as it is.
  const float* Kt = mhaStage(tile, K, L, D, W, bf16, &ks);
  for (int e = threadIdx.x; e < L * L; e += blockDim.x) {
    int i = e / L, j = e % L;
    float s = NEG_INF;
    if (!causal || j <= i) {
      float acc = 0.f;
      for (int d = 0; d < D; d++) acc += asBF16(Q[i * W + d], bf16) * asBF16(Kt[j * ks + d], bf16);
      s = scale * acc;
    }
    P[e] = s;
  }
  __syncthreads();
  // A warp per row; the loop bound is the same for the whole warp, so the shuffles
  // stay in step.
  int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  for (int i = threadIdx.x >> 5; i < L; i += nw) {
    float* r = P + (long long)i * L;
    float mx = NEG_INF;
    for (int j = lane; j < L; j += 32) mx = rcombine(1, mx, r[j]);
    mx = warpReduce(1, mx);
    float sum = 0.f;
    for (int j = lane; j < L; j += 32) {
      float e = expf(r[j] - mx);
      r[j] = e;
      sum += e;
    }
    float inv = 1.f / warpReduce(0, sum);
    for (int j = lane; j < L; j += 32) r[j] *= inv;
  }
  __syncthreads();
  mhaProduct(O, P, V, L, D, W, 0, causal, 1.f, 0, bf16);
}

// k_mha_bwd: dv = probsᵀ·dout; ds = probs ⊙ (dout·vᵀ − rowsum(probs ⊙ dout·vᵀ)),
// kept in the scratch ds [N, H, L, L]; dq = ds·k·scale; dk = dsᵀ·q·scale. A null
// gradient is skipped; acc* = 1 adds to it. Masked weights are 0, so the mask needs no
// second look.
extern "C" __global__ void k_mha_bwd(float* dq, float* dk, float* dv, float* ds, const float* dout, const float* q,
                                     const float* k, const float* v, const float* probs, int L, int H, int D,
                                     float scale, int accQ, int accK, int accV, int bf16) {
  MhaHead m = mhaHead(L, H, D);
  const float *Q = q + m.base, *K = k + m.base, *V = v + m.base, *G = dout + m.base;
  const float* P = probs + m.nh * L * L;
  float* S = ds + m.nh * L * L;
  long long W = m.w;
  if (dv) mhaProduct(dv + m.base, P, G, L, D, W, 1, 0, 1.f, accV, bf16);
  if (!dq && !dk) return;  // uniform across the block: no barrier is skipped by some threads only
  __shared__ float tile[MHA_TILE];
  long long vs;
  const float* Vt = mhaStage(tile, V, L, D, W, bf16, &vs);
  int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  for (int i = threadIdx.x >> 5; i < L; i += nw) {
    const float* pr = P + (long long)i * L;
    float* sr = S + (long long)i * L;
    float dot = 0.f;
    for (int j = lane; j < L; j += 32) {
      float acc = 0.f;
      for (int d = 0; d < D; d++) acc += asBF16(G[i * W + d], bf16) * asBF16(Vt[j * vs + d], bf16);
      sr[j] = acc;
      dot += pr[j] * acc;
    }
    dot = warpReduce(0, dot);
    for (int j = lane; j < L; j += 32) sr[j] = pr[j] * (sr[j] - dot);
  }
  __syncthreads();
  if (dq) mhaProduct(dq + m.base, S, K, L, D, W, 0, 0, scale, accQ, bf16);
  if (dk) mhaProduct(dk + m.base, S, Q, L, D, W, 1, 0, scale, accK, bf16);
}
