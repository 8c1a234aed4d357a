// VideomixCropResize: crop a window of every frame of a clip, flip it where the window's x
// range is reversed, and resize it bilinearly -- a DALI CPU operator (plugin).
//
// The same sampling as fn.resize(roi_start, roi_end, roi_relative=False, size,
// interp_type=INTERP_LINEAR, antialias=False), which the GPU graph uses: output pixel centre
// o + 0.5 maps to roi_start + (o + 0.5) * (roi_end - roi_start) / size in input pixels, input
// pixel centres sit at i + 0.5, source indices outside the frame clamp to its edge. It is
// written for speed on the CPU (DALI's general resampler costs about 0.5 ms per 224 x 224
// RGB frame on one core here): per frame, each source row the output needs is resampled
// horizontally once, and each output row blends two of those rows.
//
// With the paste inputs of videomix_dali.graph.ops.dali_inputs it also mixes: each
// output frame's boxes come from the partner clips' windows (later pastes over earlier ones),
// exactly what resizing every clip and then pasting would give, at no extra cost.
//
// Inputs: clips (F, H, W, C) uint8 "FHWC"; roi_start and roi_end (2,) float32 (y, x) in input
// pixels; optionally, per paste j, partner j () int32 (a sample of the batch), then anchors
// and shapes (F, 1 + pastes, 2) int32 (rows, columns) in output pixels, entry 0 the clip
// itself, entry 1 + j paste j's box on that frame (an empty shape: none). Arguments: size
// (height, width); dtype, mean, std. Output: (F, height, width, C) uint8 "FHWC", or with dtype
// FLOAT / FLOAT16 the same values normalised as crop_mirror_normalize does, (C, F, height,
// width) "CFHW": the unmixed and the pasted CPU batch leave the plugin finished.
// Compiled at run time by videomix_dali/native.py against the installed DALI's headers.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dali/pipeline/operator/operator.h"

namespace videomix {

using dali::CPUBackend;
using dali::Workspace;

// Source taps of one output coordinate: the two input indices (clamped) and the weight of
// the second.
struct Taps {
  int i0, i1;
  float w1;
};

// The taps of `size` output pixels over the input range [start, end) of an axis of `extent`
// pixels (end < start: reversed).
static std::vector<Taps> AxisTaps(float start, float end, int size, int extent) {
  std::vector<Taps> taps(size);
  const double scale = (static_cast<double>(end) - start) / size;
  for (int o = 0; o < size; o++) {
    const double s = start + (o + 0.5) * scale - 0.5;
    const double f = std::floor(s);
    const int i = static_cast<int>(f);
    taps[o].i0 = std::clamp(i, 0, extent - 1);
    taps[o].i1 = std::clamp(i + 1, 0, extent - 1);
    taps[o].w1 = static_cast<float>(s - f);
  }
  return taps;
}

// Columns [x0, x1) of one source row resampled horizontally: out[x * C + c].
static void ResampleRow(const uint8_t *row, const std::vector<Taps> &xs, int C, int x0, int x1,
                        float *out) {
  for (int x = x0; x < x1; x++) {
    const uint8_t *a = row + xs[x].i0 * C;
    const uint8_t *b = row + xs[x].i1 * C;
    const float w1 = xs[x].w1, w0 = 1.0f - w1;
    for (int c = 0; c < C; c++) out[x * C + c] = a[c] * w0 + b[c] * w1;
  }
}

// Where one output frame's pixels come from: a frame (H, W, C) of one clip and the taps of
// that clip's window; `x0`, `x1`: the output columns it can be asked for.
struct Source {
  const uint8_t *frame;
  int W;
  const std::vector<Taps> *ys, *xs;
  int x0, x1;
};

// Blends output rows from a source's horizontally resampled rows, each computed once. Rows
// i0 and i0 + 1 differ in parity (or are one row at an edge), so a row's parity is its slot
// in the cache and the two rows an output row blends never evict each other.
class RowBlender {
 public:
  RowBlender(const Source &src, int C)
      : src_(src), C_(C), cache_{std::vector<float>(src.xs->size() * C),
                                  std::vector<float>(src.xs->size() * C)} {}

