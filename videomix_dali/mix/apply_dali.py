"""DALI-native applier: the VideoMix family as DALI operators in the CPU pipeline.

``fn.python_function`` runs serially under a global lock and DALI copies its outputs, so
on the CPU the mix step is built from DALI's own operators instead, which run in its
thread pool: ``permute_batch`` fetches each paste's partner clip, a box is a broadcast
product of three 0/1 uint8 masks (frames x rows x columns), and ``out + (partner - out) *
box`` pastes it in uint8 (wrapping arithmetic, exact). mixup blends in float32
(``acc * lam + partner * (1 - lam)``, the twin's order); cutout erases after normalising.
Normalising is ``crop_mirror_normalize``, as in an unmixed batch.

The host half (:func:`dali_inputs`) turns a :class:`MixParams` into small per-sample
arrays; the graph half (:func:`apply_dali`) is a pure function of the clips and those
arrays. The result equals the NumPy twin's fused path bit for bit in float32; in float16,
DALI's float -> half conversion rounds exact ties away from zero where the twin (and the
GPU kernel) round to even, so a value exactly halfway between two halves can differ by one
unit in the last place (tests/test_mix_dali.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode

from .params import MixParams, num_pastes

__all__ = ["apply_dali", "dali_inputs", "num_dali_inputs"]

_PER_PASTE = {"mixup": 3, "cutout": 2}  # partner, lam, 1 - lam / erase anchor, shape


def num_dali_inputs(mode: str, num_videos: int) -> int:
    """How many per-sample inputs :func:`dali_inputs` yields for ``mode``."""
    if mode == "cutout":
        return _PER_PASTE["cutout"]
    return num_pastes(mode, num_videos) * _PER_PASTE.get(mode, 4)


def dali_inputs(params: MixParams) -> tuple[list[np.ndarray], ...]:
    """The graph's per-sample inputs for one (N, C, T, H, W) batch, one list of N each.

    Per paste j of the pairing cut modes: partner index () int32 and the box as masks
    (T, 1, 1, 1), (B, H, 1, 1), (B, 1, W, 1) uint8 (B = T for perframe, else 1; all zero
    where the sample is not mixed). mixup: partner () int32, lam and 1 - lam () float32.
    cutout: erase anchor and shape (3,) float32 over (T, H, W) (zero shape: no erase).
    """
    if params.is_features:
        raise ValueError("dali_inputs takes clip params (N, C, T, H, W), not (N, T, D) features")
    N, P, B = params.batch_size, params.num_pastes, params.boxes_per_paste
    T, H, W = params.dims
    out: list[list[np.ndarray]] = []
    if params.mode == "cutout":
        box = np.where(params.applied[:, None], params.boxes[:, 0, 0], 0)
        anchor = np.ascontiguousarray(box[:, 0::2], dtype=np.float32)  # erase takes floats
        shape = np.ascontiguousarray(box[:, 1::2] - box[:, 0::2], dtype=np.float32)
        return list(anchor), list(shape)
    for j in range(P):
        partner = np.where(params.partners[:, j] < 0, np.arange(N), params.partners[:, j])
        out.append([np.array(p, np.int32) for p in partner])
        if params.mode == "mixup":
            lam = np.where(params.applied, params.lam[:, j, 0], 1.0).astype(np.float32)
            oml = np.where(params.applied, 1.0 - params.lam[:, j, 0], 0.0).astype(np.float32)
            out += [[np.array(v) for v in lam], [np.array(v) for v in oml]]
            continue
        boxes = params.boxes[:, j] * params.applied[:, None, None]  # (N, B, 6); zero if unmixed
        t, h, w = np.arange(T), np.arange(H), np.arange(W)
        mt = _inside(t, boxes[:, :, 0], boxes[:, :, 1]).any(axis=1)  # (N, T)
        mh = _inside(h, boxes[:, :, 2], boxes[:, :, 3])  # (N, B, H)
        mw = _inside(w, boxes[:, :, 4], boxes[:, :, 5])  # (N, B, W)
        for mask, shape in ((mt, (T, 1, 1, 1)), (mh, (B, H, 1, 1)), (mw, (B, 1, W, 1))):
            dense = np.ascontiguousarray(mask, dtype=np.uint8)  # DALI takes no strides
            out.append([m.reshape(shape) for m in dense])
    return tuple(out)


def _inside(axis: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(..., L) bool: ``lo <= axis < hi`` for bounds of shape (...)."""
    return (lo[..., None] <= axis) & (axis < hi[..., None])


def apply_dali(
    video: DataNode,
    inputs: Sequence[DataNode],
    mode: str,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: types.DALIDataType,
) -> DataNode:
    """Mix and normalise a batch of (T, H, W, C) uint8 clips: (C, T, H, W) ``dtype``.

    ``inputs`` are the graph nodes of :func:`dali_inputs`' lists, in order.
    """
    out = video
    per = _PER_PASTE.get(mode, 4)
    if mode not in ("cutout", "none"):
        for j in range(0, len(inputs), per):
            partner = fn.permute_batch(video, indices=inputs[j])
            if mode == "mixup":
                lam, oml = inputs[j + 1], inputs[j + 2]
                out = out * lam + partner * oml  # float32, three roundings
            else:
                box = inputs[j + 1] * inputs[j + 2] * inputs[j + 3]  # (T, H, W, 1) 0/1
                out = out + (partner - out) * box  # uint8, wraps: exactly partner in the box
    out = fn.crop_mirror_normalize(
        out, dtype=dtype, output_layout="CFHW", mean=list(mean), std=list(std)
    )
    if mode == "cutout":  # erased voxels are exactly 0 (the mean) after normalising
        out = fn.erase(out, anchor=inputs[0], shape=inputs[1], axis_names="FHW", fill_value=0)
    return out
