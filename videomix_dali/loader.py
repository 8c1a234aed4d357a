"""``VideoLoader``: dataset index -> seeded clip sampler -> DALI pipeline -> torch, no copy."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .cuts import clip_bytes
from .handoff import to_torch
from .index import VideoIndex, read_index
from .mix import VideoMix, mix_labels
from .pipeline import DTYPES, build_pipeline, mix_source_outputs
from .probe import ProbeError, VideoInfo, nvdec_unusable_reason, probe_videos
from .recipes import Recipe, resolve_recipe
from .runtime import rank_and_world_size, resolve_device
from .sampling import LAST_BATCH_POLICIES, Clip, ClipConfig, ClipSampler, LoaderPosition

log = logging.getLogger(__name__)

CPU_CODECS = ("vp8", "vp9", "mjpeg")
SHORT_VIDEO_POLICIES = ("pad", "skip")


def _frame_range(entry, info: VideoInfo) -> tuple[int, int]:
    """The entry's frames [first, last) within the file (an index may name a sub-range)."""
    first = entry.start or 0
    last = info.num_frames if entry.end is None else min(entry.end, info.num_frames)
    return first, last


class VideoLoader(LoaderPosition):
    """Batches of clips as torch tensors, decoded, augmented and (optionally) mixed in one DALI
    pipeline and handed over without a copy.

    Yields ``(video, target)``: video (N, C, T, H, W) ``dtype``, normalised with the recipe's
    mean/std; target (N,) int64 class ids, or with ``mix`` the soft label (N, num_classes)
    float32 (each source's weight = its exact share of output voxels). With
    ``return_index=True`` also (N,) int64 dataset indices. Each epoch visits every video of
    this shard once; iterating continues the current epoch where it stopped, and a finished
    epoch advances to the next. ``state_dict()`` / ``load_state_dict()`` resume exactly.

    Args:
        source: a folder-per-class directory, an index file (see ``read_index``) or a list of
            (path, label) pairs.
        recipe: a protocol of ``pipelines/`` by name (``"kinetics"``, ``"ssv2"``, ``"demo"``,
            ...) or a ``Recipe``; its fields are the defaults of the clip, crop, testing and
            batch settings (``loader.recipe`` holds the result).
        device: ``"cpu"``, ``"gpu"`` (NVDEC decode, GPU augmentation and mixing) or
            ``"auto"`` (the GPU where torch sees one).
        train: one random clip and crop per video (``True``) or the recipe's ``test_clips``
            x ``test_crops`` deterministic views per video (``False``).
        dtype: ``"float32"`` or ``"float16"`` output.
        seed: epoch order, clip positions and crops come from ``SeedSequence([seed, epoch,
            position])``.
        shard_id, num_shards: this process's shard; default ``torch.distributed``'s rank and
            world size (0 and 1 without a process group).
        last_batch: ``"drop"`` (training default) or ``"partial"`` (evaluation default).
        short_videos: videos shorter than a clip (``(num_frames - 1) * stride + 1`` frames;
            ``num_frames`` for segment sampling) are padded by repeating their last frame
            (``"pad"``) or skipped (``"skip"``).
        num_threads: DALI CPU threads.
        prefetch: batches DALI prepares ahead of the consumer.
        return_index: also yield each sample's dataset index.
        mix: a ``VideoMix`` applied to every batch inside the pipeline, after the crop.
        fmt, root: index format and root of relative paths (see ``read_index``).
        progress: show a progress bar while probing the files.
        **overrides: recipe fields to change, e.g. ``batch_size=8, num_frames=16``; None
            keeps the recipe's value, an unknown name is a TypeError.

    Unusable files (missing, undecodable, a codec the backend cannot decode) are listed in
    ``skipped`` as (path, reason). A clip decodes only the bytes it needs, from the keyframe
    at or before its first frame (Matroska / WebM files cut at keyframe clusters, see
    :mod:`videomix_dali.cuts`); files that cannot be cut decode from frame 0 and are listed
    in ``uncut`` as (path, reason).
    """

    def __init__(
        self,
        source: str | Path | list[tuple[str | Path, int | str]],
        *,
        recipe: str | Recipe = "kinetics",
        device: str = "auto",
        train: bool = True,
        dtype: str = "float32",
        seed: int = 0,
        shard_id: int | None = None,
        num_shards: int | None = None,
        last_batch: str | None = None,
        short_videos: str = "pad",
        num_threads: int = 2,
        prefetch: int = 2,
        return_index: bool = False,
        mix: VideoMix | None = None,
        fmt: str | None = None,
        root: str | Path | None = None,
        progress: bool = True,
        **overrides: Any,
    ) -> None:
        self.recipe: Recipe = resolve_recipe(recipe, **overrides)
        recipe = self.recipe
        probe_ranks = (0, 1)  # explicit shards: the other shards' processes may not exist
        if shard_id is None and num_shards is None:
            shard_id, num_shards = probe_ranks = rank_and_world_size()
        elif shard_id is None or num_shards is None:
            raise ValueError("shard_id and num_shards must be given together")
        last_batch = last_batch or ("drop" if train else "partial")
        self._validate(dtype, shard_id, num_shards, last_batch, num_threads, prefetch)
        if short_videos not in SHORT_VIDEO_POLICIES:
            raise ValueError(f"short_videos={short_videos!r} must be one of {SHORT_VIDEO_POLICIES}")
        self.short_videos = short_videos
        self.device = resolve_device(device)
        self.train = train
        self.dtype = dtype
        self.seed = seed
        self.num_threads = num_threads
        self.prefetch = prefetch
        self.return_index = return_index
        if mix is not None and not isinstance(mix, VideoMix):
            raise ValueError(f"mix={mix!r} must be a videomix_dali.mix.VideoMix or None")
        self.mix = mix

        self.index: VideoIndex = read_index(source, fmt=fmt, root=root)
        self.classes = self.index.classes
        self.skipped: list[tuple[Path, str]] = [(p, "file not found") for p in self.index.missing]
        self.uncut: list[tuple[Path, str]] = []  # usable, but decoded from frame 0 (see cuts)
        self.entries, videos = self._usable_entries(progress, probe_ranks)

        self.sampler = ClipSampler(
            videos,
            ClipConfig.from_recipe(recipe, train=train),
            batch_size=recipe.batch_size,
            shard_id=shard_id,
            num_shards=num_shards,
            last_batch=last_batch,
            seed=seed,
        )
        if self.sampler.per_shard == 0:
            raise ValueError(
                f"num_shards={num_shards} is more than the {self.sampler.num_items} clips of "
                f"{self.index.source}: shard {shard_id} would be empty"
            )
        if self.sampler.num_batches == 0:
            raise ValueError(
                f"batch_size={recipe.batch_size} is larger than the "
                f"{self.sampler.per_shard} clips of shard {shard_id} with last_batch='drop'; "
                "lower batch_size or use last_batch='partial'"
            )
        if mix is not None and mix.num_classes not in (None, self.num_classes):
            raise ValueError(
                f"mix has num_classes={mix.num_classes} but {self.index.source} has "
                f"{self.num_classes} classes"
            )
        self.epoch = 0
        self.step = 0
        self._pipe = None
        self._fed: deque[tuple[int, int]] = deque()

    @staticmethod
    def _validate(dtype, shard_id, num_shards, last_batch, num_threads, prefetch):
        """The loader's own arguments (the recipe's fields are checked by ``Recipe``)."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} must be one of {', '.join(DTYPES)}")
        if num_shards < 1 or not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id={shard_id} must be in [0, num_shards={num_shards})")
        if last_batch not in LAST_BATCH_POLICIES:
            raise ValueError(f"last_batch={last_batch!r} must be one of {LAST_BATCH_POLICIES}")
        if num_threads < 1:
            raise ValueError(f"num_threads={num_threads} must be >= 1")
        if prefetch < 1:
            raise ValueError(f"prefetch={prefetch} must be >= 1")

    def _usable_entries(self, progress: bool, probe_ranks: tuple[int, int]):
        """Probe every indexed file (split over ``probe_ranks``: this process's rank and the
        number of ranks); keep the decodable ones, list the rest in ``skipped``."""
        rank, world_size = probe_ranks
        paths = [e.path for e in self.index.entries]
        infos = probe_videos(paths, progress=progress, rank=rank, world_size=world_size)
        entries, videos, self._cuts = [], [], []
        for entry, info in zip(self.index.entries, infos):
            reason = self._unusable_reason(entry, info)
            if reason:
                self.skipped.append((entry.path, reason))
                continue
            first, last = _frame_range(entry, info)
            entries.append(entry)
            videos.append((last - first, info.height, info.width, first))
            self._cuts.append(info.cuts)
            if info.cuts is None:
                self.uncut.append((entry.path, info.uncut_reason or "not cut"))
        if self.skipped:
            reasons = "; ".join(f"{p}: {r}" for p, r in self.skipped[:5])
            log.warning(
                "skipped %d of %d indexed videos (first: %s)",
                len(self.skipped),
                len(self.skipped) + len(entries),
                reasons,
            )
        if not entries:
            reasons = "\n".join(f"  {p}: {r}" for p, r in self.skipped[:20])
            raise ValueError(f"no usable videos in {self.index.source}:\n{reasons}")
        if self.uncut:
            log.warning(
                "%d of %d videos cannot be cut at keyframes, so each of their clips decodes the "
                "whole file from frame 0 (first: %s: %s); `videomix-dali prepare` rewrites them",
                len(self.uncut),
                len(entries),
                *self.uncut[0],
            )
        return entries, videos

    def _unusable_reason(self, entry, info: VideoInfo | Exception) -> str | None:
        if isinstance(info, ProbeError):
            return info.reason
        if self.device == "cpu" and info.codec not in CPU_CODECS:
            return (
                f"codec {info.codec} cannot be decoded by DALI's CPU backend (VP8, VP9, MJPEG "
                "only); use device='gpu' or transcode to VP9 (ffmpeg -i IN -c:v libvpx-vp9 OUT)"
            )
        if self.device == "gpu" and (reason := nvdec_unusable_reason(info)):
            return reason
        first, last = _frame_range(entry, info)
        if entry.end is not None and entry.end <= first:
            return f"frame range [{first}, {entry.end}) is empty"
        if first >= info.num_frames:
            return f"start frame {first} is past the video's {info.num_frames} frames"
        needed = self.recipe.clip_span
        if self.short_videos == "skip" and last - first < needed:
            return (
                f"{last - first} frames, fewer than the {needed} a clip spans (short_videos='skip')"
            )
        return None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        """Batches per epoch for this shard."""
        return self.sampler.num_batches

    def _source(self):
        """Host side of the pipeline: the next batch's bytes, frames, windows and labels.

        An endless stream (epoch after epoch) starting at the loader's position; DALI runs
        ``prefetch`` batches ahead of the consumer.
        """
        for epoch, step in self.positions():
            clips = self.sampler.batch(epoch, step)
            self._fed.append((epoch, step))
            encoded, frames = [], []
            for clip in clips:
                data, clip_frames = self._clip_input(clip)
                encoded.append(data)
                frames.append(clip_frames)
            labels = np.array([self.entries[c.item].label for c in clips], np.int64)
            if self.mix is not None:
                t, crop = self.recipe.num_frames, self.recipe.crop_size
                params = self.mix.sample(
                    (len(clips), 3, t, crop, crop), step=epoch * len(self) + step
                )
                labels = mix_labels(labels, params, self.num_classes, self.mix.label_smoothing)
            batch = (
                encoded,
                frames,
                [c.roi_start for c in clips],
                [c.roi_end for c in clips],
                list(labels),
                [np.array(c.item, np.int64) for c in clips],
            )
            if self.mix is not None:
                batch += mix_source_outputs(params, self.device)
            yield batch

    def _clip_input(self, clip: Clip) -> tuple[np.ndarray, np.ndarray]:
        """(encoded bytes (B,) uint8, frame indices (T,) int32 into them) of one clip.

        Only the keyframe-aligned byte range the clip needs where the file can be cut
        (:mod:`videomix_dali.cuts`), else the whole file with the file's frame indices.
        """
        path = self.entries[clip.item].path
        cuts = self._cuts[clip.item]
        try:
            if cuts is None:
                return np.fromfile(path, dtype=np.uint8), clip.frames
            data, shift = clip_bytes(path, cuts, int(clip.frames.min()), int(clip.frames.max()))
        except OSError as exc:
            raise RuntimeError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return data, clip.frames - np.int32(shift)

    def _build(self):
        stream = self._source()
        r = self.recipe
        device_id = torch.cuda.current_device() if self.device == "gpu" else None
        self._fed.clear()
        self._pipe = build_pipeline(
            lambda: next(stream),
            device=self.device,
            batch_size=r.batch_size,
            crop_size=r.crop_size,
            mean=r.mean,
            std=r.std,
            dtype=self.dtype,
            num_threads=self.num_threads,
            prefetch=self.prefetch,
            device_id=device_id,
            seed=self.seed,
            mix=self.mix,
        )

    def _files_of(self, epoch: int, step: int) -> list[str]:
        return [str(self.entries[c.item].path) for c in self.sampler.batch(epoch, step)]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if self._pipe is None:
            self._build()
        while self.step < len(self):
            try:
                video, label, index = self._pipe.run()
            except Exception as exc:
                epoch, step = self._fed[0] if self._fed else (self.epoch, self.step)
                files = ", ".join(self._files_of(epoch, step))
                self._pipe = None
                raise RuntimeError(
                    f"the pipeline failed on batch {step} of epoch {epoch} (files: {files}): {exc}"
                ) from exc
            self._fed.popleft()
            self.step += 1
            out = (to_torch(video), to_torch(label))
            yield out + (to_torch(index),) if self.return_index else out
        self.epoch, self.step = self.epoch + 1, 0