  // Output row y, columns [x0, x1), into out (the row's first pixel).
  void Blend(int y, int x0, int x1, uint8_t *out) {
    const Taps &t = (*src_.ys)[y];
    const float *top = Resampled(t.i0), *bottom = Resampled(t.i1);
    const float w1 = t.w1, w0 = 1.0f - w1;
    for (int k = x0 * C_; k < x1 * C_; k++)
      out[k] = static_cast<uint8_t>(top[k] * w0 + bottom[k] * w1 + 0.5f);
  }

 private:
  const float *Resampled(int src_row) {
    const int slot = src_row & 1;
    if (cached_[slot] != src_row) {
      const uint8_t *row = src_.frame + static_cast<int64_t>(src_row) * src_.W * C_;
      ResampleRow(row, *src_.xs, C_, src_.x0, src_.x1, cache_[slot].data());
      cached_[slot] = src_row;
    }
    return cache_[slot].data();
  }

  Source src_;
  int C_;
  std::vector<float> cache_[2];
  int cached_[2] = {-1, -1};
};

// A paste on one output frame: source `source` fills rows [y0, y1) x columns [x0, x1).
struct Box {
  int source, y0, y1, x0, x1;
};

// Where finished output rows go: (C, F, H, W) float32 / float16 values from a (C, 256)
// table when `lut32` / `lut16` is set, else (F, H, W, C) uint8 as they are.
struct Sink {
  uint8_t *u8 = nullptr;       // the frame's first pixel, (H, W, C)
  float *f32 = nullptr;        // the frame's first value in channel 0's plane
  uint16_t *f16 = nullptr;     // the same, float16 bits
  int64_t plane = 0;           // values per channel plane (F * H * W)
  const float *lut32 = nullptr;
  const uint16_t *lut16 = nullptr;

  void Row(int y, int cols, int C, const uint8_t *row) const {
    if (u8) {
      std::copy(row, row + cols * C, u8 + static_cast<int64_t>(y) * cols * C);
      return;
    }
    for (int c = 0; c < C; c++) {
      const int64_t at = c * plane + static_cast<int64_t>(y) * cols;
      if (f32) {
        const float *lut = lut32 + c * 256;
        for (int x = 0; x < cols; x++) f32[at + x] = lut[row[x * C + c]];
      } else {
        const uint16_t *lut = lut16 + c * 256;
        for (int x = 0; x < cols; x++) f16[at + x] = lut[row[x * C + c]];
      }
    }
  }
};

// One output frame (rows, cols, C): sources[0] everywhere, then each box's source over it
// in order (later boxes over earlier ones), each output pixel computed once from its source.
static void ResizeFrame(const std::vector<Source> &sources, const std::vector<Box> &boxes,
                        int rows, int cols, int C, const Sink &sink) {
  std::vector<RowBlender> blenders;
  blenders.reserve(sources.size());
  for (const Source &s : sources) blenders.emplace_back(s, C);
  std::vector<uint8_t> owner(cols), row(static_cast<size_t>(cols) * C);
  for (int y = 0; y < rows; y++) {
    std::fill(owner.begin(), owner.end(), 0);
    for (const Box &b : boxes)
      if (b.y0 <= y && y < b.y1) std::fill(owner.begin() + b.x0, owner.begin() + b.x1, b.source);
    for (int x0 = 0; x0 < cols;) {
      int x1 = x0 + 1;
      while (x1 < cols && owner[x1] == owner[x0]) x1++;
      blenders[owner[x0]].Blend(y, x0, x1, row.data());
      x0 = x1;
    }
    sink.Row(y, cols, C, row.data());
  }
}

class CropResize : public dali::Operator<CPUBackend> {
 public:
  explicit CropResize(const dali::OpSpec &spec)
      : dali::Operator<CPUBackend>(spec),
        size_(spec.GetRepeatedArgument<int>("size")),
        dtype_(spec.GetArgument<dali::DALIDataType>("dtype")),
        mean_(spec.GetRepeatedArgument<float>("mean")),
        std_(spec.GetRepeatedArgument<float>("std")) {
    DALI_ENFORCE(size_.size() == 2 && size_[0] > 0 && size_[1] > 0,
                 "size must be two positive integers (height, width)");
    DALI_ENFORCE(dtype_ == DALI_UINT8 || dtype_ == DALI_FLOAT || dtype_ == DALI_FLOAT16,
                 "dtype must be UINT8 (as resized), FLOAT or FLOAT16 (normalised)");
    DALI_ENFORCE(dtype_ == DALI_UINT8 || (!mean_.empty() && !std_.empty()),
                 "a normalised dtype needs mean and std");
  }

