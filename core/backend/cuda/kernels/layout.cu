// Data movement: Permute, CopyAlong, Gather, ScatterAdd.

// k_permute walks dst in order; ix.sa holds x's strides permuted into dst's axis
// order, so dst element i reads x at the dot product of its multi-index and ix.sa.
extern "C" __global__ void k_permute(float* d, const float* x, Idx ix, long long n) {
  GRID_LOOP(i, n) {
    long long r = i, off = 0;
#pragma unroll
    for (int k = MAXR - 1; k >= 0; k--) {
      if (k >= ix.rank) continue;
      long long c = r % ix.shape[k];
      r /= ix.shape[k];
      off += c * ix.sa[k];
    }
    d[i] = x[off];
  }
}

// Tensors are viewed as [outer, axis, inner]; the block is cnt slices along axis.
extern "C" __global__ void k_copy_along(float* d, const float* s, long long outer, long long dAx, long long sAx,
                                        long long dOff, long long sOff, long long cnt, long long inner, int acc) {
  long long n = outer * cnt * inner;
  GRID_LOOP(i, n) {
    long long in = i % inner, t = i / inner, a = t % cnt, o = t / cnt;
    long long di = (o * dAx + dOff + a) * inner + in, si = (o * sAx + sOff + a) * inner + in;
    d[di] = acc ? d[di] + s[si] : s[si];
  }
}

// A bad index raises ST_GATHER (Sync and Download report it) and yields NaN rather
// than a read outside x, which would end the CUDA context.
extern "C" __global__ void k_gather(float* d, const float* x, const float* idx, long long outer, long long xAx,
                                    long long cnt, long long inner) {
  long long n = outer * cnt * inner;
  GRID_LOOP(i, n) {
    long long in = i % inner, t = i / inner, a = t % cnt, o = t / cnt;
    float v = idx[a];
    if (!validIndex(v, xAx)) {
      atomicOr(&kd_status, ST_GATHER);
      d[i] = QNAN;
      continue;
    }
    d[i] = x[(o * xAx + (long long)v) * inner + in];
  }
}

// Repeated indices accumulate through atomics, so their order of addition varies.
extern "C" __global__ void k_scatter_add(float* d, const float* s, const float* idx, long long outer, long long dAx,
                                         long long cnt, long long inner) {
  long long n = outer * cnt * inner;
  GRID_LOOP(i, n) {
    long long in = i % inner, t = i / inner, a = t % cnt, o = t / cnt;
    float v = idx[a];
    if (!validIndex(v, dAx)) {
      atomicOr(&kd_status, ST_SCATTER);
      continue;
    }
    atomicAdd(&d[(o * dAx + (long long)v) * inner + in], s[i]);
  }
}
