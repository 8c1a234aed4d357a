"""The one DALI graph: decode -> crop/flip/resize -> (mix) -> normalize -> NCTHW.

The CPU and GPU pipelines are the same graph with a different ``device``; the CPU one is what
the tests exercise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.pipeline import Pipeline

from .mix import MixParams, VideoMix, mix_labels, mix_normalize_batch

DTYPES = {"float32": types.FLOAT, "float16": types.FLOAT16}

# What the host-side source yields per batch, in this order (one array per sample each);
# with mixing, one more: the batch's packed MixParams rows.
SOURCE_OUTPUTS = ("encoded", "frames", "roi_start", "roi_end", "label", "index")


def mix_step(
    mix: VideoMix,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: str,
) -> Callable[[list, list, list], tuple[list, list]]:
    """The batch function of the in-graph mixing step (``fn.python_function``).

    Gets per-sample lists (NumPy on CPU, CuPy on GPU): clips (T, H, W, C) uint8, labels and
    packed params rows; returns per-sample normalized (C, T, H, W) clips and soft targets (K,).
    """

    def step(frames: list, labels: list, rows: list) -> tuple[list, list]:
        t, h, w, c = frames[0].shape
        params = MixParams.unpack(
            [_host(r) for r in rows], mode=mix.mode, shape=(len(frames), c, t, h, w)
        )
        video = mix_normalize_batch(frames, params, mean, std, dtype=dtype)
        xp = np if isinstance(video, np.ndarray) else _cupy()
        y = xp.stack([xp.asarray(v).reshape(()) for v in labels])
        target = mix_labels(y, params, num_classes, mix.label_smoothing)
        return list(video), list(target)

    return step


def _host(row: Any) -> np.ndarray:
    return row if isinstance(row, np.ndarray) else row.get()


def _cupy():
    import cupy

    return cupy


def build_pipeline(
    source: Callable[[], Sequence[list[np.ndarray]]],
    *,
    device: str,
    batch_size: int,
    crop_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: str = "float32",
    num_threads: int = 2,
    prefetch: int = 2,
    device_id: int | None = None,
    seed: int = 0,
    mix: VideoMix | None = None,
    num_classes: int | None = None,
) -> Pipeline:
    """Build (and return, built) the video pipeline.

    ``source()`` returns the next batch as lists of per-sample arrays named by
    ``SOURCE_OUTPUTS``: encoded file bytes (uint8), frame indices (T,) int32, ROI start and
    end (y, x) float32 in input pixels (x reversed for a flip), label int64 and dataset index
    int64. Outputs: video (N, C, T, crop, crop) ``dtype`` normalized with ``mean``/``std``
    (0..255 units), label (N,) int64, index (N,) int64. With ``mix`` the source also yields
    packed ``MixParams`` rows, the batch is mixed after the crop, and the label output is the
    soft target (N, ``num_classes``) float32.
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device={device!r} must be 'cpu' or 'gpu'")
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} must be one of {', '.join(DTYPES)}")
    decoder_device = "mixed" if device == "gpu" else "cpu"

    @pipeline_def(
        batch_size=batch_size,
        num_threads=num_threads,
        device_id=device_id if device == "gpu" else None,
        prefetch_queue_depth=prefetch,
        seed=seed,
        exec_dynamic=True,
    )
    def video_pipeline():
        encoded, frames, roi_start, roi_end, label, index, *rows = fn.external_source(
            source=source, num_outputs=len(SOURCE_OUTPUTS) + (mix is not None), batch=True
        )
        video = fn.decoders.video(encoded, device=decoder_device, frames=frames)
        video = fn.resize(
            video,
            device=device,
            roi_start=roi_start,
            roi_end=roi_end,
            roi_relative=False,
            size=[crop_size, crop_size],
        )
        if mix is not None:  # the whole batch, after the crop, (T, H, W, C) uint8
            if device == "gpu":
                label, rows = label.gpu(), [rows[0].gpu()]
            video, label = fn.python_function(
                video,
                label,
                rows[0],
                function=mix_step(mix, num_classes, mean, std, dtype),
                batch_processing=True,
                num_outputs=2,
                device=device,
            )
            return video, label, index
        video = fn.crop_mirror_normalize(
            video,
            device=device,
            dtype=DTYPES[dtype],
            output_layout="CFHW",
            mean=list(mean),
            std=list(std),
        )
        return video, label, index

    pipe = video_pipeline()
    pipe.build()
    return pipe
