// videomix.cuh - index math and arithmetic of the VideoMix family, shared by
// the CUDA kernels (kernels/videomix.cu, loaded by CuPy) and a host build
// (tests/host/videomix_host.cpp, compiled with g++), so that the host build can
// check every line of it against the NumPy twin (videomix_dali/mix/apply_numpy.py).
//
// Everything here is a pure function of (output voxel, params row of its sample).
//
// Params row of sample n (int32, one row per sample, all rows the same length R);
// MixParams.pack() in videomix_dali/mix/params.py writes exactly this:
//   [0]               applied   (0/1)
//   [1]               P         number of pastes (k-1 for the mixing modes, 1 for cutout, 0 for none)
//   [2]               B         boxes per paste (T for perframe: box b covers frame b only; else 1)
//   [3]               K         length of a coef row (below)
//   [4], [5], [6]     num_videos, per_sample, mode code (read by the NumPy side only;
//                     the kernels take the mode as an argument)
//   [7 .. 7+P)        partner of each paste (-1: erase to zero, i.e. cutout)
//   [7+P .. R)        P*B boxes of 6 ints {t1, t2, h1, h2, w1, w2}, half-open [a1, a2),
//                     already clipped to the clip; box (j, b) starts at 7 + P + 6*(j*B + b)
//   R = 7 + P + 6*P*B
// Coef row of sample n (float64, K values): {lam_j, 1 - lam_j} per paste (mixup reads
// these), then values only the NumPy side reads (all lam, label weights).
// Semantics (VideoMix Eq. 1-2, the paste direction of the text, not of Appendix A):
// pastes are applied in order j = 0..P-1, each one copies the box of partner j into
// the output, later pastes overwrite earlier ones; everything outside all boxes comes
// from the sample itself.  mixup blends instead: acc = acc*lam_j + partner_j*(1-lam_j).
//
// Floating point: every operation is one IEEE round-to-nearest-even operation in the
// order written here (device: float32 as inline PTX add/sub/mul/div.rn without .ftz,
// float64 as __dmul_rn & co, none of which is ever contracted into an FMA or flushed;
// host: build with -ffp-contract=off).  That is also NumPy's order, so results are
// bit-identical to the NumPy twin.  float16 is handled as raw bits (unsigned short)
// with a hand-written round-to-nearest-even conversion identical to NumPy's.
#ifndef VIDEOMIX_CUH
#define VIDEOMIX_CUH

#ifdef __CUDACC__
#define VM_HD __host__ __device__ __forceinline__
#else
#define VM_HD inline
#endif
#ifndef __CUDACC_RTC__  // NVRTC (CuPy) compiles device code only and has no std headers
#include <cmath>
#include <cstring>
#endif

// Mode codes; the same numbers are in videomix_dali/mix/params.py (MODE_CODES).
#define VM_NONE 0
#define VM_SPATIAL 1
#define VM_TEMPORAL 2
#define VM_SPATIOTEMPORAL 3
#define VM_PERFRAME 4
#define VM_MIXUP 5
#define VM_CUTOUT 6

#define VM_ROW_APPLIED 0
#define VM_ROW_NPASTE 1
#define VM_ROW_NBOX 2
#define VM_ROW_NCOEF 3
#define VM_ROW_PARTNERS 7

typedef unsigned short vm_half;  // float16 storage (raw IEEE binary16 bits)

// ---------------------------------------------------------------- index math

VM_HD const int* vm_box(const int* row, int j, int b) {
  const int P = row[VM_ROW_NPASTE];
  const int B = row[VM_ROW_NBOX];
  return row + VM_ROW_PARTNERS + P + 6 * (j * B + b);
}

VM_HD bool vm_box_contains(const int* box, int t, int h, int w) {
  return box[0] <= t && t < box[1] && box[2] <= h && h < box[3] && box[4] <= w && w < box[5];
}

// Which sample the output voxel (n, :, t, h, w) is read from: n itself, a partner,
// or -1 (erased: the output is zero).  For mixup (and samples not mixed) it is n;
// the mixup blend is done by the callers below.
VM_HD int vm_source(int mode, const int* row, int n, int t, int h, int w) {
  if (mode == VM_MIXUP || row[VM_ROW_APPLIED] == 0) return n;
  const int P = row[VM_ROW_NPASTE];
  const int B = row[VM_ROW_NBOX];
  const int b = (B > 1) ? t : 0;  // perframe: the box of frame t
  int src = n;
  for (int j = 0; j < P; ++j) {
    if (vm_box_contains(vm_box(row, j, b), t, h, w)) src = row[VM_ROW_PARTNERS + j];
  }
  return src;
}

VM_HD bool vm_is_mixup(int mode, const int* row) {
  return mode == VM_MIXUP && row[VM_ROW_APPLIED] != 0 && row[VM_ROW_NPASTE] > 0;
}

