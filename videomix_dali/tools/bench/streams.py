"""The loaders the bench compares, by name, each as an endless stream of (video, target)
batches built from the same ``VideoLoader`` settings (``cfg``)."""

from __future__ import annotations

import gc
import importlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...recipes import REPEATS
from .peers import (
    PeerClipDataset,
    SamplerBatches,
    decode_decord,
    decode_only,
    decode_pyav,
    decode_torchcodec,
)
from .timm_mix import timm_style_mix

BASELINE = "pyav"
OURS = "videomix-dali"
#: the decode-only limit: PyAV decodes each clip's frames (from the keyframe at or before it)
#: and nothing else, in a process per core; clips/s, no batch of pixels
LIMIT = "decode-limit"
DALI_READER = "dali-reader"
#: every loader ``--loaders`` accepts, in the order they run in each round (forking ones first)
LOADERS = (LIMIT, "pyav", "torchcodec", "torchcodec-cuda", "decord", DALI_READER, OURS)


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

    if name == LIMIT and device != "cpu":
        return "the PyAV decode-only limit bounds CPU decoding; run it with --device cpu"
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


def several_clips_rows(clips_per_video: int) -> dict[str, dict[str, Any]]:
    """Rows of ours with ``clips_per_video`` clips per decoded video (none for 1): their names
    and ``VideoLoader`` keyword arguments, one per ``repeat``."""
    if clips_per_video == 1:
        return {}
    return {
        f"{OURS} k={clips_per_video} {repeat}": {
            "clips_per_video": clips_per_video,
            "repeat": repeat,
        }
        for repeat in REPEATS
    }


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
    """A fresh stream of loader ``name`` over ``data``, mixed with ``mix_mode`` (None: not).

    The :data:`LIMIT` stream yields (frames decoded per clip (N,) int, None): clips, no pixels.
    """
    from ...loading.videos import VideoLoader
    from ...mix import VideoMix

    if name == OURS or name in cfg["several_clips"]:
        mix = VideoMix(mix_mode, seed=cfg["seed"]) if mix_mode is not None else None
        kwargs = {**loader_kwargs(cfg), **cfg["several_clips"].get(name, {})}
        return _dali_stream(VideoLoader(data, mix=mix, **kwargs))
    loader = VideoLoader(data, **loader_kwargs(cfg))
    if name == LIMIT:
        return _limit_stream(loader, cfg["workers"])
    if name == DALI_READER:
        from .dali_reader import dali_reader_batches

        return _mixed_in_loop(dali_reader_batches(loader, cfg), loader, cfg, mix_mode)
    return _peer_stream(name, loader, cfg, mix_mode)


def _dali_stream(loader: Any) -> Iterator[tuple[Any, Any]]:
    while True:
        yield from loader


def _limit_stream(loader: Any, workers: int) -> Iterator[tuple[np.ndarray, None]]:
    """The decode-only limit over the sampler's clips: :func:`decode_only` per batch in a pool
    of ``workers`` processes, ``2 * workers`` batches in flight."""
    from concurrent.futures import ProcessPoolExecutor

    def jobs(clips: list[Any]) -> list[tuple[str, int, int]]:
        path = [str(loader.entries[c.item].path) for c in clips]
        return [(p, int(c.frames.min()), int(c.frames.max())) for p, c in zip(path, clips)]

    batches = iter(SamplerBatches(loader.sampler))
    gc.collect()  # forked workers must not inherit DALI pipelines waiting for the collector
    pool = ProcessPoolExecutor(workers)
    try:
        pending = deque(pool.submit(decode_only, jobs(next(batches))) for _ in range(2 * workers))
        while True:
            counts = pending.popleft().result()
            pending.append(pool.submit(decode_only, jobs(next(batches))))
            yield np.asarray(counts), None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _peer_stream(
    name: str, loader: Any, cfg: dict[str, Any], mix_mode: str | None
) -> Iterator[tuple[Any, Any]]:
    """Batches of peer ``name`` (mixed in the training loop when ``mix_mode``)."""
    from torch.utils.data import DataLoader

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
    gc.collect()  # forked workers must not inherit DALI pipelines waiting for the collector
    data = DataLoader(
        dataset,
        batch_sampler=SamplerBatches(loader.sampler),
        num_workers=workers,
        pin_memory=device == "gpu" and workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )
    return _mixed_in_loop(data, loader, cfg, mix_mode)


def _mixed_in_loop(
    batches: Iterable[tuple[Any, Any]], loader: Any, cfg: dict[str, Any], mix_mode: str | None
) -> Iterator[tuple[Any, Any]]:
    """``batches`` on the bench's device, mixed in the training loop when ``mix_mode``:
    :func:`timm_style_mix`, or the library op for ``perframe``."""
    import torch

    from ...mix import VideoMix

    device = cfg["device"]
    rng = np.random.default_rng(cfg["seed"])
    library_mix = VideoMix(mix_mode, seed=cfg["seed"]) if mix_mode == "perframe" else None
    num_classes = loader.num_classes
    for video, label in batches:
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
