// Fused optimiser steps: SGDStep and AdamWStep, PyTorch's rules (see core.Backend).

// mom is null when momentum is 0 (the buffer is then neither read nor written).
extern "C" __global__ void k_sgd(float* p, const float* g, float* mom, float lr, float mu, float wd, int nesterov,
                                 int first, long long n) {
  GRID_LOOP(i, n) {
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

// The host folds the bias corrections in double precision, as PyTorch does in Python
// floats: stepSize = lr/(1−β1^t), invSqrtBC2 = 1/√(1−β2^t), decay = 1 − lr·wd. Then
// param = param·decay − stepSize·m / (√v·invSqrtBC2 + eps).
extern "C" __global__ void k_adamw(float* p, const float* g, float* m, float* v, float b1, float b2, float eps,
                                   float decay, float stepSize, float invSqrtBC2, long long n) {
  GRID_LOOP(i, n) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - stepSize * mi / (sqrtf(vi) * invSqrtBC2 + eps);
  }
}
