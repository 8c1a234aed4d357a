"""One result row: pull batches from a stream for a warm-up, then for a fixed duration, and
report throughput, batch times, CPU utilisation and peak memory of the process tree."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .machine import cpu_cores
from .procstats import ProcessTreeMonitor, tree_cpu_seconds

#: the fields every row of a report's ``results`` has
RESULT_FIELDS = (
    "loader",
    "device",
    "mix",
    "clips_per_s",
    "frames_per_s",
    "batch_ms_p50",
    "batch_ms_p95",
    "cpu_util",
    "peak_rss_mb",
    "gpu_mem_mb",
)


def _percentile_ms(times: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(times) * 1000.0, q)), 2)


def measure_stream(
    make_stream: Callable[[], Iterator[tuple[Any, Any]]],
    *,
    warmup: float,
    duration: float,
    num_frames: int,
    gpu: bool,
) -> dict[str, Any]:
    """Pull batches: ``warmup`` seconds (at least one batch), then ``duration`` seconds (at
    least two batches) measured. The monitor covers building the loader and the warm-up.

    Also returns ``batch_s``, every measured batch time in seconds, for :func:`merge_rounds`.
    """
    import torch

    cores = cpu_cores()
    monitor = ProcessTreeMonitor(gpu=gpu).start()
    stream = make_stream()
    try:
        sync = torch.cuda.synchronize if gpu else (lambda: None)
        t_warm = time.perf_counter()
        while True:
            next(stream)
            sync()
            if time.perf_counter() - t_warm >= warmup:
                break
        cpu0 = tree_cpu_seconds()
        t0 = last = time.perf_counter()
        times: list[float] = []
        clips = 0
        while True:
            video, _target = next(stream)
            sync()
            now = time.perf_counter()
            times.append(now - last)
            last = now
            clips += int(video.shape[0])
            if now - t0 >= duration and len(times) >= 2:
                break
        wall = last - t0
        cpu1 = tree_cpu_seconds()
        shape = tuple(video.shape)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        del stream
        gc.collect()
        monitor.stop()
    gpu_mem_mb = monitor.gpu_mem_mb if gpu else None
    return {
        "clips_per_s": round(clips / wall, 2),
        "frames_per_s": round(clips * num_frames / wall, 1),
        "batch_ms_p50": _percentile_ms(times, 50),
        "batch_ms_p95": _percentile_ms(times, 95),
        "cpu_util": round((cpu1 - cpu0) / wall / cores, 3),
        "peak_rss_mb": round(monitor.peak_rss_mb, 1),
        "peak_pss_mb": round(monitor.peak_pss_mb, 1),
        "gpu_mem_mb": None if gpu_mem_mb is None else round(gpu_mem_mb, 1),
        "batches": len(times),
        "clips": clips,
        "wall_s": round(wall, 3),
        "batch_shape": list(shape),
        "batch_s": times,
    }


def merge_rounds(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row from the :func:`measure_stream` results of the same row in several rounds:
    throughput over all clips and wall seconds, batch-time percentiles over all batches, CPU
    utilisation weighted by wall time, the peak memories; ``rounds_clips_per_s`` lists each
    round's clips/s (their spread shows how steady the machine was)."""
    wall = sum(p["wall_s"] for p in parts)
    clips = sum(p["clips"] for p in parts)
    times = [t for p in parts for t in p["batch_s"]]
    gpu = [p["gpu_mem_mb"] for p in parts if p["gpu_mem_mb"] is not None]
    return {
        "clips_per_s": round(clips / wall, 2),
        "frames_per_s": round(sum(p["frames_per_s"] * p["wall_s"] for p in parts) / wall, 1),
        "batch_ms_p50": _percentile_ms(times, 50),
        "batch_ms_p95": _percentile_ms(times, 95),
        "cpu_util": round(sum(p["cpu_util"] * p["wall_s"] for p in parts) / wall, 3),
        "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
        "peak_pss_mb": max(p["peak_pss_mb"] for p in parts),
        "gpu_mem_mb": max(gpu) if gpu else None,
        "batches": len(times),
        "clips": clips,
        "wall_s": round(wall, 3),
        "batch_shape": parts[0]["batch_shape"],
        "rounds_clips_per_s": [p["clips_per_s"] for p in parts],
    }
