"""Multi-GPU / multi-node training with ``torchrun`` and DDP.

``torchrun --nproc_per_node 8 -m train ...`` (add ``--nnodes``/``--node_rank``/
``--rdzv_endpoint`` for several nodes) starts one process per device; each builds its own
DALI pipeline, which reads its own shard (``VideoLoader`` defaults ``shard_id``/``num_shards``
to the process group's rank and world size). Gradients are averaged by DDP, BN statistics are
per process during the epoch and averaged at its end, evaluation sums per-video probabilities
and correct counts over ranks with ``all_reduce``. Backend: NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from videomix_dali.runtime import rank_and_world_size

__all__ = [
    "all_reduce_sum",
    "average_buffers",
    "barrier",
    "cleanup",
    "is_distributed",
    "is_main",
    "rank",
    "setup",
    "world_size",
    "wrap_ddp",
]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return rank_and_world_size()[0]


def world_size() -> int:
    return rank_and_world_size()[1]


def is_main() -> bool:
    return rank() == 0


def setup(device: str = "auto") -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); pick the local GPU.

    Returns whether the run is distributed. A no-op when started without torchrun.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    use_cuda = device in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DDP when distributed, else ``model`` itself."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (no-op when not distributed); gloo needs CPU tensors, NCCL CUDA."""
    if not is_distributed():
        return t
    if dist.get_backend() == "nccl" and not t.is_cuda:
        tmp = t.cuda()
        dist.all_reduce(tmp, op=dist.ReduceOp.SUM)
        t.copy_(tmp.cpu())
    else:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def average_buffers(model: nn.Module) -> None:
    """Average floating-point buffers (BN running statistics) over ranks, so that every rank
    ends an epoch with the identical model."""
    if not is_distributed():
        return
    n = world_size()
    for b in model.buffers():
        if b.is_floating_point():
            dist.all_reduce(b, op=dist.ReduceOp.SUM)
            b.div_(n)
