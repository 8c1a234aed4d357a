"""``run_bench``: every requested loader, mixing off and on, measured the same way, in
interleaved rounds."""

from __future__ import annotations

import gc
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .machine import cpu_cores, machine_info
from .measure import measure_stream, merge_rounds
from .model import ModelFactory, model_fields
from .report import add_ratios, format_table, plot_report, write_json
from .streams import (
    LIMIT,
    OURS,
    loader_kwargs,
    make_stream,
    parse_loaders,
    several_clips_rows,
    skip_reason,
)

#: what ``data="bench"`` and ``data="demo"`` read, as the report's tables name them
DATA_LABELS = {
    "bench": "Kinetics-like bench corpus (bench-data: 340x256, 30 fps, 300 frames, keyframe "
    "every 150)",
    "demo": "demo clips (128x96, 48 frames): tiny, not shaped like real datasets",
}


def resolve_data(
    data: str | Path | None, device: str, bench_root: str | Path, demo_root: str | Path
) -> tuple[Path, str]:
    """(folder or index to read, kind): ``None`` or ``"bench"`` is the bench corpus under
    ``bench_root`` and ``"demo"`` the demo train split under ``demo_root`` (each made first
    if absent); anything else is a path of kind ``"custom"`` (``./demo`` for a folder named
    demo)."""
    if data is None or data == "bench":
        from .data import bench_split

        return bench_split(bench_root, device), "bench"
    if data == "demo":
        from ..demo import demo_split

        return demo_split(demo_root, "train", device), "demo"
    return Path(data), "custom"


def run_bench(
    data: str | Path | None = None,
    *,
    recipe: str = "demo",
    device: str = "cpu",
    batch_size: int | None = None,
    frames: int | None = None,
    stride: int | None = None,
    crop: int | None = None,
    mix: str = "spatial",
    duration: float = 20.0,
    warmup: float = 5.0,
    rounds: int = 1,
    loaders: str | Sequence[str] | None = None,
    workers: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    model: str | None = None,
    model_factory: ModelFactory | None = None,
    json_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    demo_root: str | Path = "data/demo",
    bench_root: str | Path = "data/bench",
    clips_per_video: int = 1,
    verbose: bool = True,
) -> dict[str, Any]:
    """Run every loader in ``loaders`` (default: all of :data:`LOADERS`) with mixing off and
    with ``mix`` (skip the mixed rows with ``mix="none"``; the decode-only limit is never
    mixed); return the report (the JSON).

    ``data``: see :func:`resolve_data` (default: the bench corpus). The rows run in
    ``rounds`` interleaved rounds (the command line's default is 3), each measuring every row
    for ``duration / rounds`` seconds after ``warmup`` seconds, so that a change in the
    machine's load hits every row alike.

    ``workers`` (DataLoader workers of the peers) and ``threads`` (DALI threads) default to
    the number of cores. ``model`` (GPU only) also times training steps fed by each loader;
    models other than ``tiny3d`` come from ``model_factory(name, num_classes)``.
    ``clips_per_video`` k > 1 adds rows of ours that take k clips from each decoded video
    (``repeat`` views and windows; ``batch_size`` still counts clips).
    """
    import torch

    from ...loading.videos import VideoLoader
    from ...mix import MODES

    if device not in ("cpu", "gpu"):
        raise ValueError(f"device={device!r} must be 'cpu' or 'gpu'")
    if device == "gpu" and not torch.cuda.is_available():
        raise ValueError("device='gpu' but no CUDA device is visible; use --device cpu")
    if mix not in MODES:
        raise ValueError(f"mix={mix!r} must be one of {', '.join(MODES)}")
    for name, value in (("duration", duration), ("warmup", warmup)):
        if not value >= 0 or not math.isfinite(value):
            raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    if duration <= 0:
        raise ValueError(f"duration={duration!r} must be > 0")
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds={rounds!r} must be an int >= 1")
    if model is not None and device != "gpu":
        raise ValueError("--model times training steps on the GPU; it needs --device gpu")
    names = parse_loaders(loaders)
    cores = cpu_cores()
    data, kind = resolve_data(data, device, bench_root, demo_root)
    cfg: dict[str, Any] = {
        "data": str(data),
        "dataset": kind,
        "data_label": DATA_LABELS.get(kind, str(data)),
        "recipe": recipe,
        "device": device,
        "batch_size": batch_size,
        "frames": frames,
        "stride": stride,
        "crop": crop,
        "seed": seed,
        "workers": workers or cores,
        "threads": threads or cores,
        "several_clips": several_clips_rows(clips_per_video),
    }
    probe = VideoLoader(data, **loader_kwargs(cfg))
    r = probe.recipe
    cfg.update(
        batch_size=r.batch_size,
        frames=r.num_frames,
        stride=r.stride,
        crop=r.crop_size,
        mean=list(r.mean),
        std=list(r.std),
        mix=mix,
        duration_s=duration,
        warmup_s=warmup,
        rounds=rounds,
        loaders=names,
        videos=len(probe.entries),
        classes=probe.num_classes,
        model=model,
        baseline_mix=(
            "none"
            if mix == "none"
            else "library op (perframe)"
            if mix == "perframe"
            else "timm_style_mix in the training loop"
        ),
    )
    host_decoded = probe.plan.host_decoded  # codecs DALI's CPU decoder lacks: PyAV decodes them
    del probe
    mixes = [None] if mix == "none" else [None, mix]
    report: dict[str, Any] = {
        "machine": machine_info(),
        "config": cfg,
        "results": [],
        "skipped": [],
    }
    gpu = device == "gpu"
    rows = []
    for name in names:
        reason = skip_reason(name, device)
        if name == "dali-reader" and host_decoded:
            reason = "DALI's CPU video reader decodes VP8, VP9 and MJPEG only"
        if reason is not None:
            report["skipped"].append({"loader": name, "reason": reason})
            if verbose:
                print(f"skip {name}: {reason}", flush=True)
            continue
        rows += [(name, mode) for mode in ([None] if name == LIMIT else mixes)]
        if name == OURS:  # then the same loader taking k clips per decoded video
            rows += [(variant, mode) for variant in cfg["several_clips"] for mode in mixes]
    parts: dict[tuple[str, str | None], list[dict[str, Any]]] = {row: [] for row in rows}
    for r_idx in range(rounds):
        for name, mode in rows:
            if verbose:
                print(f"round {r_idx + 1}/{rounds}: {name} mix={mode or 'none'} ...", flush=True)
            make = partial(make_stream, name, data, cfg, mode)
            parts[name, mode].append(
                measure_stream(
                    make,
                    warmup=warmup,
                    duration=duration / rounds,
                    num_frames=cfg["frames"],
                    gpu=gpu,
                )
            )
            gc.collect()
    for name, mode in rows:
        row = {"loader": name, "device": device, "mix": mode or "none"}
        row.update(merge_rounds(parts[name, mode]))
        if model is not None and name != LIMIT:
            make = partial(make_stream, name, data, cfg, mode)
            row.update(model_fields(model, make, cfg, warmup, duration, model_factory))
        report["results"].append(row)
    add_ratios(report)
    if verbose:
        print(format_table(report), flush=True)
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None:
        plot_report(report, plot_path)
    return report
