"""DALI -> PyTorch without a copy (DLPack)."""

from __future__ import annotations

import torch
from nvidia.dali.backend import TensorListCPU, TensorListGPU


def to_torch(batch: TensorListCPU | TensorListGPU) -> torch.Tensor:
    """Wrap a dense DALI batch as one torch tensor sharing its memory (CPU or CUDA).

    The pipeline runs with the dynamic executor, whose outputs stay valid for as long as a
    reference to them is held, so the DLPack view is safe to keep.
    """
    return torch.from_dlpack(batch.as_tensor())
