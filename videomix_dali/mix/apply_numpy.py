"""NumPy twin of the VideoMix kernels (kernels/videomix.cu): same params, same bits.

Two appliers, both pure functions of ``(x, params)``:

* :func:`apply_numpy` -- standalone (N, C, T, H, W) clips or (N, T, D) features.
* :func:`mix_normalize_batch_numpy` -- the CPU pipeline's fused path: a list of N
  per-sample (T, H, W, C) uint8 clips -> paste -> ``(v - mean) * (1 / std)`` -> float32 or
  float16 (N, C, T, H, W).

Floating point follows kernels/videomix.cuh operation by operation (one IEEE rounding
each, in the same order): mixup is ``acc * lam + other * (1 - lam)`` in float32 (float64
for float64 clips), normalisation is ``(float32(v) - mean) * float32(1 / std)`` in
float32, float16 is rounded to nearest-even, uint8 is ``rint`` then clipped to [0, 255].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .params import MixParams, canonical_dims

__all__ = [
    "apply_numpy",
    "mix_normalize_batch_numpy",
    "source_map",
    "normalize_lut",
    "check_mean_std",
    "MIXUP_DTYPES",
]

MIXUP_DTYPES = (
    np.dtype(np.uint8),
    np.dtype(np.float16),
    np.dtype(np.float32),
    np.dtype(np.float64),
)


def _groups(params: MixParams) -> list[tuple[np.ndarray, np.ndarray]]:
    """(sample indices, their boxes (P, B, 6)) for the mixed samples, shared boxes grouped."""
    idx = np.flatnonzero(params.applied)
    if idx.size == 0 or params.num_pastes == 0:
        return []
    boxes = params.boxes[idx]
    if not params.per_sample and np.array_equal(boxes, np.broadcast_to(boxes[:1], boxes.shape)):
        return [(idx, boxes[0])]
    return [(idx[i : i + 1], boxes[i]) for i in range(idx.size)]


def _as5d(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    T, H, W = canonical_dims(shape)
    return x.reshape(shape[0], -1, T, H, W)


def source_map(params: MixParams) -> np.ndarray:
    """(N, T, H, W) int64: the sample each output voxel is read from; -1 = erased.

    For mixup every voxel blends all sources; the map then holds the sample itself.
    The kernel header's ``vm_source`` computes the same map (checked by a host test).
    """
    N = params.batch_size
    T, H, W = params.dims
    m = np.empty((N, T, H, W), dtype=np.int64)
    m[...] = np.arange(N).reshape(N, 1, 1, 1)
    if params.mode == "mixup":
        return m
    for idx, boxes in _groups(params):
        for j in range(params.num_pastes):
            src = params.partners[idx, j].reshape(-1, 1, 1, 1)
            for t1, t2, h1, h2, w1, w2 in boxes[j]:
                m[idx, t1:t2, h1:h2, w1:w2] = src
    return m


def _mixup_coefs(params: MixParams, idx: np.ndarray, j: int, ct: type) -> tuple[Any, Any]:
    lam = params.lam[idx, j, 0]
    shape = (-1, 1, 1, 1, 1)
    return (lam.astype(ct).reshape(shape), (1.0 - lam).astype(ct).reshape(shape))


def _store(acc: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip(np.rint(acc), 0, 255).astype(np.uint8)
    return acc.astype(dtype)


def apply_numpy(x: np.ndarray, params: MixParams) -> np.ndarray:
    """Mix a NumPy batch ``x`` of shape ``params.shape``; returns a new array, same dtype.

    Cut modes copy the box of each paste's partner from the *input* batch (never from
    an already mixed sample), in paste order; cutout writes zeros; mixup blends.
    """
    x = np.asarray(x)
    if tuple(x.shape) != params.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but params were drawn for {params.shape}")
    x5 = _as5d(x, params.shape)
    out = np.array(x5, copy=True, order="C")
    if params.mode == "mixup":
        if x.dtype not in MIXUP_DTYPES:
            raise ValueError(
                f"x dtype {x.dtype} is not supported by mixup; use one of "
                f"{', '.join(str(d) for d in MIXUP_DTYPES)}"
            )
        ct = np.float64 if x.dtype == np.float64 else np.float32
        for idx, _ in _groups(params):
            acc = x5[idx].astype(ct)
            for j in range(params.num_pastes):
                lam, oml = _mixup_coefs(params, idx, j, ct)
                np.multiply(acc, lam, out=acc)
                acc += np.multiply(x5[params.partners[idx, j]], oml, dtype=ct)
            out[idx] = _store(acc, x.dtype)
        return out.reshape(x.shape)
    for idx, boxes in _groups(params):
        for j in range(params.num_pastes):
            src = params.partners[idx, j]
            for t1, t2, h1, h2, w1, w2 in boxes[j]:
                if t1 >= t2 or h1 >= h2 or w1 >= w2:
                    continue
                if src[0] < 0:  # erase (cutout)
                    out[idx, :, t1:t2, h1:h2, w1:w2] = 0
                else:
                    out[idx, :, t1:t2, h1:h2, w1:w2] = x5[src, :, t1:t2, h1:h2, w1:w2]
    return out.reshape(x.shape)


# --------------------------------------------------------------------------- fused path


def check_mean_std(mean: Any, std: Any, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel float32 mean and ``1 / std`` (0..255 units) of length C.

    Normalising is ``(v - mean) * float32(1 / std)`` in float32, the arithmetic of DALI's
    ``crop_mirror_normalize``, so a mixed and an unmixed batch are normalised alike.
    """
    m = np.asarray(mean, dtype=np.float64).astype(np.float32).reshape(-1)
    s = np.asarray(std, dtype=np.float64).astype(np.float32).reshape(-1)
    if m.size == 1:
        m = np.repeat(m, C)
    if s.size == 1:
        s = np.repeat(s, C)
    if m.size != C:
        raise ValueError(f"mean must have one value per channel (C={C}), got {m.size}")
    if s.size != C:
        raise ValueError(f"std must have one value per channel (C={C}), got {s.size}")
    if not np.all(np.isfinite(s)) or np.any(s == 0):
        raise ValueError(f"std must be finite and non-zero, got {s.tolist()}")
    return m, np.float32(1) / s


