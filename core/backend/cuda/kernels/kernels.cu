// kadapt's CUDA kernels, compiled at start-up by NVRTC for the device in use (see
// docs/cuda.md). Every kernel is the device twin of a core.Backend method; the CPU
// and reference backends define the semantics, and core/backendtest checks these
// against the reference. Grid-stride loops keep every launch correct for any size.

#define MAXR 8
#define NEG_INF __int_as_float(0xff800000)
struct Idx {
  long long rank;
  long long shape[MAXR];   // output (or iteration) shape
  long long sa[MAXR];      // strides of the first input over that shape (0 = broadcast)
  long long sb[MAXR];      // strides of the second input, or the reduced-axis sizes
};

#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)blockDim.x * gridDim.x)

extern "C" __global__ void k_fill(float* d, float v, long long n) { LOOP(i, n) d[i] = v; }

extern "C" __global__ void k_axpby(float* d, float a, const float* x, float b, long long n) {
  LOOP(i, n) d[i] = (b == 0.f) ? a * x[i] : a * x[i] + b * d[i];
}

__device__ float binop(int op, float a, float b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return (a != a || b != b) ? (a + b) : fmaxf(a, b);
    default: return a == b ? 1.f : 0.f;
  }
}

extern "C" __global__ void k_binary(int op, float* d, const float* a, const float* b, Idx ix, long long n) {
  LOOP(i, n) {
    long long r = i, oa = 0, ob = 0;
    for (int k = (int)ix.rank - 1; k >= 0; k--) {
      long long c = r % ix.shape[k];
      r /= ix.shape[k];
      oa += c * ix.sa[k];
      ob += c * ix.sb[k];
    }
    d[i] = binop(op, a[oa], b[ob]);
  }
}

__device__ float sigm(float x) { return 1.f / (1.f + expf(-x)); }

__device__ float unop(int op, float x) {
  switch (op) {
    case 0: return -x;
    case 1: return expf(x);
    case 2: return logf(x);
    case 3: return sqrtf(x);
    case 4: return rsqrtf(x);
    case 5: return x * x;
    case 6: return fabsf(x);
    case 7: return x > 0.f ? x : 0.f;
    case 8: return 0.5f * x * erfcf(-x * 0.70710678118654752f);
    case 9: return x * sigm(1.702f * x);
    case 10: return x * sigm(x);
    case 11: return sigm(x);
    default: return tanhf(x);
  }
}

__device__ float unopGrad(int op, float x) {
  switch (op) {
    case 0: return -1.f;
    case 1: return expf(x);
    case 2: return 1.f / x;
    case 3: return 0.5f * rsqrtf(x);
    case 4: return -0.5f * rsqrtf(x) / x;
    case 5: return 2.f * x;
    case 6: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
    case 7: return x > 0.f ? 1.f : 0.f;
    case 8: return 0.5f * erfcf(-x * 0.70710678118654752f) + x * 0.39894228040143268f * expf(-0.5f * x * x);
    case 9: { float s = sigm(1.702f * x); return s + 1.702f * x * s * (1.f - s); }
    case 10: { float s = sigm(x); return s + x * s * (1.f - s); }
    case 11: { float s = sigm(x); return s * (1.f - s); }
    default: { float t = tanhf(x); return 1.f - t * t; }
  }
}

extern "C" __global__ void k_unary(int op, float* d, const float* x, long long n) { LOOP(i, n) d[i] = unop(op, x[i]); }

extern "C" __global__ void k_unary_grad(int op, float* dx, const float* x, const float* dy, long long n, int acc) {
  LOOP(i, n) {
    float g = unopGrad(op, x[i]) * dy[i];
    dx[i] = acc ? dx[i] + g : g;
  }
}

// One thread per output; ix.shape is the output shape (reduced axes 1), ix.sa the
// input strides, ix.sb the reduced axes' sizes (1 elsewhere).
extern "C" __global__ void k_reduce(int op, float* d, const float* x, Idx ix, long long n, long long inner, int acc) {
  LOOP(i, n) {
    long long r = i, base = 0;
    for (int k = (int)ix.rank - 1; k >= 0; k--) {
      long long c = r % ix.shape[k];
      r /= ix.shape[k];
      base += c * ix.sa[k];
    }
    double s = 0.0;
    float m = NEG_INF;
    for (long long j = 0; j < inner; j++) {
      long long q = j, off = base;
      for (int k = (int)ix.rank - 1; k >= 0; k--) {
        long long c = q % ix.sb[k];
        q /= ix.sb[k];
        off += c * ix.sa[k];
      }
      float v = x[off];
      if (op == 0) s += v; else m = fmaxf(m, v);
    }
    float out = op == 0 ? (float)s : m;
    d[i] = acc ? d[i] + out : out;
  }
}

