"""The array-backend bridge: NumPy, CuPy and torch (CPU / CUDA) arrays, without copies.

Appliers work on NumPy or CuPy; torch tensors are viewed as one of them on the way in
(:func:`unwrap_array`) and wrapped back on the way out (:func:`wrap_array`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["array_module", "is_cupy", "on_device_of", "unwrap_array", "wrap_array"]


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


def array_module(a: Any) -> Any:
    """``cupy`` for a CuPy array, else ``numpy``."""
    return sys.modules["cupy"] if is_cupy(a) else np