def normalize_lut(mean32: np.ndarray, inv_std32: np.ndarray, dtype: Any) -> np.ndarray:
    """(C, 256) table of ``(float32(v) - mean) * inv_std`` for every uint8 v, cast to dtype.

    Each entry is computed with exactly the kernel's float32 operations, so a table
    look-up gives the same bits as computing it voxel by voxel.
    """
    v = np.arange(256, dtype=np.float32)[None, :]
    lut = np.multiply(np.subtract(v, mean32[:, None]), inv_std32[:, None])
    return lut.astype(dtype)


def frames_list(frames: Any) -> list[Any]:
    """A list of per-sample arrays from a list/tuple or an (N, T, H, W, C) array."""
    if isinstance(frames, (list, tuple)):
        return list(frames)
    if getattr(frames, "ndim", None) == 5:
        return [frames[i] for i in range(frames.shape[0])]
    raise ValueError(
        "frames must be a list of N (T, H, W, C) uint8 arrays or one (N, T, H, W, C) array"
    )


def check_frames(frames: Sequence[Any], params: MixParams) -> tuple[int, int, int, int, int]:
    """Validate the per-sample clips against params; return (N, C, T, H, W)."""
    N = len(frames)
    if N == 0:
        raise ValueError("frames is empty")
    shape0 = tuple(frames[0].shape)
    if len(shape0) != 4:
        raise ValueError(f"frames must hold (T, H, W, C) clips, got a clip of shape {shape0}")
    for i, f in enumerate(frames):
        if tuple(f.shape) != shape0:
            raise ValueError(f"frames[{i}] has shape {tuple(f.shape)}, frames[0] has {shape0}")
        if f.dtype != np.uint8:
            raise ValueError(f"frames[{i}] must be uint8, got {f.dtype}")
    T, H, W, C = shape0
    want = (N, C, T, H, W)
    if len(params.shape) != 5 or params.shape != want:
        raise ValueError(
            f"frames make a batch (N, C, T, H, W) = {want} but params were drawn for {params.shape}"
        )
    return N, C, T, H, W


def check_out_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"dtype must be float32 or float16, got {dt}")
    return dt


def mix_normalize_batch_numpy(
    frames: Any,
    params: MixParams,
    mean: Any,
    std: Any,
    *,
    out: np.ndarray | None = None,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Paste + normalise + cast + NCTHW in one pass over a list of (T, H, W, C) uint8 clips.

    Cut modes assemble each mixed sample in uint8 (a copy of the clip with the
    partners' boxes pasted in: cheap bytes), then one table look-up per channel writes
    the normalised values straight into ``out[n, c]``.  mixup blends in float32.
    """
    frames = [np.asarray(f) for f in frames_list(frames)]
    N, C, T, H, W = check_frames(frames, params)
    dt = check_out_dtype(dtype)
    mean32, inv_std32 = check_mean_std(mean, std, C)
    if out is None:
        out = np.empty((N, C, T, H, W), dtype=dt)
    else:
        if out.shape != (N, C, T, H, W) or out.dtype != dt or not out.flags.c_contiguous:
            raise ValueError(
                f"out must be a C-contiguous {dt} array of shape {(N, C, T, H, W)}, got "
                f"{out.dtype} {tuple(out.shape)} (contiguous={out.flags.c_contiguous})"
            )
    lut = normalize_lut(mean32, inv_std32, dt)
    P = params.num_pastes
    mixup = params.mode == "mixup"
    tmp = np.empty((2, T, H, W), dtype=np.float32) if mixup else None
    for n in range(N):
        f = frames[n]
        if not params.applied[n] or P == 0:
            src = f
        elif mixup:
            other = tmp[1]
            for c in range(C):
                acc = out[n, c] if dt == np.float32 else tmp[0]  # float32: blend in place
                for j in range(P):
                    p = params.partners[n, j]
                    lam = np.float32(params.lam[n, j, 0])
                    oml = np.float32(1.0 - params.lam[n, j, 0])
                    if j == 0:
                        np.multiply(f[..., c], lam, out=acc, dtype=np.float32)
                    else:
                        np.multiply(acc, lam, out=acc)
                    np.multiply(frames[p][..., c], oml, out=other, dtype=np.float32)
                    np.add(acc, other, out=acc)
                np.subtract(acc, mean32[c], out=acc)
                np.multiply(acc, inv_std32[c], out=acc)
                if dt != np.float32:
                    out[n, c] = acc  # float32 -> float16, round to nearest even
            continue
        else:
            src = f.copy()
            for j in range(P):
                p = params.partners[n, j]
                if p < 0:
                    continue  # erased after normalisation, below
                for t1, t2, h1, h2, w1, w2 in params.boxes[n, j]:
                    src[t1:t2, h1:h2, w1:w2] = frames[p][t1:t2, h1:h2, w1:w2]
        for c in range(C):
            np.take(lut[c], src[..., c], out=out[n, c], mode="clip")
        if params.applied[n]:
            for j in range(P):
                if params.partners[n, j] < 0:
                    for t1, t2, h1, h2, w1, w2 in params.boxes[n, j]:
                        out[n, :, t1:t2, h1:h2, w1:w2] = 0
    return out