// Output pixel (n, t, h, w) of the flat index i over (N, T, H, W), w fastest.
VM_HD void vm_unflatten(long long i, int T, int H, int W, int* n, int* t, int* h, int* w) {
  *w = (int)(i % W);
  i /= W;
  *h = (int)(i % H);
  i /= H;
  *t = (int)(i % T);
  *n = (int)(i / T);
}

// ---------------------------------------------------------------- arithmetic
// CuPy compiles every kernel with -ftz=true (cupy/cuda/compiler.py), which would turn each
// float32 instruction the compiler emits into its .ftz form: subnormal inputs and results
// flushed to zero, unlike NumPy.  So on the device every float32 operation here is one
// inline PTX instruction without .ftz, which no compiler flag rewrites.

#ifdef __CUDA_ARCH__
#define VM_PTX_F32_BINARY(NAME, OP)                                      \
  VM_HD float NAME(float a, float b) {                                   \
    float r;                                                             \
    asm(OP ".rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));             \
    return r;                                                            \
  }
VM_PTX_F32_BINARY(vm_add, "add")
VM_PTX_F32_BINARY(vm_sub, "sub")
VM_PTX_F32_BINARY(vm_mul, "mul")
VM_PTX_F32_BINARY(vm_div, "div")
#undef VM_PTX_F32_BINARY
#else
VM_HD float vm_add(float a, float b) { return a + b; }
VM_HD float vm_sub(float a, float b) { return a - b; }
VM_HD float vm_mul(float a, float b) { return a * b; }
VM_HD float vm_div(float a, float b) { return a / b; }
#endif

// A float64 coefficient in the compute type: round to nearest float32 (subnormals kept),
// or unchanged for float64.  The second argument only selects the type.
VM_HD float vm_narrow(double d, float) {
#ifdef __CUDA_ARCH__
  float r;
  asm("cvt.rn.f32.f64 %0, %1;" : "=f"(r) : "d"(d));
  return r;
#else
  return (float)d;
#endif
}
VM_HD double vm_narrow(double d, double) { return d; }

VM_HD double vm_add(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
VM_HD double vm_mul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// mixup step: acc * lam + partner * (1 - lam), three roundings, in this order.
VM_HD float vm_blend(float acc, float partner, float lam, float oml) {
  return vm_add(vm_mul(acc, lam), vm_mul(partner, oml));
}
VM_HD double vm_blend(double acc, double partner, double lam, double oml) {
  return vm_add(vm_mul(acc, lam), vm_mul(partner, oml));
}

// (v - mean) * inv_std, inv_std = float32(1 / std): two roundings, the arithmetic of
// DALI's crop_mirror_normalize.
VM_HD float vm_normalize(float v, float mean, float inv_std) {
  return vm_mul(vm_sub(v, mean), inv_std);
}

VM_HD unsigned int vm_float_as_uint(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  unsigned int u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
VM_HD float vm_uint_as_float(unsigned int u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// binary16 -> binary32, exact.
VM_HD float vm_half_to_float(vm_half h) {
  const unsigned int sign = (unsigned int)(h & 0x8000u) << 16;
  unsigned int exp = (h >> 10) & 0x1fu;
  unsigned int mant = h & 0x3ffu;
  unsigned int bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan (payload kept)
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      unsigned int e = 113;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --e;
      }
      bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
  } else {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  return vm_uint_as_float(bits);
}

// binary32 -> binary16, round to nearest, ties to even (NumPy's astype(float16)).
VM_HD vm_half vm_float_to_half(float f) {
  const unsigned int x = vm_float_as_uint(f);
  const unsigned int sign = (x >> 16) & 0x8000u;
  const unsigned int ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {  // inf or nan
    if (ax == 0x7f800000u) return (vm_half)(sign | 0x7c00u);
    unsigned int r = 0x7c00u + ((ax & 0x7fffffu) >> 13);
    if (r == 0x7c00u) ++r;  // keep it a nan
    return (vm_half)(sign | r);
  }
  if (ax >= 0x477ff000u) return (vm_half)(sign | 0x7c00u);  // >= 65520: overflows to inf
  if (ax >= 0x38800000u) {                                  // normal half
    const unsigned int r = ax - 0x38000000u;                // rebias exponent 127 -> 15
    unsigned int hbits = r >> 13;
    const unsigned int rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (hbits & 1u))) ++hbits;
    return (vm_half)(sign | hbits);
  }
  if (ax <= 0x33000000u) return (vm_half)sign;  // <= 2^-25: rounds to (signed) zero
  // subnormal half: value / 2^-24 = m * 2^(e - 126), shift = 126 - e in [14, 24]
  const unsigned int e = ax >> 23;
  const unsigned int m = (ax & 0x7fffffu) | 0x800000u;
  const unsigned int shift = 126u - e;
  unsigned int hbits = m >> shift;
  const unsigned int rem = m & ((1u << shift) - 1u);
  const unsigned int halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (hbits & 1u))) ++hbits;
  return (vm_half)(sign | hbits);
}

