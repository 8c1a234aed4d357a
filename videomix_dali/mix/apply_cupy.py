"""CuPy appliers: the kernels of kernels/videomix.cu, one batched launch per batch.

CuPy is imported lazily (this module imports on machines without it or without a
GPU).  The module is compiled once per device with NVRTC through ``cupy.RawModule``
with ``NVRTC_OPTIONS``; CuPy adds ``-ftz=true`` and the architecture (``CUPY_OPTIONS``
lists what it adds), which the header's float32 arithmetic is immune to (inline PTX
without ``.ftz``).  The kernels read the packed params of :meth:`MixParams.pack` as
they are: int32 rows and float64 coefficients, one row of each per sample.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ..shipped import shipped_dir
from .apply_numpy import check_frames, check_mean_std, check_out_dtype, frames_list
from .params import MODE_CODES, MixParams, canonical_dims

__all__ = [
    "kernel_dir",
    "kernel_source",
    "get_module",
    "apply_cupy",
    "apply_packed_cupy",
    "mix_normalize_batch_cupy",
    "mix_normalize_packed_cupy",
    "NVRTC_OPTIONS",
    "CUPY_OPTIONS",
]

NVRTC_OPTIONS = ("--fmad=false",)
# What CuPy 14 appends to every NVRTC compile of a RawModule (cupy/cuda/compiler.py;
# plus "-arch=compute_XY" for the device, and "--pch" from NVRTC 12.8, which changes
# nothing in the code).
CUPY_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")
_THREADS = 256
_MAX_BLOCKS = 1 << 16
_PASTE_KERNELS = {
    np.dtype(np.uint8): "vm_paste_u8",
    np.dtype(np.float16): "vm_paste_f16",
    np.dtype(np.float32): "vm_paste_f32",
    np.dtype(np.float64): "vm_paste_f64",
}
_FUSED_KERNELS = {np.dtype(np.float32): "vm_fused_f32", np.dtype(np.float16): "vm_fused_f16"}


def kernel_dir() -> Path:
    """Folder holding videomix.cuh / videomix.cu (``kernels/`` of the package)."""
    return shipped_dir("kernels")


@functools.lru_cache(maxsize=1)
def kernel_source() -> str:
    """videomix.cu with its ``#include "videomix.cuh"`` replaced by the header text."""
    d = kernel_dir()
    header = (d / "videomix.cuh").read_text()
    body = (d / "videomix.cu").read_text()
    line = '#include "videomix.cuh"'
    if line not in body:
        raise RuntimeError(f"{d / 'videomix.cu'} does not include videomix.cuh")
    return body.replace(line, header, 1)


def _cupy() -> Any:
    import cupy

    return cupy


_MODULES: dict[int, Any] = {}


def get_module() -> Any:
    """The compiled ``cupy.RawModule`` for the current device (built once, cached)."""
    cp = _cupy()
    dev = cp.cuda.Device().id
    mod = _MODULES.get(dev)
    if mod is None:
        mod = cp.RawModule(code=kernel_source(), options=NVRTC_OPTIONS)
        _MODULES[dev] = mod
    return mod


