// Conversions for bf16 autocast (Precision BF16 in the Go package).

// k_to_bf16 writes x rounded to bfloat16 (bf16Bits), two to a float32 slot.
extern "C" __global__ void k_to_bf16(unsigned short* d, const float* x, long long n) {
  GRID_LOOP(i, n) d[i] = bf16Bits(x[i]);
}
