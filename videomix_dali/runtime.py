"""Where this process runs: its device for the pipeline, and its rank among the processes."""

from __future__ import annotations

import os

import torch

DEVICES = ("cpu", "gpu", "auto")


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"gpu"`` for ``device`` (``"auto"``: the GPU where torch sees one).

    Raises ValueError for another name, or for ``"gpu"`` without a visible CUDA device.
    """
    if device not in DEVICES:
        raise ValueError(f"device={device!r} must be 'cpu', 'gpu' or 'auto'")
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if device == "gpu" and not torch.cuda.is_available():
        raise ValueError("device='gpu' but no CUDA device is visible; use device='cpu'")
    return device


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes in ``torch.distributed``'s default
    group; (0, 1) without an initialised group."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def check_ranks_agree(what: str, fingerprint: str, summary: str) -> None:
    """ValueError on every rank where the ranks of ``torch.distributed``'s default group hold
    different ``fingerprint``s of ``what`` (say, a folder listed while files were added):
    their shards and step counts would not match, and a collective would hang. ``summary``
    (e.g. "7 videos") names each rank's view in the error. No-op without a group."""
    rank, world_size = rank_and_world_size()
    if world_size == 1:
        return
    views: list = [None] * world_size
    torch.distributed.all_gather_object(views, (fingerprint, summary))
    if len({f for f, _ in views}) > 1:
        seen = ", ".join(f"rank {r}: {s}" for r, (_, s) in enumerate(views))
        raise ValueError(
            f"the ranks see different {what} ({seen}); every rank must read the same list "
            "(write an index file once, or let the folder settle before starting)"
        )


def free_memory(device: str) -> int:
    """Bytes a pipeline on ``device`` (``"cpu"`` or ``"gpu"``) can still allocate: the host's
    available memory (``MemAvailable``), or the current CUDA device's free memory."""
    if device == "gpu":
        return torch.cuda.mem_get_info()[0]
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
