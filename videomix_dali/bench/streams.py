"""The loaders the bench compares, by name, each as an endless stream of (video, target)
batches built from the same ``VideoLoader`` settings (``cfg``)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .peers import PeerClipDataset, SamplerBatches, decode_decord, decode_pyav, decode_torchcodec
from .timm_mix import timm_style_mix

BASELINE = "pyav"
OURS = "videomix-dali"
#: every loader ``--loaders`` accepts, in the order they run (fork-based DataLoaders first, so
#: their workers are forked before any DALI thread pool exists in this process)
LOADERS = ("pyav", "torchcodec", "torchcodec-cuda", "decord", OURS)


def parse_loaders(loaders: str | Sequence[str] | None) -> list[str]:
    """The requested loader names (comma-separated or a sequence; None: all), in run order."""
    if loaders is None:
        return list(LOADERS)
    names = [n.strip() for n in loaders.split(",")] if isinstance(loaders, str) else loaders
    names = [n for n in names if n]
    unknown = [n for n in names if n not in LOADERS]
    if unknown or not names:
        raise ValueError(f"loaders={','.join(names)!r}: each must be one of {', '.join(LOADERS)}")
    return [n for n in LOADERS if n in names]


def skip_reason(name: str, device: str) -> str | None:
    """Why peer ``name`` cannot run here (None: it can)."""
    import torch

    module = {"torchcodec": "torchcodec", "torchcodec-cuda": "torchcodec", "decord": "decord"}
    if name in module:
        try:
            importlib.import_module(module[name])
        except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
            return f"{module[name]} is not importable ({type(exc).__name__}: {exc})"
    if name == "torchcodec-cuda":
        if device != "gpu":
            return "CUDA decode needs --device gpu"
        if not torch.cuda.is_available():
            return "no CUDA device"
    return None


def loader_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """``VideoLoader`` keyword arguments for the bench configuration ``cfg``."""
    return {
        "recipe": cfg["recipe"],
        "device": cfg["device"],
        "batch_size": cfg["batch_size"],
        "num_frames": cfg["frames"],
        "stride": cfg["stride"],
        "crop_size": cfg["crop"],
        "seed": cfg["seed"],
        "train": True,
        "num_threads": cfg["threads"],
        "progress": False,
    }


def make_stream(
    name: str, data: str | Path, cfg: dict[str, Any], mix_mode: str | None
) -> Iterator[tuple[Any, Any]]:
    """A fresh stream of loader ``name`` over ``data``, mixed with ``mix_mode`` (None: not)."""
    from ..loader import VideoLoader
    from ..mix import VideoMix

    if name == OURS:
        mix = VideoMix(mix_mode, seed=cfg["seed"]) if mix_mode is not None else None
        return _dali_stream(VideoLoader(data, mix=mix, **loader_kwargs(cfg)))
    return _peer_stream(name, VideoLoader(data, **loader_kwargs(cfg)), cfg, mix_mode)


def _dali_stream(loader: Any) -> Iterator[tuple[Any, Any]]:
    while True:
        yield from loader


def _peer_stream(
    name: str, loader: Any, cfg: dict[str, Any], mix_mode: str | None
) -> Iterator[tuple[Any, Any]]:
    """Batches of peer ``name`` (mixed in the training loop when ``mix_mode``)."""
    import torch
    from torch.utils.data import DataLoader

    from ..mix import VideoMix

    device = cfg["device"]
    if name == "pyav":
        decoder, workers = decode_pyav, cfg["workers"]
    elif name == "torchcodec":
        decoder, workers = decode_torchcodec("cpu"), cfg["workers"]
    elif name == "torchcodec-cuda":  # CUDA in the main process (forked workers cannot use it)
        decoder, workers = decode_torchcodec("cuda"), 0
    elif name == "decord":
        decoder, workers = decode_decord, cfg["workers"]
    else:
        raise ValueError(f"unknown loader {name!r}")
    dataset = PeerClipDataset.from_loader(loader, decoder)
    data = DataLoader(
        dataset,
        batch_sampler=SamplerBatches(loader.sampler),
        num_workers=workers,
        pin_memory=device == "gpu" and workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )
    rng = np.random.default_rng(cfg["seed"])
    library_mix = VideoMix(mix_mode, seed=cfg["seed"]) if mix_mode == "perframe" else None
    num_classes = loader.num_classes
    for video, label in data:
        if device == "gpu":
            video = video.to("cuda", non_blocking=True)
            label = label.to("cuda", non_blocking=True)
        if mix_mode is None:
            yield video, label
        elif library_mix is not None:  # perframe is not written timm-style: library op
            video, soft = library_mix(video, label.cpu().numpy())
            yield video, torch.as_tensor(soft)
        else:
            yield timm_style_mix(video, label, num_classes, mix_mode, rng=rng)