 protected:
  bool SetupImpl(std::vector<dali::OutputDesc> &output_desc, const Workspace &ws) override {
    const auto &clips = ws.Input<CPUBackend>(0);
    DALI_ENFORCE(clips.type() == DALI_UINT8, "clips must be uint8");
    DALI_ENFORCE(ws.NumInput() == 3 || ws.NumInput() >= 6,
                 "inputs: clips, roi_start, roi_end, then (to paste) partners..., anchors, shapes");
    const int n = clips.num_samples();
    dali::TensorListShape<4> shape(n);
    for (int i = 0; i < n; i++) {
      const auto s = clips.tensor_shape(i);
      DALI_ENFORCE(s.size() == 4, "clips must be (F, H, W, C)");
      shape.set_tensor_shape(i, dtype_ == DALI_UINT8
                                     ? dali::TensorShape<4>(s[0], size_[0], size_[1], s[3])
                                     : dali::TensorShape<4>(s[3], s[0], size_[0], size_[1]));
    }
    output_desc.resize(1);
    output_desc[0] = {shape, dtype_};
    return true;
  }

  void RunImpl(Workspace &ws) override {
    const auto &clips = ws.Input<CPUBackend>(0);
    const auto &roi_start = ws.Input<CPUBackend>(1);
    const auto &roi_end = ws.Input<CPUBackend>(2);
    const int n = clips.num_samples(), rows = size_[0], cols = size_[1];
    const int pastes = ws.NumInput() == 3 ? 0 : ws.NumInput() - 5;
    std::vector<std::vector<Taps>> ys(n), xs(n);
    for (int i = 0; i < n; i++) {
      const auto s = clips.tensor_shape(i);
      DALI_ENFORCE(roi_start.tensor_shape(i).num_elements() == 2 &&
                       roi_end.tensor_shape(i).num_elements() == 2,
                   "roi_start and roi_end must be (2,) per sample");
      const float *a = roi_start.tensor<float>(i), *b = roi_end.tensor<float>(i);
      ys[i] = AxisTaps(a[0], b[0], rows, s[1]);
      xs[i] = AxisTaps(a[1], b[1], cols, s[2]);
    }
    auto &out = ws.Output<CPUBackend>(0);
    out.SetLayout(dtype_ == DALI_UINT8 ? "FHWC" : "CFHW");
    if (n > 0 && dtype_ != DALI_UINT8) Tables(clips.tensor_shape(0)[3]);
    auto &pool = ws.GetThreadPool();
    for (int i = 0; i < n; i++) {
      const auto s = clips.tensor_shape(i);
      const int F = s[0], C = s[3];
      const int64_t out_frame = static_cast<int64_t>(rows) * cols * C;
      DALI_ENFORCE(dtype_ == DALI_UINT8 || C == static_cast<int>(lut32_.size() / 256),
                   "every clip of the batch must have the same number of channels");
      std::vector<int> partners(pastes);
      for (int j = 0; j < pastes; j++) {
        partners[j] = *ws.Input<CPUBackend>(3 + j).tensor<int>(i);
        DALI_ENFORCE(0 <= partners[j] && partners[j] < n, "partner index out of the batch");
        const auto p = clips.tensor_shape(partners[j]);
        DALI_ENFORCE(p[0] == F && p[3] == C, "a partner clip has other frames or channels");
      }
      for (int f = 0; f < F; f++) {
        std::vector<Source> sources{{clips.tensor<uint8_t>(i) + f * s[1] * s[2] * C,
                                     static_cast<int>(s[2]), &ys[i], &xs[i], 0, cols}};
        std::vector<Box> boxes;
        if (pastes > 0) {
          // anchors and shapes (F, 1 + pastes, 2): entry 0 is the clip itself, j + 1 paste j
          const auto &anchors = ws.Input<CPUBackend>(3 + pastes);
          const auto &shapes = ws.Input<CPUBackend>(4 + pastes);
          DALI_ENFORCE(anchors.tensor_shape(i) == dali::TensorShape<>(F, 1 + pastes, 2) &&
                           shapes.tensor_shape(i) == dali::TensorShape<>(F, 1 + pastes, 2),
                       "anchors and shapes must be (frames, 1 + pastes, 2) per sample");
          for (int j = 0; j < pastes; j++) {
            const int *a = anchors.tensor<int>(i) + (f * (1 + pastes) + 1 + j) * 2;
            const int *h = shapes.tensor<int>(i) + (f * (1 + pastes) + 1 + j) * 2;
            if (h[0] <= 0 || h[1] <= 0) continue;
            DALI_ENFORCE(a[0] >= 0 && a[1] >= 0 && a[0] + h[0] <= rows && a[1] + h[1] <= cols,
                         "a paste box reaches outside the output frame");
            const int p = partners[j];
            const auto ps = clips.tensor_shape(p);
            sources.push_back({clips.tensor<uint8_t>(p) + f * ps[1] * ps[2] * C,
                               static_cast<int>(ps[2]), &ys[p], &xs[p], a[1], a[1] + h[1]});
            boxes.push_back({static_cast<int>(sources.size()) - 1, a[0], a[0] + h[0], a[1],
                             a[1] + h[1]});
          }
        }
        Sink sink;
        const int64_t frame_values = static_cast<int64_t>(rows) * cols;
        if (dtype_ == DALI_UINT8) {
          sink.u8 = static_cast<uint8_t *>(out.raw_mutable_tensor(i)) + f * out_frame;
        } else if (dtype_ == DALI_FLOAT) {
          sink.f32 = static_cast<float *>(out.raw_mutable_tensor(i)) + f * frame_values;
          sink.lut32 = lut32_.data();
        } else {
          sink.f16 = static_cast<uint16_t *>(out.raw_mutable_tensor(i)) + f * frame_values;
          sink.lut16 = lut16_.data();
        }
        sink.plane = F * frame_values;
        pool.AddWork([sources, boxes, rows, cols, C, sink](int) {
          ResizeFrame(sources, boxes, rows, cols, C, sink);
        }, out_frame);
      }
    }
    pool.RunAll();
  }

