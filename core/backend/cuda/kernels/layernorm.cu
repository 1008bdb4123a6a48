// LayerNorm and LayerNormGrad, row-wise over the last axis. Each row kernel runs in
// warp mode or block mode (see Row in common.cuh).

// k_layer_norm: two passes over the row (mean, then the biased variance of x − μ) so
// rows with a large offset keep their precision. g, b, mean and rstd may be null.
// k_layer_norm normalises x's rows; with r (AddLayerNorm) the rows are x + r, written
// to sum on the first pass and read back from there by the same thread.
extern "C" __global__ void k_layer_norm(float* d, float* mean, float* rstd, const float* x, const float* r,
                                        float* sum, const float* g, const float* b, long long rows, long long cols,
                                        float eps, int warpMode) {
  __shared__ float sh[32];
  for (Row w = rowStart(warpMode); w.row < rows; w.row += w.step) {
    const float* xr = x + w.row * cols;
    float* dr = d + w.row * cols;
    float s = 0.f;
    if (r) {
      const float* rr = r + w.row * cols;
      float* sr = sum + w.row * cols;
      for (long long j = w.lane; j < cols; j += w.width) {
        float v = xr[j] + rr[j];
        sr[j] = v;
        s += v;
      }
      xr = sr;
    } else {
      for (long long j = w.lane; j < cols; j += w.width) s += xr[j];
    }
    float mu = rowReduce(w, 0, s, sh) / (float)cols;
    float v = 0.f;
    for (long long j = w.lane; j < cols; j += w.width) {
      float c = xr[j] - mu;
      v += c * c;
    }
    float rs = 1.f / sqrtf(rowReduce(w, 0, v, sh) / (float)cols + eps);
    for (long long j = w.lane; j < cols; j += w.width) {
      float y = (xr[j] - mu) * rs;
      if (g) y *= g[j];
      if (b) y += b[j];
      dr[j] = y;
    }
    if (w.lane == 0) {
      if (mean) mean[w.row] = mu;
      if (rstd) rstd[w.row] = rs;
    }
  }
}

// k_layer_norm_dx: dx (+)= rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·γ (γ may be
// null). The parameter gradients are a column reduction: k_layer_norm_dparams.
extern "C" __global__ void k_layer_norm_dx(float* dx, const float* dy, const float* x, const float* mean,
                                           const float* rstd, const float* g, long long rows, long long cols, int acc,
                                           int warpMode) {
  __shared__ float sh[32];
  for (Row r = rowStart(warpMode); r.row < rows; r.row += r.step) {
    long long o = r.row * cols;
    float mu = mean[r.row], rs = rstd[r.row];
    float s1 = 0.f, s2 = 0.f;
    for (long long j = r.lane; j < cols; j += r.width) {
      float xh = (x[o + j] - mu) * rs, gy = dy[o + j] * (g ? g[j] : 1.f);
      s1 += gy;
      s2 += gy * xh;
    }
    s1 = rowReduce(r, 0, s1, sh) / (float)cols;
    s2 = rowReduce(r, 0, s2, sh) / (float)cols;
    for (long long j = r.lane; j < cols; j += r.width) {
      float xh = (x[o + j] - mu) * rs, gy = dy[o + j] * (g ? g[j] : 1.f);
      float v = rs * (gy - s1 - xh * s2);
      dx[o + j] = acc ? dx[o + j] + v : v;
    }
  }
}

// k_layer_norm_dparams adds Σ_rows dy·x̂ into dg and Σ_rows dy into db (either may be
// null), laid out like k_reduce_cols: 32 columns × 8 row-strided threads per block,
// blockIdx.y over splits of the rows that add atomically.
extern "C" __global__ void k_layer_norm_dparams(float* dg, float* db, const float* dy, const float* x,
                                                const float* mean, const float* rstd, long long rows, long long cols,
                                                long long chunk) {
  __shared__ float shg[8][33], shb[8][33];
  long long k = blockIdx.x * 32LL + threadIdx.x;
  long long lo = blockIdx.y * chunk, hi = lmin(rows, lo + chunk);
  float sg = 0.f, sb = 0.f;
  if (k < cols) {
    for (long long j = lo + threadIdx.y; j < hi; j += 8) {
      float g = dy[j * cols + k];
      sg += g * (x[j * cols + k] - mean[j]) * rstd[j];
      sb += g;
    }
  }
  shg[threadIdx.y][threadIdx.x] = sg;
  shb[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && k < cols) {
    for (int t = 1; t < 8; t++) {
      sg += shg[t][threadIdx.x];
      sb += shb[t][threadIdx.x];
    }
    if (gridDim.y > 1) {
      if (dg) atomicAdd(&dg[k], sg);
      if (db) atomicAdd(&db[k], sb);
    } else {
      if (dg) dg[k] += sg;
      if (db) db[k] += sb;
    }
  }
}
