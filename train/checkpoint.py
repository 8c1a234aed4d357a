"""Checkpoints that resume a run exactly, and the run's devices."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from . import distributed as dist_utils
from .trainer import Trainer

__all__ = ["device_of", "load_checkpoint", "save_checkpoint"]


def device_of(name: str) -> tuple[str, torch.device]:
    """(loader device 'cpu'/'gpu', torch device for the model)."""
    if name == "auto":
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("--device gpu but no CUDA device is visible; use --device cpu")
        return "gpu", torch.device("cuda", torch.cuda.current_device())
    if name != "cpu":
        raise SystemExit(f"--device {name!r} must be cpu, gpu or auto")
    return "cpu", torch.device("cpu")


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