// dst index -> source offset through the permuted strides in ix.sa.
extern "C" __global__ void k_permute(float* d, const float* x, Idx ix, long long n) {
  LOOP(i, n) {
    long long r = i, off = 0;
    for (int k = (int)ix.rank - 1; k >= 0; k--) {
      long long c = r % ix.shape[k];
      r /= ix.shape[k];
      off += c * ix.sa[k];
    }
    d[i] = x[off];
  }
}

extern "C" __global__ void k_copy_along(float* d, const float* s, long long outer, long long dAx, long long sAx,
                                        long long dOff, long long sOff, long long cnt, long long inner, int acc) {
  long long n = outer * cnt * inner;
  LOOP(i, n) {
    long long in = i % inner, t = i / inner, a = t % cnt, o = t / cnt;
    long long di = (o * dAx + dOff + a) * inner + in, si = (o * sAx + sOff + a) * inner + in;
    d[di] = acc ? d[di] + s[si] : s[si];
  }
}

extern "C" __global__ void k_gather(float* d, const float* x, const float* idx, long long outer, long long xAx,
                                    long long cnt, long long inner) {
  long long n = outer * cnt * inner;
  LOOP(i, n) {
    long long in = i % inner, t = i / inner, a = t % cnt, o = t / cnt;
    d[i] = x[(o * xAx + (long long)idx[a]) * inner + in];
  }
}

extern "C" __global__ void k_scatter_add(float* d, const float* s, const float* idx, long long outer, long long dAx,
                                         long long cnt, long long inner) {
  long long n = outer * cnt * inner;
  LOOP(i, n) {
    long long in = i % inner, t = i / inner, a = t % cnt, o = t / cnt;
    atomicAdd(&d[(o * dAx + (long long)idx[a]) * inner + in], s[i]);
  }
}

// Block-wide reductions for the row kernels (blockDim.x = 256).
__device__ float blockSum(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  float t = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : 0.f;
  if (threadIdx.x < 32)
    for (int o = 16; o > 0; o >>= 1) t += __shfl_down_sync(0xffffffff, t, o);
  if (threadIdx.x == 0) sh[0] = t;
  __syncthreads();
  float r = sh[0];
  __syncthreads();
  return r;
}

__device__ float blockMax(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffff, v, o));
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  float t = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : NEG_INF;
  if (threadIdx.x < 32)
    for (int o = 16; o > 0; o >>= 1) t = fmaxf(t, __shfl_down_sync(0xffffffff, t, o));
  if (threadIdx.x == 0) sh[0] = t;
  __syncthreads();
  float r = sh[0];
  __syncthreads();
  return r;
}

// mode 0: softmax, 1: log-softmax. One block per row.
extern "C" __global__ void k_softmax(int mode, float* d, const float* x, long long cols) {
  __shared__ float sh[32];
  const float* xr = x + blockIdx.x * cols;
  float* dr = d + blockIdx.x * cols;
  float m = NEG_INF;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
  m = blockMax(m, sh);
  float s = 0.f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += expf(xr[j] - m);
  s = blockSum(s, sh);
  float ls = logf(s);
  for (long long j = threadIdx.x; j < cols; j += blockDim.x)
    dr[j] = mode == 0 ? expf(xr[j] - m) / s : xr[j] - m - ls;
}

// mode 0: dx = y·(dy − Σ dy·y); 1: dx = dy − exp(y)·Σ dy.
extern "C" __global__ void k_softmax_grad(int mode, float* dx, const float* y, const float* dy, long long cols, int acc) {
  __shared__ float sh[32];
  long long o = blockIdx.x * cols;
  float s = 0.f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += mode == 0 ? dy[o + j] * y[o + j] : dy[o + j];
  s = blockSum(s, sh);
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
    float g = mode == 0 ? y[o + j] * (dy[o + j] - s) : dy[o + j] - expf(y[o + j]) * s;
    dx[o + j] = acc ? dx[o + j] + g : g;
  }
}

// One block per row; loss must be zeroed before the launch.
extern "C" __global__ void k_cross_entropy(float* loss, float* dl, const float* x, const float* labels, long long cols,
                                           float smooth, float invN) {
  __shared__ float sh[32];
  long long o = blockIdx.x * cols;
  int lab = (int)labels[blockIdx.x];
  float m = NEG_INF;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, x[o + j]);
  m = blockMax(m, sh);
  float s = 0.f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += expf(x[o + j] - m);
  s = blockSum(s, sh);
  float lse = m + logf(s), part = 0.f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
    float q = smooth / cols + (j == lab ? 1.f - smooth : 0.f);
    part += q * (lse - x[o + j]);
    dl[o + j] = (expf(x[o + j] - lse) - q) * invN;
  }
  part = blockSum(part, sh);
  if (threadIdx.x == 0) atomicAdd(loss, part * invN);
}

