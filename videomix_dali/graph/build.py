"""The DALI graphs: videos (decode -> crop/flip/resize -> (mix) -> normalize -> NCTHW) and
feature sequences (host rows -> (mix)), sharing one in-graph mix step.

The CPU and GPU pipelines are one graph with a different ``device``; the CPU one is what the
tests exercise. Only the steps after decoding differ in how, not in what: on the CPU our
plugin (:mod:`~videomix_dali.graph.cpu_plugin`) crops/resizes and, unmixed or for the paste
modes, also mixes and normalises in that pass (mixup and cutout: DALI's operators); on the GPU
``fn.resize``, then the CuPy mix kernel or ``crop_mirror_normalize``. Each equals the NumPy
twin applied to the resized clips.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.data_node import DataNode
from nvidia.dali.pipeline import Pipeline

from ..checks import checked_choice
from ..mix import MixParams, VideoMix, apply_mix
from ..source.host_decode import HostDecodeError, decode_clip
from ..source.verify import decoder_message
from .cpu_plugin import crop_resize
from .ops import apply_dali, normalize
from .plan import GraphPlan
from .randaugment import apply_randaugment

DTYPES = {"float32": types.FLOAT, "float16": types.FLOAT16}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
#: A frame index past the decoded bytes is an error, never a black frame: the loader's clips
#: only ask for frames the probe counted, so one past the end means the probe and the file
#: disagree (the file then fails alone and is skipped with DALI's message).
NO_PAD = "none"

# What the feature-sequence source yields per batch, in this order (with mixing, the packed
# MixParams follow).
FEATURE_SOURCE_OUTPUTS = ("features", "target", "index", "length")


def mix_step(
    mode: str,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dtype: str = "float32",
) -> Callable[[list, list, list], list]:
    """The batch function of the in-graph mixing step (``fn.python_function``).

    Gets per-sample lists: GPU clips (T, H, W, C) uint8 (CuPy) and the packed params rows
    (R,) int32 and coef (K,) float64 of :meth:`MixParams.pack`. Returns per-sample normalized
    (C, T, H, W) ``dtype`` clips (with ``mean``/``std``, 0..255 units). The packed params go
    to the kernel as they arrive (stacked on the device, no host round trip); CPU clips are
    mixed by DALI's own operators instead (``apply_dali``), feature sequences and a
    MixStack's later stages by :func:`_apply_packed`.
    """

    def step(frames: list, rows: list, coef: list) -> list:
        import cupy

        from ..mix.apply_cupy import mix_normalize_packed_cupy

        video = mix_normalize_packed_cupy(
            frames, cupy.stack(rows), cupy.stack(coef), mode, mean, std, dtype=dtype
        )
        return list(video)

    return step


def _mix_samples(feats: list, rows: list, coef: list, mode: str) -> Any:
    """The N samples (feature sequences (T, D), or normalised clips (C, T, H, W)) stacked and
    mixed with the packed params (NumPy or CuPy, as they arrive)."""
    if isinstance(feats[0], np.ndarray):
        x = np.stack(feats)
        return apply_mix(x, MixParams.unpack(rows, coef, mode=mode, shape=tuple(x.shape)))
    import cupy

    from ..mix.apply_cupy import apply_packed_cupy

    return apply_packed_cupy(cupy.stack(feats), cupy.stack(rows), cupy.stack(coef), mode)


def _pipeline_def(
    batch_size, num_threads, prefetch, device, device_id, seed, conditionals=False
) -> Callable:
    """``pipeline_def`` with the settings both graphs share (dynamic executor: zero-copy);
    ``conditionals`` for per-sample branches (RandAugment's choice of operation, the one
    decode a run of a video's clips shares)."""
    return pipeline_def(
        batch_size=batch_size,
        num_threads=num_threads,
        device_id=device_id if device == "gpu" else None,
        prefetch_queue_depth=prefetch,
        seed=seed,
        exec_dynamic=True,
        enable_conditionals=conditionals,
    )


def build_pipeline(
    source: Callable[[], Sequence[list[np.ndarray]]],
    plan: GraphPlan,
    *,
    batch_size: int,
    num_frames: int,
    crop_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: str = "float32",
    num_threads: int = 2,
    prefetch: int = 2,
    device_id: int | None = None,
    seed: int = 0,
) -> Pipeline:
    """Build (and return, built) the video pipeline of ``plan`` for batches of ``batch_size``
    clips of ``num_frames`` frames.

    ``source()`` returns the next batch as lists of per-sample arrays named by
    ``plan.source_outputs``: encoded file bytes (uint8) or, where ``plan.host_decoded``, the
    clip's decoded frames (T, H, W, 3) uint8 (:mod:`videomix_dali.source.host_decode`); frame
    indices (F,) int32, distinct and ascending; ROI start and end (y, x) float32 in input pixels (x
    reversed for a flip); label int64 and dataset index int64; where ``plan.shares_decodes``,
    whether the sample decodes (bool) and the batch position of the sample whose decode it
    takes (int32); where ``plan.picks_frames``, the clip's frames (T,) int32 as positions in
    the decoded ones. Outputs: video (N, C, T, crop, crop) ``dtype``
    normalized with ``mean``/``std`` (0..255 units), label (N,) int64, index (N,) int64; on the
    GPU the video and the label on the device, the index on the host. Where ``plan.mix_mode``
    is set, the source also yields the batch's ``plan.encode_mix`` arrays and, as the label,
    the soft target (K,) float32 it computed on the host from the same params; the batch is
    mixed after the crop (CPU: the paste modes while resizing, in the plugin of
    :mod:`~videomix_dali.graph.cpu_plugin`, mixup and cutout by DALI's own operators; GPU: the
    CuPy kernel, fused with normalising).
    """
    checked_choice("dtype", dtype, DTYPES)
    device, names = plan.device, plan.source_outputs
    pipe_batch = plan.pipeline_batch_size(batch_size, num_frames)

    @_pipeline_def(pipe_batch, num_threads, prefetch, device, device_id, seed, plan.conditionals)
    def video_pipeline():
        outputs = fn.external_source(
            source=source, num_outputs=len(names) + plan.num_mix_inputs, batch=True
        )
        given, rows = dict(zip(names, outputs)), outputs[len(names) :]
        rows, later = rows[: plan.num_first_mix_inputs], rows[plan.num_first_mix_inputs :]
        roi_start, roi_end, label, index = (
            given[n] for n in ("roi_start", "roi_end", "label", "index")
        )
        if plan.host_decoded:  # the frames, decoded by the source
            video = fn.reshape(given["encoded"], layout="FHWC")
        else:
            video = _decoded(given, plan)
        if device == "gpu":  # the target lives where the video does; the index on the host
            label = label.gpu()
        size, norm = (crop_size, crop_size), (mean, std, DTYPES[dtype])
        video = _first_stages(video, roi_start, roi_end, rows, given, plan, size, norm)
        for mode, (r, c) in zip(plan.then_modes, zip(later[::2], later[1::2])):
            if device == "gpu":
                r, c = r.gpu(), c.gpu()
            video = fn.python_function(
                video,
                r,
                c,
                function=functools.partial(_apply_packed, mode=mode),
                batch_processing=True,
                num_outputs=1,
                device=device,
            )
        return video, label, index

    pipe = video_pipeline()
    pipe.build()
    return pipe


#: What a sample that does not decode (it takes its run's decode) gives the decoder's branch.
PLACEHOLDER = np.zeros(3, np.uint8)


def _decoded(given: dict[str, DataNode], plan: GraphPlan) -> DataNode:
    """Each clip's frames (F, H, W, C) uint8, decoded from its ``encoded`` bytes: the
    ``frames`` (distinct, ascending) of the sample that decodes its run, then (``picks_frames``)
    the clip's own ``order`` of them."""
    decoder = "mixed" if plan.device == "gpu" else "cpu"

    def decode() -> DataNode:
        return fn.decoders.video(
            given["encoded"], device=decoder, frames=given["frames"], pad_mode=NO_PAD
        )

    if plan.shares_decodes:
        if given["decodes"]:
            video = decode()
        else:  # PLACEHOLDER's 3 bytes as one 1x1 frame, replaced below
            video = fn.reshape(given["encoded"], shape=[1, 1, 1, 3], layout="FHWC")
            video = video.gpu() if plan.device == "gpu" else video
        video = fn.permute_batch(video, indices=given["leader"])
    else:
        video = decode()
    if plan.picks_frames:
        video = fn.sequence_rearrange(video, new_order=given["order"])
    return video


def _first_stages(video, roi_start, roi_end, rows, given, plan, size, norm) -> DataNode:
    """Crop/flip/resize, RandAugment, the first mixing stage and normalising: (N,) clips
    (C, T, H, W) normalised ``norm[2]`` (see :func:`build_pipeline`)."""
    device, mean, std, dtype = plan.device, *norm
    one_pass = plan.mix_mode is None or plan.pastes_while_resizing
    if one_pass and plan.randaugment is None:  # one pass on the CPU
        pastes = rows if plan.pastes_while_resizing else ()
        return crop_resize(video, roi_start, roi_end, size, device, plan.plugin, pastes, norm)
    video = crop_resize(video, roi_start, roi_end, size, device, plan.plugin)
    if plan.randaugment is not None:  # after the crop, before mixing and normalising
        video = apply_randaugment(video, given["augment"], *plan.randaugment, size)
    if plan.mix_mode is None:
        return normalize(video, device, *norm)
    if plan.mixes_with_dali_ops:  # mixup, cutout (pastes without the plugin)
        return apply_dali(video, rows, plan.mix_mode, mean, std, dtype)
    return fn.python_function(  # the whole batch, after the crop, (T, H, W, C) uint8
        video,
        *(r.gpu() for r in rows),
        function=mix_step(plan.mix_mode, mean, std, _DTYPE_NAMES[dtype]),
        batch_processing=True,
        num_outputs=1,
        device=device,
    )


def _apply_packed(samples: list, rows: list, coef: list, mode: str) -> list:
    """Feature sequences, or a MixStack's later stage on the normalised clips, mixed with the
    packed params: NumPy (CPU, the twin) or CuPy (GPU, the kernel) per-sample lists in, the
    same out."""
    return list(_mix_samples(samples, rows, coef, mode))


def build_feature_pipeline(
    source: Callable[[], Sequence[list[np.ndarray]]],
    *,
    device: str,
    batch_size: int,
    num_threads: int = 2,
    prefetch: int = 2,
    device_id: int | None = None,
    seed: int = 0,
    mix: VideoMix | None = None,
) -> Pipeline:
    """Build (and return, built) the feature-sequence pipeline.

    ``source()`` returns the next batch as lists of per-sample arrays named by
    ``FEATURE_SOURCE_OUTPUTS``: the sampled rows (T, D) float32 (read on the host: DALI's GPU
    numpy reader needs GPUDirect Storage, which the wheel lacks), the target (K,) float32,
    the dataset index and the valid length int64; with ``mix`` also the packed
    ``MixParams`` (rows, coef), the target then being the soft target computed from them on
    the host. Outputs: features (N, T, D) float32 (mixed: whole rows pasted), target (N, K),
    index (N,), length (N,); with ``device="gpu"`` features and target on the GPU.
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device={device!r} must be 'cpu' or 'gpu'")

    @_pipeline_def(batch_size, num_threads, prefetch, device, device_id, seed)
    def feature_pipeline():
        feats, target, index, length, *rows = fn.external_source(
            source=source,
            num_outputs=len(FEATURE_SOURCE_OUTPUTS) + 2 * (mix is not None),
            batch=True,
        )
        if device == "gpu":
            feats, target, rows = feats.gpu(), target.gpu(), [r.gpu() for r in rows]
        if mix is not None:
            feats = fn.python_function(
                feats,
                *rows,
                function=functools.partial(_apply_packed, mode=mix.mode),
                batch_processing=True,
                num_outputs=1,
                device=device,
            )
        return feats, target, index, length

    pipe = feature_pipeline()
    pipe.build()
    return pipe


def clip_decode_error(
    data: np.ndarray,
    frames: np.ndarray,
    *,
    device: str,
    host_decoded: bool = False,
    device_id: int | None = None,
) -> str | None:
    """The decoder's message where the graph's decoder cannot decode ``frames`` of the clip
    bytes ``data`` alone, else None: PyAV where the graph is ``host_decoded``, else DALI's
    (``device`` ``"cpu"`` or ``"gpu"``: NVDEC) in a throw-away one-sample pipeline."""
    if host_decoded:
        try:
            decode_clip(data, frames)
        except HostDecodeError as exc:
            return str(exc)
        return None

    @pipeline_def(
        batch_size=1,
        num_threads=1,
        device_id=device_id if device == "gpu" else None,
        prefetch_queue_depth=1,
        exec_dynamic=True,
    )
    def decode():
        encoded, index = fn.external_source(
            source=lambda: ([data], [frames]), num_outputs=2, batch=True
        )
        return fn.decoders.video(
            encoded, device="mixed" if device == "gpu" else "cpu", frames=index, pad_mode=NO_PAD
        )

    pipe = decode()
    try:
        pipe.build()
        pipe.run()
    except RuntimeError as exc:
        return decoder_message(exc)
    return None
