// Conversions for bf16 autocast (Precision BF16 in the Go package).

// k_to_bf16 rounds float32 to bfloat16 to nearest, ties to even, as
// __float2bfloat16_rn does: adding 0x7fff plus the lowest kept bit carries into the
// kept half exactly when the dropped half is above one half, or equal to it with an
// odd kept half; overflow carries into the exponent and gives infinity. NaNs are kept
// quiet rather than rounded, which could turn them into infinities.
extern "C" __global__ void k_to_bf16(unsigned short* d, const float* x, long long n) {
  GRID_LOOP(i, n) {
    unsigned u = __float_as_uint(x[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u)
      d[i] = (unsigned short)((u >> 16) | 0x40u);
    else
      d[i] = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}
