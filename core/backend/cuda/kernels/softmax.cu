// Row-wise ops over the last axis: Softmax, LogSoftmax and their gradients,
// CrossEntropy and BCEWithLogits. Each row kernel runs in warp mode or block mode (see
// Row in common.cuh).

// mode 0: softmax, 1: log-softmax. Three passes over the row (max, Σexp, write); the
// row is small enough to stay in L1/L2 between them.
extern "C" __global__ void k_softmax(int mode, float* d, const float* x, long long rows, long long cols,
                                     int warpMode) {
  __shared__ float sh[32];
  for (Row r = rowStart(warpMode); r.row < rows; r.row += r.step) {
    const float* xr = x + r.row * cols;
    float* dr = d + r.row * cols;
    float m = NEG_INF;
    for (long long j = r.lane; j < cols; j += r.width) m = fmaxf(m, xr[j]);
    m = rowReduce(r, 1, m, sh);
    float s = 0.f;
    for (long long j = r.lane; j < cols; j += r.width) s += expf(xr[j] - m);
    s = rowReduce(r, 0, s, sh);
    if (mode == 0) {
      float inv = 1.f / s;
      for (long long j = r.lane; j < cols; j += r.width) dr[j] = expf(xr[j] - m) * inv;
    } else {
      float ls = m + logf(s);
      for (long long j = r.lane; j < cols; j += r.width) dr[j] = xr[j] - ls;
    }
  }
}

// mode 0: dx (+)= y·(dy − Σ dy·y); 1: dx (+)= dy − exp(y)·Σ dy.
extern "C" __global__ void k_softmax_grad(int mode, float* dx, const float* y, const float* dy, long long rows,
                                          long long cols, int acc, int warpMode) {
  __shared__ float sh[32];
  for (Row r = rowStart(warpMode); r.row < rows; r.row += r.step) {
    long long o = r.row * cols;
    float s = 0.f;
    for (long long j = r.lane; j < cols; j += r.width) s += mode == 0 ? dy[o + j] * y[o + j] : dy[o + j];
    s = rowReduce(r, 0, s, sh);
    for (long long j = r.lane; j < cols; j += r.width) {
      float g = mode == 0 ? y[o + j] * (dy[o + j] - s) : dy[o + j] - expf(y[o + j]) * s;
      dx[o + j] = acc ? dx[o + j] + g : g;
    }
  }
}

// k_cross_entropy: row loss = lse − (1−s)·x[label] − (s/C)·Σx (Σq = 1), added into
// loss[0] (zeroed by the host) scaled by 1/N; dl = (softmax − q)/N unless dl is null.
// A label that is not an integer in [0, C) raises ST_LABEL and contributes NaN.
extern "C" __global__ void k_cross_entropy(float* loss, float* dl, const float* x, const float* labels, long long rows,
                                           long long cols, float smooth, float invN, int warpMode) {
  __shared__ float sh[32];
  for (Row r = rowStart(warpMode); r.row < rows; r.row += r.step) {
    const float* xr = x + r.row * cols;
    float lv = labels[r.row];
    bool ok = validIndex(lv, cols);
    long long lab = ok ? (long long)lv : -1;
    float m = NEG_INF, sum = 0.f;
    for (long long j = r.lane; j < cols; j += r.width) {
      m = fmaxf(m, xr[j]);
      sum += xr[j];
    }
    m = rowReduce(r, 1, m, sh);
    sum = rowReduce(r, 0, sum, sh);
    float s = 0.f;
    for (long long j = r.lane; j < cols; j += r.width) s += expf(xr[j] - m);
    s = rowReduce(r, 0, s, sh);
    float lse = m + logf(s);
    float qs = smooth / (float)cols;
    if (dl) {
      float* dr = dl + r.row * cols;
      for (long long j = r.lane; j < cols; j += r.width) {
        float q = qs + (j == lab ? 1.f - smooth : 0.f);
        dr[j] = (expf(xr[j] - lse) - q) * invN;
      }
    }
    if (r.lane == 0) {
      if (!ok) atomicOr(&kd_status, ST_LABEL);
      float rowLoss = ok ? lse - (1.f - smooth) * xr[lab] - qs * sum : QNAN;
      atomicAdd(loss, rowLoss * invN);
    }
  }
}

// k_bce adds the mean of max(x,0) − x·t + log1p(e^−|x|) into loss[0] (zeroed by the
// host), one atomic per block; dl = (σ(x) − t)/n unless dl is null.
extern "C" __global__ void k_bce(float* loss, float* dl, const float* x, const float* t, long long n, float invN) {
  __shared__ float sh[32];
  float part = 0.f;
  GRID_LOOP(i, n) {
    float v = x[i], ti = t[i];
    part += fmaxf(v, 0.f) - v * ti + log1pf(expf(-fabsf(v)));
    if (dl) dl[i] = (1.f / (1.f + expf(-v)) - ti) * invN;
  }
  part = blockReduce(0, part, sh);
  if (threadIdx.x == 0) atomicAdd(loss, part * invN);
}