 private:
  // The (C, 256) tables of (float32(v) - mean) * float32(1 / std) for every uint8 v, in float32
  // and rounded to the nearest float16 (ties to even): the NumPy twin's arithmetic, and DALI's
  // crop_mirror_normalize's.
  void Tables(int C) {
    DALI_ENFORCE((mean_.size() == 1 || static_cast<int>(mean_.size()) == C) &&
                     (std_.size() == 1 || static_cast<int>(std_.size()) == C),
                 "mean and std need one value, or one per channel");
    lut32_.resize(C * 256);
    lut16_.resize(C * 256);
    for (int c = 0; c < C; c++) {
      const float mean = mean_[mean_.size() == 1 ? 0 : c];
      const float inv_std = 1.0f / std_[std_.size() == 1 ? 0 : c];
      for (int v = 0; v < 256; v++) {
        const float value = (static_cast<float>(v) - mean) * inv_std;
        const _Float16 half = static_cast<_Float16>(value);
        lut32_[c * 256 + v] = value;
        std::memcpy(&lut16_[c * 256 + v], &half, sizeof(half));
      }
    }
  }

  std::vector<int> size_;
  dali::DALIDataType dtype_;
  std::vector<float> mean_, std_;
  std::vector<float> lut32_;
  std::vector<uint16_t> lut16_;
};

}  // namespace videomix

DALI_REGISTER_OPERATOR(VideomixCropResize, ::videomix::CropResize, ::dali::CPU);

DALI_SCHEMA(VideomixCropResize)
    .DocStr("Crop, flip (reversed x window) and bilinearly resize every frame of a clip; with "
            "partners, anchors and shapes, fill each frame's boxes with its partners' windows; "
            "with a FLOAT / FLOAT16 dtype, normalise to (C, F, H, W).")
    .NumInput(3, 3 + 2 + 7)
    .NumOutput(1)
    .InputLayout(0, "FHWC")
    .AddArg("size", "Output (height, width) in pixels.", DALI_INT_VEC)
    .AddOptionalTypeArg("dtype", "UINT8: (F, H, W, C) as resized; FLOAT or FLOAT16: "
                        "(C, F, H, W) normalised with mean and std.", DALI_UINT8)
    .AddOptionalArg("mean", "Per-channel (or one) mean, 0..255 units.", std::vector<float>{})
    .AddOptionalArg("std", "Per-channel (or one) standard deviation.", std::vector<float>{});
