// Elementwise kernels: Axpby, Binary, Unary, UnaryGrad, Dropout, ScaleBy, and the
// BiasActivation epilogue.

extern "C" __global__ void k_axpby(float* d, float alpha, const float* x, float beta, long long n) {
  // beta == 0 must not read d: it may hold NaN.
  if (beta == 0.f) {
    GRID_LOOP(i, n) d[i] = alpha * x[i];
  } else {
    GRID_LOOP(i, n) d[i] = alpha * x[i] + beta * d[i];
  }
}

__device__ __forceinline__ float binop(int op, float a, float b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return (a != a || b != b) ? a + b : fmaxf(a, b);  // NaN wins, as in math.Max
    default: return a == b ? 1.f : 0.f;
  }
}

// k_binary_suffix covers operands that are a suffix of the output shape (after
// dropping leading size-1 axes): equal shapes (na == n), a row broadcast over the
// leading axes (na == the last axes' size) and scalars (na == 1). Element i of the
// output reads element i mod na, with no per-axis index arithmetic.
extern "C" __global__ void k_binary_suffix(int op, float* d, const float* a, const float* b, long long n,
                                           long long na, long long nb) {
  GRID_LOOP(i, n) {
    long long ia = na == n ? i : i % na, ib = nb == n ? i : i % nb;
    d[i] = binop(op, a[ia], b[ib]);
  }
}

// k_binary is the general broadcast: ix.shape is the output shape, ix.sa and ix.sb
// the operands' strides over it (0 on stretched axes).
extern "C" __global__ void k_binary(int op, float* d, const float* a, const float* b, Idx ix, long long n) {
  GRID_LOOP(i, n) {
    long long r = i, oa = 0, ob = 0;
#pragma unroll
    for (int k = MAXR - 1; k >= 0; k--) {
      if (k >= ix.rank) continue;
      long long c = r % ix.shape[k];
      r /= ix.shape[k];
      oa += c * ix.sa[k];
      ob += c * ix.sb[k];
    }
    d[i] = binop(op, a[oa], b[ob]);
  }
}

__device__ __forceinline__ float sigm(float x) { return 1.f / (1.f + expf(-x)); }

#define SQRT1_2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f
#define QUICK_GELU 1.702f  // core.QuickGELUCoef (core's TestQuickGELUCoefLiterals checks it)

// unop follows core.UnaryOp's order. GELU is exact: x·Φ(x) with Φ(x) = erfc(-x/√2)/2,
// the same erf-family form the CPU uses; erfc rather than 1+erf keeps full relative
// accuracy in the negative tail.
__device__ __forceinline__ float unop(int op, float x) {
  switch (op) {
    case 0: return -x;
    case 1: return expf(x);
    case 2: return logf(x);
    case 3: return sqrtf(x);
    case 4: return 1.f / sqrtf(x);
    case 5: return x * x;
    case 6: return fabsf(x);
    case 7: return x > 0.f ? x : (x != x ? x : 0.f);  // NaN propagates, as in PyTorch
    case 8: return 0.5f * x * erfcf(-x * SQRT1_2);
    case 9: return x * sigm(QUICK_GELU * x);
    case 10: return x * sigm(x);
    case 11: return sigm(x);
    default: return tanhf(x);
  }
}

__device__ __forceinline__ float unopGrad(int op, float x) {
  switch (op) {
    case 0: return -1.f;
    case 1: return expf(x);
    case 2: return 1.f / x;
    case 3: return 0.5f / sqrtf(x);
    case 4: return -0.5f / (x * sqrtf(x));
    case 5: return 2.f * x;
    case 6: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
    case 7: return x > 0.f ? 1.f : 0.f;
    case 8: return 0.5f * erfcf(-x * SQRT1_2) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
    case 9: {
      float s = sigm(QUICK_GELU * x);
      return s + QUICK_GELU * x * s * (1.f - s);
    }
    case 10: {
      float s = sigm(x);
      return s * (1.f + x * (1.f - s));
    }
    case 11: {
      float s = sigm(x);
      return s * (1.f - s);
    }
    default: {
      float t = tanhf(x);
      return 1.f - t * t;
    }
  }
}

// d may alias x.
extern "C" __global__ void k_unary(int op, float* d, const float* x, long long n) {
  GRID_LOOP(i, n) d[i] = unop(op, x[i]);
}

// k_bias_unary is a linear layer's epilogue: pre += bias (a row of f), d = op(pre).
extern "C" __global__ void k_bias_unary(int op, float* d, float* pre, const float* bias, long long n, long long f) {
  GRID_LOOP(i, n) {
    float v = pre[i] + bias[i % f];
    pre[i] = v;
    d[i] = unop(op, v);
  }
}

extern "C" __global__ void k_unary_grad(int op, float* dx, const float* x, const float* dy, long long n, int acc) {
  GRID_LOOP(i, n) {
    float g = unopGrad(op, x[i]) * dy[i];
    dx[i] = acc ? dx[i] + g : g;
  }
}

// core.DropoutUniform, bit for bit: splitmix64's finaliser on seed + i·golden ratio,
// top 24 bits scaled to [0, 1). Integer steps and a power-of-two division are exact,
// so every backend draws the same mask.
__device__ __forceinline__ float dropoutUniform(unsigned long long seed, long long i) {
  unsigned long long z = seed + (unsigned long long)i * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) / 16777216.f;
}

// scale is 1/(1-p) computed on the host in float32, as the CPU does, or 0 when p = 1.
// mask may be null; d may alias x.
extern "C" __global__ void k_dropout(float* d, float* mask, const float* x, float p, float scale,
                                     unsigned long long seed, long long n) {
  GRID_LOOP(i, n) {
    float m = dropoutUniform(seed, i) >= p ? scale : 0.f;
    if (mask) mask[i] = m;
    d[i] = x[i] * m;
  }
}

extern "C" __global__ void k_scale_by(float* d, const float* s, float alpha, long long n) {
  float f = s[0] * alpha;
  GRID_LOOP(i, n) d[i] *= f;
}
