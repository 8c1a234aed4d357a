"""Soft labels of a mixed batch (VideoMix Eq. 1).

``y_soft[n] = weights[n, 0] * s(y[n]) + sum_j weights[n, j + 1] * s(y[partners[n, j]])``
where ``s`` is the (optionally smoothed) one-hot target: ``(1 - eps) * onehot + eps / K``
(label smoothing is applied to the targets *before* mixing).  ``weights`` are the exact
voxel shares of :class:`MixParams`, so each label weighs what its video occupies.

Computed in float64 with element-wise operations only (numpy or cupy, same order),
then cast to float32: the same bits on every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import array_module, on_device_of, unwrap_array, wrap_array
from .params import MixParams

__all__ = ["mix_labels", "check_label_smoothing", "check_num_classes"]


# --------------------------------------------------------------------------- labels


def check_label_smoothing(label_smoothing: Any) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(
        label_smoothing, (int, float, np.floating, np.integer)
    ):
        raise ValueError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    return float(label_smoothing)


def check_num_classes(num_classes: Any) -> int | None:
    """``num_classes`` as an int >= 1, or None."""
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes must be an int >= 1 or None, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1 or None, got {num_classes!r}")
    return int(num_classes)


def mix_labels(
    y: Any,
    params: MixParams,
    num_classes: int | None = None,
    label_smoothing: float = 0.0,
) -> Any:
    """Mixed soft labels (N, K) float32, of ``y``'s type and device.

    ``y``: int labels (N,) (needs ``num_classes``) or soft labels (N, K) (``num_classes``,
    if given, must equal K).  NumPy, CuPy or torch (CPU / CUDA).
    """
    eps = check_label_smoothing(label_smoothing)
    num_classes = check_num_classes(num_classes)
    arr, kind, _ = unwrap_array(y, "y")
    N = params.batch_size
    if arr.ndim not in (1, 2):
        raise ValueError(f"y must be int labels (N,) or soft labels (N, K), got shape {arr.shape}")
    if arr.shape[0] != N:
        raise ValueError(f"y holds {arr.shape[0]} labels but the batch has N={N} samples")
    with on_device_of(y):
        xp = array_module(arr)
        if arr.ndim == 1:
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"y of shape (N,) must hold int labels, got dtype {arr.dtype}")
            if num_classes is None:
                raise ValueError("num_classes is required with int labels y")
            K = int(num_classes)
            lo, hi = (int(v) for v in xp.stack([arr.min(), arr.max()]).tolist())
            if lo < 0 or hi >= K:
                raise ValueError(f"y label values must be in [0, {K - 1}], got min {lo}, max {hi}")
            base = xp.zeros((N, K), dtype=xp.float64)
            base[xp.arange(N), arr.astype(xp.int64)] = 1.0
        else:
            K = int(arr.shape[1])
            if num_classes is not None and K != num_classes:
                raise ValueError(f"y has {K} classes but num_classes={num_classes}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"soft labels y must be floating point, got dtype {arr.dtype}")
            base = arr.astype(xp.float64)
        if eps > 0.0:
            base = base * (1.0 - eps) + eps / K
        w = xp.asarray(params.weights)
        out = base * w[:, 0:1]
        ar = np.arange(N)
        for j in range(params.num_pastes):
            p = params.partners[:, j]
            p = xp.asarray(np.where(p < 0, ar, p))  # -1 (erase / none) has weight 0
            out = out + base[p] * w[:, j + 1 : j + 2]
        y_soft = out.astype(xp.float32)
    return wrap_array(y_soft, kind)