def _grid(pixels: int) -> tuple[int]:
    return (max(1, min((pixels + _THREADS - 1) // _THREADS, _MAX_BLOCKS)),)


def _device_params(params: MixParams) -> tuple[Any, Any]:
    cp = _cupy()
    rows, coef = params.pack()
    return cp.asarray(rows), cp.asarray(coef)


def apply_cupy(x: Any, params: MixParams) -> Any:
    """Mix a CuPy batch ``x`` of shape ``params.shape``; returns a new CuPy array."""
    if tuple(x.shape) != params.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but params were drawn for {params.shape}")
    rows, coef = _device_params(params)
    return apply_packed_cupy(x, rows, coef, params.mode)


def apply_packed_cupy(x: Any, rows: Any, coef: Any, mode: str) -> Any:
    """:func:`apply_cupy` on params already packed on the device.

    ``x``: (N, C, T, H, W) clips or (N, T, D) features (CuPy); ``rows`` (N, R) int32 and
    ``coef`` (N, K) float64 CuPy arrays as :meth:`MixParams.pack` writes them.
    """
    cp = _cupy()
    dt = np.dtype(x.dtype)
    if dt not in _PASTE_KERNELS:
        raise ValueError(
            f"x dtype {dt} is not supported on the GPU; use one of "
            f"{', '.join(str(d) for d in _PASTE_KERNELS)}"
        )
    N = x.shape[0]
    T, H, W = canonical_dims(tuple(x.shape))
    x5 = cp.ascontiguousarray(x).reshape(N, -1, T, H, W)
    C = x5.shape[1]
    out = cp.empty_like(x5)
    rows = cp.ascontiguousarray(rows, dtype=cp.int32)
    kern = get_module().get_function(_PASTE_KERNELS[dt])
    kern(
        _grid(N * T * H * W),
        (_THREADS,),
        (
            x5,
            out,
            rows,
            np.int32(rows.shape[1]),
            cp.ascontiguousarray(coef, dtype=cp.float64),
            np.int32(MODE_CODES[mode]),
            np.int32(N),
            np.int32(C),
            np.int32(T),
            np.int32(H),
            np.int32(W),
        ),
    )
    return out.reshape(x.shape)


def mix_normalize_batch_cupy(
    frames: Any,
    params: MixParams,
    mean: Any,
    std: Any,
    *,
    out: Any = None,
    dtype: Any = np.float32,
) -> Any:
    """GPU fused path: per-sample (T, H, W, C) uint8 CuPy clips -> (N, C, T, H, W).

    The clips need not be contiguous with each other (DALI's per-sample buffers): the
    kernel gets a device array of per-sample pointers and reads them in place.
    """
    frames = frames_list(frames)
    check_frames(frames, params)
    rows, coef = _device_params(params)
    return mix_normalize_packed_cupy(
        frames, rows, coef, params.mode, mean, std, out=out, dtype=dtype
    )


def mix_normalize_packed_cupy(
    frames: Any,
    rows: Any,
    coef: Any,
    mode: str,
    mean: Any,
    std: Any,
    *,
    out: Any = None,
    dtype: Any = np.float32,
) -> Any:
    """:func:`mix_normalize_batch_cupy` on params already packed on the device.

    ``rows`` (N, R) int32 and ``coef`` (N, K) float64 CuPy arrays as :meth:`MixParams.pack`
    writes them (the pipeline's mix step hands them over as they arrive: no host round
    trip). ``frames``: N per-sample (T, H, W, C) uint8 CuPy clips.
    """
    cp = _cupy()
    frames = frames_list(frames)
    N = len(frames)
    T, H, W, C = frames[0].shape
    dt = check_out_dtype(dtype)
    mean32, inv_std32 = check_mean_std(mean, std, C)
    if tuple(rows.shape[:1]) != (N,) or tuple(coef.shape[:1]) != (N,):
        raise ValueError(f"rows {rows.shape} and coef {coef.shape} must have N={N} rows")
    keep = [f if f.flags.c_contiguous else cp.ascontiguousarray(f) for f in frames]
    ptrs = cp.asarray(np.array([f.data.ptr for f in keep], dtype=np.uint64))
    if out is None:
        out = cp.empty((N, C, T, H, W), dtype=dt)
    elif tuple(out.shape) != (N, C, T, H, W) or out.dtype != dt or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous {dt} array of shape {(N, C, T, H, W)}, got "
            f"{out.dtype} {tuple(out.shape)}"
        )
    rows = cp.ascontiguousarray(rows, dtype=cp.int32)
    coef = cp.ascontiguousarray(coef, dtype=cp.float64)
    kern = get_module().get_function(_FUSED_KERNELS[dt])
    kern(
        _grid(N * T * H * W),
        (_THREADS,),
        (
            ptrs,
            out,
            rows,
            np.int32(rows.shape[1]),
            coef,
            cp.asarray(mean32),
            cp.asarray(inv_std32),
            np.int32(MODE_CODES[mode]),
            np.int32(N),
            np.int32(C),
            np.int32(T),
            np.int32(H),
            np.int32(W),
        ),
    )
    del keep
    return out
