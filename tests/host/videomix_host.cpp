// Host build of kernels/videomix.cuh (g++ -std=c++17 -O1 -ffp-contract=off -I kernels).
// Runs the very functions the CUDA kernels call, voxel by voxel on the CPU, so that
// tests/test_mix_kernels.py can compare them with the NumPy twin element by element.
//
//   videomix_host source MODE N T H W ROWS.i32
//       prints the source map: N*T*H*W ints (sample read by each output voxel, -1 =
//       erased), one output row (fixed n, t, h) per line
//   videomix_host paste DTYPE MODE N C T H W ROWS.i32 COEF.f64 X.bin OUT.bin
//       DTYPE u8|f16|f32|f64; X, OUT (N, C, T, H, W)
//   videomix_host fused ODTYPE MODE N C T H W ROWS.i32 COEF.f64 FRAMES.u8 MEAN.f32 STD.f32 OUT.bin
//       ODTYPE f32|f16; FRAMES N clips (T, H, W, C) uint8, copied into separate buffers
//   videomix_host f2h IN.f32 OUT.u16      float32 -> float16 bits
//   videomix_host h2f OUT.f32             all 65536 float16 bit patterns -> float32
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "videomix.cuh"

namespace {

std::vector<char> read_file(const char* path) {
  FILE* f = std::fopen(path, "rb");
  if (!f) {
    std::fprintf(stderr, "cannot open %s\n", path);
    std::exit(2);
  }
  std::vector<char> buf;
  char tmp[1 << 16];
  size_t got;
  while ((got = std::fread(tmp, 1, sizeof tmp, f)) > 0) buf.insert(buf.end(), tmp, tmp + got);
  std::fclose(f);
  return buf;
}

void write_file(const char* path, const void* data, size_t bytes) {
  FILE* f = std::fopen(path, "wb");
  if (!f || std::fwrite(data, 1, bytes, f) != bytes) {
    std::fprintf(stderr, "cannot write %s\n", path);
    std::exit(2);
  }
  std::fclose(f);
}

template <typename T>
std::vector<T> read_as(const char* path) {
  std::vector<char> raw = read_file(path);
  std::vector<T> out(raw.size() / sizeof(T));
  std::memcpy(out.data(), raw.data(), out.size() * sizeof(T));
  return out;
}

int arg_int(char** argv, int i) { return std::atoi(argv[i]); }

template <typename S, typename CT>
int run_paste(char** argv) {
  const int mode = arg_int(argv, 3), N = arg_int(argv, 4), C = arg_int(argv, 5);
  const int T = arg_int(argv, 6), H = arg_int(argv, 7), W = arg_int(argv, 8);
  std::vector<int> rows = read_as<int>(argv[9]);
  std::vector<double> coef = read_as<double>(argv[10]);
  std::vector<S> x = read_as<S>(argv[11]);
  const int row_len = (int)(rows.size() / N);
  std::vector<S> out(x.size());
  for (int n = 0; n < N; ++n)
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w)
          vm_paste_pixel<S, CT>(x.data(), out.data(), rows.data(), row_len, coef.data(), mode, n,
                                t, h, w, C, T, H, W);
  write_file(argv[12], out.data(), out.size() * sizeof(S));
  return 0;
}

template <typename O>
int run_fused(char** argv) {
  const int mode = arg_int(argv, 3), N = arg_int(argv, 4), C = arg_int(argv, 5);
  const int T = arg_int(argv, 6), H = arg_int(argv, 7), W = arg_int(argv, 8);
  std::vector<int> rows = read_as<int>(argv[9]);
  std::vector<double> coef = read_as<double>(argv[10]);
  std::vector<unsigned char> all = read_as<unsigned char>(argv[11]);
  std::vector<float> mean = read_as<float>(argv[12]);
  std::vector<float> inv_std = read_as<float>(argv[13]);
  const int row_len = (int)(rows.size() / N);
  const size_t clip = (size_t)T * H * W * C;
  // one separate buffer per sample, as DALI's per-sample buffers
  std::vector<std::vector<unsigned char>> bufs(N);
  std::vector<const unsigned char*> ptrs(N);
  for (int n = 0; n < N; ++n) {
    bufs[n].assign(all.begin() + n * clip, all.begin() + (n + 1) * clip);
    ptrs[n] = bufs[n].data();
  }
  std::vector<O> out((size_t)N * C * T * H * W);
  for (int n = 0; n < N; ++n)
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w)
          vm_fused_pixel<O>(ptrs.data(), out.data(), rows.data(), row_len, coef.data(),
                            mean.data(), inv_std.data(), mode, n, t, h, w, C, T, H, W);
  write_file(argv[14], out.data(), out.size() * sizeof(O));
  return 0;
}

int usage() {
  std::fprintf(stderr, "usage: videomix_host source|paste|fused|f2h|h2f ... (see the header)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  if (cmd == "source" && argc == 8) {
    const int mode = arg_int(argv, 2), N = arg_int(argv, 3), T = arg_int(argv, 4);
    const int H = arg_int(argv, 5), W = arg_int(argv, 6);
    std::vector<int> rows = read_as<int>(argv[7]);
    const int row_len = (int)(rows.size() / N);
    for (int n = 0; n < N; ++n)
      for (int t = 0; t < T; ++t)
        for (int h = 0; h < H; ++h) {
          for (int w = 0; w < W; ++w)
            std::printf(w ? " %d" : "%d", vm_source(mode, rows.data() + (size_t)n * row_len, n, t, h, w));
          std::printf("\n");
        }
    return 0;
  }
  if (cmd == "paste" && argc == 13) {
    const std::string dt = argv[2];
    if (dt == "u8") return run_paste<unsigned char, float>(argv);
    if (dt == "f16") return run_paste<vm_half, float>(argv);
    if (dt == "f32") return run_paste<float, float>(argv);
    if (dt == "f64") return run_paste<double, double>(argv);
    return usage();
  }
  if (cmd == "fused" && argc == 15) {
    const std::string dt = argv[2];
    if (dt == "f32") return run_fused<float>(argv);
    if (dt == "f16") return run_fused<vm_half>(argv);
    return usage();
  }
  if (cmd == "f2h" && argc == 4) {
    std::vector<float> in = read_as<float>(argv[2]);
    std::vector<vm_half> out(in.size());
    for (size_t i = 0; i < in.size(); ++i) out[i] = vm_float_to_half(in[i]);
    write_file(argv[3], out.data(), out.size() * sizeof(vm_half));
    return 0;
  }
  if (cmd == "h2f" && argc == 3) {
    std::vector<float> out(65536);
    for (unsigned int i = 0; i < 65536u; ++i) out[i] = vm_half_to_float((vm_half)i);
    write_file(argv[2], out.data(), out.size() * sizeof(float));
    return 0;
  }
  return usage();
}
