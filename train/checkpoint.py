"""Checkpoints that resume a run exactly, and the run's devices."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from videomix_dali.runtime import resolve_device

from . import distributed as dist_utils
from .trainer import Trainer

__all__ = ["device_of", "load_checkpoint", "save_checkpoint"]


def device_of(name: str) -> tuple[str, torch.device]:
    """(loader device 'cpu'/'gpu', torch device for the model) of ``--device`` (``cuda`` is
    an alias of ``gpu``)."""
    try:
        device = resolve_device("gpu" if name == "cuda" else name)
    except ValueError as exc:
        raise SystemExit(f"--device: {exc}") from None
    if device == "gpu":
        return device, torch.device("cuda", torch.cuda.current_device())
    return device, torch.device("cpu")


def save_checkpoint(path: str | Path, trainer: Trainer, extra: dict[str, Any]) -> None:
    """Atomically write ``trainer.state_dict()`` plus ``extra`` (config, classes) on rank 0."""
    if not dist_utils.is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({**trainer.state_dict(), **extra}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint of this app; only tensors and primitive containers (weights_only)."""
    return torch.load(path, map_location=map_location, weights_only=True)
