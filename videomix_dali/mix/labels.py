"""Soft labels of a mixed batch (VideoMix Eq. 1) and the array-backend bridge.

``y_soft[n] = weights[n, 0] * s(y[n]) + sum_j weights[n, j + 1] * s(y[partners[n, j]])``
where ``s`` is the (optionally smoothed) one-hot target: ``(1 - eps) * onehot + eps / K``
(label smoothing is applied to the targets *before* mixing).  ``weights`` are the exact
voxel shares of :class:`MixParams`, so each label weighs what its video occupies.

Computed in float64 with element-wise operations only (numpy or cupy, same order),
then cast to float32: the same bits on every backend.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .params import MixParams

__all__ = [
    "mix_labels",
    "check_label_smoothing",
    "unwrap_array",
    "wrap_array",
    "on_device_of",
    "is_cupy",
]


# --------------------------------------------------------------------------- backends


def _is_torch(a: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def is_cupy(a: Any) -> bool:
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(a, cupy.ndarray)


def unwrap_array(a: Any, name: str = "x") -> tuple[Any, str, Any]:
    """(numpy-or-cupy array, kind, torch device or None) for a numpy/cupy/torch array.

    torch CPU tensors become NumPy views (shared memory), torch CUDA tensors CuPy views
    (DLPack); nothing is copied.
    """
    if is_cupy(a):
        return a, "cupy", None
    if isinstance(a, np.ndarray):
        return a, "numpy", None
    if _is_torch(a):
        torch = sys.modules["torch"]
        t = a.detach()
        if t.dtype == torch.bfloat16:
            raise ValueError(f"{name} dtype torch.bfloat16 is not supported; use float16/32")
        if t.device.type == "cpu":
            return t.numpy(), "torch", t.device
        if t.device.type == "cuda":
            import cupy

            with on_device_of(a):
                return cupy.from_dlpack(t), "torch", t.device
        raise ValueError(f"{name} is on device {t.device}; only CPU and CUDA are supported")
    if isinstance(a, (list, tuple, int, float)):
        return np.asarray(a), "numpy", None
    raise ValueError(f"{name} must be a NumPy, CuPy or torch array, got {type(a).__name__}")


def wrap_array(a: Any, kind: str) -> Any:
    """Back to the caller's type: torch tensors from NumPy (shared) or CuPy (DLPack)."""
    if kind != "torch":
        return a
    torch = sys.modules["torch"]
    if is_cupy(a):
        return torch.from_dlpack(a)
    return torch.from_numpy(a)


@contextlib.contextmanager
def on_device_of(a: Any) -> Iterator[None]:
    """Run CuPy work on the device of ``a`` (and, for torch CUDA, on torch's current stream)."""
    with contextlib.ExitStack() as stack:
        if _is_torch(a) and a.device.type == "cuda":
            import cupy

            torch = sys.modules["torch"]
            stack.enter_context(cupy.cuda.Device(a.device.index))
            stream = torch.cuda.current_stream(a.device)
            stack.enter_context(cupy.cuda.ExternalStream(stream.cuda_stream, a.device.index))
        elif is_cupy(a):
            stack.enter_context(a.device)
        yield


def _xp(a: Any) -> Any:
    return sys.modules["cupy"] if is_cupy(a) else np


# --------------------------------------------------------------------------- labels


def check_label_smoothing(label_smoothing: Any) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(
        label_smoothing, (int, float, np.floating, np.integer)
    ):
        raise ValueError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    return float(label_smoothing)


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
    if num_classes is not None and (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, (int, np.integer))
        or num_classes < 1
    ):
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    arr, kind, _ = unwrap_array(y, "y")
    N = params.batch_size
    if arr.ndim not in (1, 2):
        raise ValueError(f"y must be int labels (N,) or soft labels (N, K), got shape {arr.shape}")
    if arr.shape[0] != N:
        raise ValueError(f"y holds {arr.shape[0]} labels but the batch has N={N} samples")
    with on_device_of(y):
        xp = _xp(arr)
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
