// videomix.cu - CUDA kernels of the VideoMix family (loaded at run time by
// videomix_dali/mix/apply_cupy.py through cupy.RawModule; compiled with --fmad=false).
// All index math and arithmetic live in videomix.cuh (__host__ __device__), which a
// host test builds with g++ and compares with the NumPy twin element by element.
//
// One thread per output pixel (n, t, h, w), grid-stride over the whole batch: one
// launch per batch.  A thread writes the C channels of its pixel; consecutive threads
// write consecutive w, so the NCTHW stores are coalesced.
#include "videomix.cuh"

// Standalone paste: x, out (N, C, T, H, W) contiguous, one storage type.
#define VM_DEFINE_PASTE(NAME, S, CT)                                                         \
  extern "C" __global__ void NAME(const S* __restrict__ x, S* __restrict__ out,              \
                                  const int* __restrict__ rows, int row_len,                 \
                                  const double* __restrict__ coef, int mode, int N, int C,   \
                                  int T, int H, int W) {                                     \
    const long long total = (long long)N * T * H * W;                                        \
    const long long stride = (long long)gridDim.x * blockDim.x;                              \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;          \
         i += stride) {                                                                      \
      int n, t, h, w;                                                                        \
      vm_unflatten(i, T, H, W, &n, &t, &h, &w);                                              \
      vm_paste_pixel<S, CT>(x, out, rows, row_len, coef, mode, n, t, h, w, C, T, H, W);      \
    }                                                                                        \
  }

VM_DEFINE_PASTE(vm_paste_u8, unsigned char, float)
VM_DEFINE_PASTE(vm_paste_f16, vm_half, float)
VM_DEFINE_PASTE(vm_paste_f32, float, float)
VM_DEFINE_PASTE(vm_paste_f64, double, double)

// Fused: per-sample pointers to (T, H, W, C) uint8 clips -> paste + (v - mean) * inv_std +
// cast -> out (N, C, T, H, W) float32 / float16.
#define VM_DEFINE_FUSED(NAME, O)                                                             \
  extern "C" __global__ void NAME(const unsigned char* const* __restrict__ frames,           \
                                  O* __restrict__ out, const int* __restrict__ rows,         \
                                  int row_len, const double* __restrict__ coef,              \
                                  const float* __restrict__ mean,                            \
                                  const float* __restrict__ inv_std, int mode, int N, int C,   \
                                  int T, int H, int W) {                                     \
    const long long total = (long long)N * T * H * W;                                        \
    const long long stride = (long long)gridDim.x * blockDim.x;                              \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;          \
         i += stride) {                                                                      \
      int n, t, h, w;                                                                        \
      vm_unflatten(i, T, H, W, &n, &t, &h, &w);                                              \
      vm_fused_pixel<O>(frames, out, rows, row_len, coef, mean, inv_std, mode, n, t, h, w, C,  \
                        T, H, W);                                                            \
    }                                                                                        \
  }

VM_DEFINE_FUSED(vm_fused_f32, float)
VM_DEFINE_FUSED(vm_fused_f16, vm_half)