// Storage <-> compute conversions.  Compute type: float for uint8/float16/float32,
// double for float64.
VM_HD float vm_load(const unsigned char* p) { return (float)(*p); }
VM_HD float vm_load(const vm_half* p) { return vm_half_to_float(*p); }
VM_HD float vm_load(const float* p) { return *p; }
VM_HD double vm_load(const double* p) { return *p; }

// uint8: round to nearest even, then clamp to [0, 255] (NumPy: clip(rint(v)).astype(uint8)).
VM_HD void vm_store(unsigned char* p, float v) {
#ifdef __CUDA_ARCH__
  unsigned short r;
  asm("cvt.rni.sat.u8.f32 %0, %1;" : "=h"(r) : "f"(v));
  *p = (unsigned char)r;
#else
  float r = std::nearbyint(v);  // default rounding mode: to nearest, ties to even
  r = r < 0.0f ? 0.0f : (r > 255.0f ? 255.0f : r);
  *p = (unsigned char)r;
#endif
}
VM_HD void vm_store(vm_half* p, float v) { *p = vm_float_to_half(v); }
VM_HD void vm_store(float* p, float v) { *p = v; }
VM_HD void vm_store(double* p, double v) { *p = v; }

// ------------------------------------------------------------ one output pixel
// Each function writes all C channels of output pixel (n, :, t, h, w).

// Standalone paste, x and out both (N, C, T, H, W) contiguous, same storage type.
// A (N, T, D) feature tensor is passed as (N, 1, T, 1, D).
template <typename S, typename CT>
VM_HD void vm_paste_pixel(const S* x, S* out, const int* rows, int row_len, const double* coef,
                          int mode, int n, int t, int h, int w, int C, int T, int H, int W) {
  const int* row = rows + (long long)n * row_len;
  const long long plane = (long long)T * H * W;
  const long long pix = ((long long)t * H + h) * W + w;
  if (vm_is_mixup(mode, row)) {
    const int P = row[VM_ROW_NPASTE];
    const double* cf = coef + (long long)n * row[VM_ROW_NCOEF];
    for (int c = 0; c < C; ++c) {
      CT acc = vm_load(x + ((long long)n * C + c) * plane + pix);
      for (int j = 0; j < P; ++j) {
        const int p = row[VM_ROW_PARTNERS + j];
        const CT other = vm_load(x + ((long long)p * C + c) * plane + pix);
        acc = vm_blend(acc, other, vm_narrow(cf[2 * j], acc), vm_narrow(cf[2 * j + 1], acc));
      }
      vm_store(out + ((long long)n * C + c) * plane + pix, acc);
    }
    return;
  }
  const int src = vm_source(mode, row, n, t, h, w);
  for (int c = 0; c < C; ++c) {
    S v = (S)0;  // erased voxels are zero (the mean, for normalised input)
    if (src >= 0) v = x[((long long)src * C + c) * plane + pix];
    out[((long long)n * C + c) * plane + pix] = v;
  }
}

// Fused: frames[s] points at sample s's (T, H, W, C) uint8 clip (the samples need not
// be contiguous with each other); writes normalised (v - mean[c]) * inv_std[c] to out,
// (N, C, T, H, W) float32 or float16 (vm_half).  Erased voxels are exactly 0.
template <typename O>
VM_HD void vm_fused_pixel(const unsigned char* const* frames, O* out, const int* rows,
                          int row_len, const double* coef, const float* mean, const float* inv_std,
                          int mode, int n, int t, int h, int w, int C, int T, int H, int W) {
  const int* row = rows + (long long)n * row_len;
  const long long plane = (long long)T * H * W;
  const long long pix = ((long long)t * H + h) * W + w;
  if (vm_is_mixup(mode, row)) {
    const int P = row[VM_ROW_NPASTE];
    const double* cf = coef + (long long)n * row[VM_ROW_NCOEF];
    for (int c = 0; c < C; ++c) {
      float acc = (float)frames[n][pix * C + c];
      for (int j = 0; j < P; ++j) {
        const int p = row[VM_ROW_PARTNERS + j];
        acc = vm_blend(acc, (float)frames[p][pix * C + c], vm_narrow(cf[2 * j], acc),
                       vm_narrow(cf[2 * j + 1], acc));
      }
      vm_store(out + ((long long)n * C + c) * plane + pix, vm_normalize(acc, mean[c], inv_std[c]));
    }
    return;
  }
  const int src = vm_source(mode, row, n, t, h, w);
  for (int c = 0; c < C; ++c) {
    float v = 0.0f;
    if (src >= 0) v = vm_normalize((float)frames[src][pix * C + c], mean[c], inv_std[c]);
    vm_store(out + ((long long)n * C + c) * plane + pix, v);
  }
}

#endif  // VIDEOMIX_CUH
