"""``--op``: the mixing op alone against a plain copy of the same bytes (the memory-bound lower
bound), on the CPU and, with CuPy, on the GPU where there is one."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...mix import MODES, VideoMix, apply_mix, mix_normalize_batch
from .report import write_json


def _time_cpu(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000.0


def _time_gpu(fn: Callable[[], Any], repeats: int) -> float:
    import cupy

    fn()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return float(np.median(times))


def _plain_normalize(xp: Any, frames: list, out: Any, m: Any, inv: Any) -> Any:
    """Normalise + transpose (T, H, W, C) uint8 clips into ``out`` (N, C, T, H, W) float32."""
    for n, f in enumerate(frames):
        xp.subtract(f.transpose(3, 0, 1, 2), m, out=out[n], dtype=xp.float32)
        xp.multiply(out[n], inv, out=out[n])
    return out


def _op_times(
    xp: Any,
    timer: Callable[[Callable[[], Any], int], float],
    x: Any,
    frames: list,
    params: Any,
    mean: Sequence[float],
    std: Sequence[float],
    repeats: int,
) -> dict[str, float]:
    """Median ms of each op on one backend: ``xp`` NumPy or CuPy, ``x`` (N, C, T, H, W)
    float32 and ``frames`` N (T, H, W, C) uint8 clips on it, ``timer`` its clock."""
    C = x.shape[1]
    m = xp.asarray(np.asarray(mean, np.float32).reshape(C, 1, 1, 1))
    inv = xp.asarray((1.0 / np.asarray(std, np.float32)).reshape(C, 1, 1, 1))
    out = xp.empty(x.shape, xp.float32)
    dst = xp.empty_like(x)
    return {
        "copy_ms": timer(lambda: xp.copyto(dst, x), repeats),
        "copy_new_ms": timer(lambda: x.copy(), repeats),
        "apply_mix_ms": timer(lambda: apply_mix(x, params), repeats),
        "mix_normalize_ms": timer(
            lambda: mix_normalize_batch(frames, params, mean, std, out=out), repeats
        ),
        "normalize_ms": timer(lambda: _plain_normalize(xp, frames, out, m, inv), repeats),
    }


def _gpu_skip_reason() -> str | None:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as exc:  # noqa: BLE001 - no CuPy or no driver: no GPU figures
        return f"no CUDA device for CuPy ({type(exc).__name__})"
    return None


def run_op_bench(
    shape: Sequence[int] = (8, 3, 8, 112, 112),
    *,
    mode: str = "spatial",
    repeats: int = 20,
    seed: int = 0,
    mean: Sequence[float] = (114.75, 114.75, 114.75),
    std: Sequence[float] = (57.375, 57.375, 57.375),
    gpu: bool | None = None,
    json_path: str | Path | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Time the mix op against a plain copy of the same bytes, per backend (median ms):

    * ``copy``: ``np.copyto`` of the (N, C, T, H, W) float32 batch (the lower bound);
    * ``apply_mix``: ``videomix_dali.mix.apply_mix`` on that batch (returns a new array);
    * ``mix_normalize``: the pipeline's fused ``mix_normalize_batch(frames, params, mean,
      std)`` on the N (T, H, W, C) uint8 clips, into a preallocated output;
    * ``normalize``: a plain normalise + transpose of the same uint8 clips into the same
      output (what the pipeline's step would cost without the paste).

    ``gpu``: None = where CuPy sees a device; the GPU figures use CUDA events.
    """
    if len(shape) != 5 or min(shape) < 1:
        raise ValueError(f"shape={tuple(shape)!r} must be 5 positive sizes (N, C, T, H, W)")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be one of {', '.join(MODES)}")
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    N, C, T, H, W = (int(v) for v in shape)
    rng = np.random.default_rng(seed)
    x = rng.random((N, C, T, H, W), dtype=np.float32)
    frames = [rng.integers(0, 256, (T, H, W, C), dtype=np.uint8) for _ in range(N)]
    params = VideoMix(mode, seed=seed).sample((N, C, T, H, W), step=0)
    report: dict[str, Any] = {
        "shape": [N, C, T, H, W],
        "mode": mode,
        "repeats": repeats,
        "batch_mb": round(x.nbytes / 2**20, 2),
    }
    report["cpu"] = _op_ratios(_op_times(np, _time_cpu, x, frames, params, mean, std, repeats))
    reason = _gpu_skip_reason() if gpu is not False else "not requested"
    if gpu and reason is not None:
        raise ValueError(f"gpu=True but {reason}")
    if reason is None:
        import cupy

        fg = [cupy.asarray(f) for f in frames]
        gpu_times = _op_times(cupy, _time_gpu, cupy.asarray(x), fg, params, mean, std, repeats)
        report["gpu"] = _op_ratios(gpu_times)
    else:
        report["gpu"] = None
        report["gpu_skipped"] = reason
    if verbose:
        print(format_op_table(report), flush=True)
    if json_path is not None:
        write_json(report, json_path)
    return report


def _op_ratios(t: dict[str, float]) -> dict[str, float]:
    t = {k: round(v, 4) for k, v in t.items()}
    t["apply_mix_vs_copy"] = round(t["apply_mix_ms"] / t["copy_ms"], 3)
    t["apply_mix_vs_copy_new"] = round(t["apply_mix_ms"] / t["copy_new_ms"], 3)
    t["mix_normalize_vs_normalize"] = round(t["mix_normalize_ms"] / t["normalize_ms"], 3)
    return t


def format_op_table(report: dict[str, Any]) -> str:
    lines = [
        f"mix op {report['mode']!r} on {tuple(report['shape'])} float32 "
        f"({report['batch_mb']} MB), median of {report['repeats']}",
        f"{'backend':<8}{'copy':>9}{'copy(new)':>11}{'apply_mix':>11}{'x copy':>8}"
        f"{'mix+norm':>10}{'norm':>9}{'x norm':>8}   (ms)",
    ]
    for backend in ("cpu", "gpu"):
        t = report.get(backend)
        if t is None:
            lines.append(f"{backend:<8}skipped: {report.get('gpu_skipped')}")
            continue
        lines.append(
            f"{backend:<8}{t['copy_ms']:>9.3f}{t['copy_new_ms']:>11.3f}{t['apply_mix_ms']:>11.3f}"
            f"{t['apply_mix_vs_copy']:>8.2f}{t['mix_normalize_ms']:>10.3f}"
            f"{t['normalize_ms']:>9.3f}{t['mix_normalize_vs_normalize']:>8.2f}"
        )
    return "\n".join(lines)
