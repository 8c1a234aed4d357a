"""Checkpoints that resume a run exactly, and the run's devices."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from videomix_dali.runtime import resolve_device

from . import distributed as dist_utils
from .trainer import Trainer

__all__ = ["InitReport", "device_of", "init_from", "load_checkpoint", "save_checkpoint"]


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


@dataclass
class InitReport:
    """What ``init_from`` did with each tensor."""

    loaded: list[str]  # copied from the checkpoint
    skipped: dict[str, str]  # checkpoint tensor -> why it was not copied
    missing: list[str]  # model tensors the checkpoint lacks (left as initialised)

    def reinitialised(self) -> list[str]:
        """Model tensors that keep their fresh init (a new classifier, say)."""
        return [n for n, why in self.skipped.items() if why.startswith("shape")] + self.missing

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        lines += [f"skipped {name}: {why}" for name, why in self.skipped.items()]
        lines += [f"missing {name}: left as initialised" for name in self.missing]
        return "\n".join(lines)


def init_from(model: torch.nn.Module, path: str | Path) -> InitReport:
    """Copy the weights of a checkpoint (this app's, or a plain state dict) into ``model``
    where name and shape agree (``weights_only=True``). A classifier for another class count
    has another shape: it is skipped, so the model keeps its freshly initialised one."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights = state["model"] if isinstance(state.get("model"), dict) else state
    own = model.state_dict()
    loaded, skipped = [], {}
    for name, tensor in weights.items():
        if name not in own:
            skipped[name] = "not in the model"
        elif own[name].shape != tensor.shape:
            skipped[name] = (
                f"shape {tuple(tensor.shape)} in the checkpoint, {tuple(own[name].shape)} in "
                "the model: re-initialised"
            )
        else:
            loaded.append(name)
    model.load_state_dict({n: weights[n] for n in loaded}, strict=False)
    return InitReport(loaded, skipped, [n for n in own if n not in weights])
