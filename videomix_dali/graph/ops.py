"""DALI-native applier: the VideoMix family as DALI operators in the CPU pipeline.

``fn.python_function`` runs serially under a global lock and DALI copies its outputs, so
on the CPU the mix step is built from DALI's own operators instead, which run in its
thread pool: ``permute_batch`` fetches each paste's partner clip and ``multi_paste`` copies
the clip and then each partner's box into the output, frame by frame (per-frame anchors and
shapes; a frame outside a box gets an empty paste), later pastes over earlier ones. mixup
blends in float32 (``acc * lam + partner * (1 - lam)``, the twin's order); cutout erases after
normalising. Normalising is ``crop_mirror_normalize``, as in an unmixed batch.

``multi_paste``'s CPU kernel works on the frames of a batch of sequences and needs the
pipeline's batch size to be at least N x T (:func:`dali_batch_size`; measured with DALI 2.4).

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

from ..mix.params import MixParams, num_pastes

__all__ = [
    "PASTE_MODES",
    "apply_dali",
    "dali_batch_size",
    "dali_inputs",
    "normalize",
    "num_dali_inputs",
]

PASTE_MODES = ("spatial", "temporal", "spatiotemporal", "perframe")


def num_dali_inputs(mode: str, num_videos: int) -> int:
    """How many per-sample inputs :func:`dali_inputs` yields for ``mode``."""
    if mode == "cutout":
        return 2  # erase anchor, shape
    if mode == "mixup":
        return 3 * num_pastes(mode, num_videos)  # per paste: partner, lam, 1 - lam
    if mode in PASTE_MODES:
        return num_pastes(mode, num_videos) + 2  # the partners, then anchors and shapes
    return 0


def dali_batch_size(mode: str, batch_size: int, num_frames: int) -> int:
    """The pipeline batch size :func:`apply_dali` needs for batches of ``batch_size`` clips."""
    return batch_size * num_frames if mode in PASTE_MODES else batch_size


def dali_inputs(params: MixParams) -> tuple[list[np.ndarray], ...]:
    """The graph's per-sample inputs for one (N, C, T, H, W) batch, one list of N each.

    Pairing cut modes: each paste's partner index () int32, then the per-frame anchors and
    shapes (T, 1 + P, 2) int32 (rows, columns) of ``multi_paste``'s inputs: the clip itself
    whole, then each partner's box where the frame lies in it (shape 0 elsewhere and where
    the sample is not mixed). mixup: partner () int32, lam and 1 - lam () float32 per paste.
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
    if params.mode not in PASTE_MODES:
        return tuple(out)
    anchors = np.zeros((N, T, 1 + P, 2), np.int32)
    shapes = np.zeros((N, T, 1 + P, 2), np.int32)
    shapes[:, :, 0] = (H, W)  # the clip itself, whole
    frame = np.arange(T)
    for j in range(P):
        # (N, T, 6): the box of paste j on each frame (B = T for perframe: box b is frame b's)
        box = np.broadcast_to(params.boxes[:, j], (N, T, 6)) if B == 1 else params.boxes[:, j]
        inside = (box[..., 0] <= frame) & (frame < box[..., 1]) & params.applied[:, None]
        anchors[:, :, j + 1] = np.where(inside[..., None], box[..., [2, 4]], 0)
        shapes[:, :, j + 1] = np.where(inside[..., None], box[..., [3, 5]] - box[..., [2, 4]], 0)
    return (*out, list(anchors), list(shapes))


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
    if mode == "mixup":
        for j in range(0, len(inputs), 3):
            partner = fn.permute_batch(video, indices=inputs[j])
            out = out * inputs[j + 1] + partner * inputs[j + 2]  # float32, three roundings
    elif mode in PASTE_MODES:
        *partners, anchors, shapes = inputs
        anchors, shapes = fn.per_frame(anchors), fn.per_frame(shapes)
        out = fn.multi_paste(
            video,
            *(fn.permute_batch(video, indices=p) for p in partners),
            in_anchors=anchors,
            shapes=shapes,
            out_anchors=anchors,
        )
    out = normalize(out, "cpu", mean, std, dtype)
    if mode == "cutout":  # erased voxels are exactly 0 (the mean) after normalising
        out = fn.erase(out, anchor=inputs[0], shape=inputs[1], axis_names="FHW", fill_value=0)
    return out


def normalize(
    video: DataNode,
    device: str,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: types.DALIDataType,
) -> DataNode:
    """(T, H, W, C) uint8 clips -> (C, T, H, W) ``dtype``, ``(x - mean) / std`` per channel."""
    return fn.crop_mirror_normalize(
        video, device=device, dtype=dtype, output_layout="CFHW", mean=list(mean), std=list(std)
    )