extern "C" __global__ void k_bce(float* loss, float* dl, const float* x, const float* t, long long n, float invN) {
  float part = 0.f;
  LOOP(i, n) {
    float v = x[i];
    part += fmaxf(v, 0.f) - v * t[i] + log1pf(expf(-fabsf(v)));
    dl[i] = (1.f / (1.f + expf(-v)) - t[i]) * invN;
  }
  atomicAdd(loss, part * invN);
}

// One block per row; gamma/beta/mean/rstd may be null.
extern "C" __global__ void k_layer_norm(float* d, float* mean, float* rstd, const float* x, const float* g,
                                        const float* b, long long cols, float eps) {
  __shared__ float sh[32];
  long long o = blockIdx.x * cols;
  float s = 0.f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += x[o + j];
  float mu = blockSum(s, sh) / cols;
  float v = 0.f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) { float c = x[o + j] - mu; v += c * c; }
  float rs = rsqrtf(blockSum(v, sh) / cols + eps);
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
    float y = (x[o + j] - mu) * rs;
    if (g) y *= g[j];
    if (b) y += b[j];
    d[o + j] = y;
  }
  if (threadIdx.x == 0) {
    if (mean) mean[blockIdx.x] = mu;
    if (rstd) rstd[blockIdx.x] = rs;
  }
}

extern "C" __global__ void k_layer_norm_grad(float* dx, float* dg, float* db, const float* dy, const float* x,
                                             const float* mean, const float* rstd, const float* g, long long cols, int acc) {
  __shared__ float sh[32];
  long long o = blockIdx.x * cols;
  float mu = mean[blockIdx.x], rs = rstd[blockIdx.x];
  float s1 = 0.f, s2 = 0.f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
    float xh = (x[o + j] - mu) * rs, gy = dy[o + j] * (g ? g[j] : 1.f);
    s1 += gy;
    s2 += gy * xh;
    if (dg) atomicAdd(&dg[j], dy[o + j] * xh);
    if (db) atomicAdd(&db[j], dy[o + j]);
  }
  s1 = blockSum(s1, sh) / cols;
  s2 = blockSum(s2, sh) / cols;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
    float xh = (x[o + j] - mu) * rs, gy = dy[o + j] * (g ? g[j] : 1.f);
    float v = rs * (gy - s1 - xh * s2);
    dx[o + j] = acc ? dx[o + j] + v : v;
  }
}

// core.DropoutUniform, bit for bit.
__device__ float dropoutUniform(unsigned long long seed, long long i) {
  unsigned long long z = seed + (unsigned long long)i * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) / 16777216.f;
}

extern "C" __global__ void k_dropout(float* d, float* mask, const float* x, float p, unsigned long long seed, long long n) {
  float keep = 1.f / (1.f - p);
  LOOP(i, n) {
    float m = dropoutUniform(seed, i) >= p ? keep : 0.f;
    if (mask) mask[i] = m;
    d[i] = x[i] * m;
  }
}

extern "C" __global__ void k_sum_squares(float* d, const float* x, long long n) {
  float part = 0.f;
  LOOP(i, n) part += x[i] * x[i];
  atomicAdd(d, part);
}

extern "C" __global__ void k_scale_by(float* d, const float* s, float alpha, long long n) {
  float f = s[0] * alpha;
  LOOP(i, n) d[i] *= f;
}

extern "C" __global__ void k_sgd(float* p, const float* g, float* mom, float lr, float mu, float wd, int nesterov,
                                 int first, long long n) {
  LOOP(i, n) {
    float gi = g[i] + wd * p[i];
    float step = gi;
    if (mom) {
      float m = first ? gi : mu * mom[i] + gi;
      mom[i] = m;
      step = nesterov ? gi + mu * m : m;
    }
    p[i] -= lr * step;
  }
}

extern "C" __global__ void k_adamw(float* p, const float* g, float* m, float* v, float lr, float b1, float b2,
                                   float eps, float wd, float bc1, float bc2, long long n) {
  LOOP(i, n) {
    float pi = p[i] * (1.f - lr * wd);
    float mi = b1 * m[i] + (1.f - b1) * g[i];
    float vi = b2 * v[i] + (1.f - b2) * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
  }
}
