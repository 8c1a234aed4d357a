"""``VideoLoader``: dataset index -> seeded clip sampler -> DALI pipeline -> torch, no copy."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import deque
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from ..checks import checked_choice, checked_int
from ..graph.build import DTYPES, PLACEHOLDER, build_pipeline, clip_decode_error
from ..graph.plan import GraphPlan
from ..graph.randaugment import suite as randaugment_suite
from ..handoff import to_torch
from ..mix import MixStack, VideoMix, mix_labels
from ..recipes import Recipe, resolve_recipe
from ..runtime import check_ranks_agree, free_memory, resolve_device
from ..sampling import LAST_BATCH_POLICIES, Clip, ClipConfig, ClipSampler
from ..source.cuts import clip_bytes
from ..source.host_decode import HostDecoder
from ..source.index import VideoIndex, read_index
from ..source.probe import ProbeError, VideoInfo, nvdec_unusable_reason
from ..source.probe_cache import probe_videos
from ..source.remux import clip_bytes as remux_clip_bytes
from ..source.table_store import TableRef
from ..source.verify import VERIFY_MODES, decoder_message, is_sticky_cuda_error, verify_videos
from .core import LoaderPosition, checked_prefetch, resolve_shards

log = logging.getLogger(__name__)

SHORT_VIDEO_POLICIES = ("pad", "skip")
#: The frame indices of a sample that does not decode (it takes its run's decode).
PLACEHOLDER_FRAMES = np.zeros(1, np.int32)


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
    ``return_index=True`` also (N,) int64 dataset indices. With ``device="gpu"`` the video
    and the target are CUDA tensors, the indices host tensors. Each epoch visits every video of
    this shard once (with the recipe's ``clips_per_video`` k > 1, as k clips from one decode,
    side by side in one batch: ``batch_size`` counts clips, and no clip is mixed with its
    siblings); iterating continues the current epoch where it stopped, and a finished
    epoch advances to the next. One loop is live at a time: a new ``iter(loader)`` (or
    ``load_state_dict``) ends the iterator before it, which then raises RuntimeError, and the
    new one continues from the loader's position. ``state_dict()`` / ``load_state_dict()``
    resume exactly; a state refuses to load into a loader of another seed, batch size, shard
    count or index (ValueError).

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
        num_threads: DALI CPU threads (and, on the CPU, the threads that decode the codecs
            DALI's CPU decoder lacks with PyAV).
        prefetch: batches DALI prepares ahead of the consumer (1 to ``MAX_PREFETCH``).
        return_index: also yield each sample's dataset index.
        mix: a ``VideoMix`` applied to every batch inside the pipeline, after the crop, or a
            ``MixStack`` of several applied in order (its later stages on the normalised
            batch).
        fmt, root: index format and root of relative paths (see ``read_index``).
        progress: show a progress bar while probing the files.
        verify: ``"decode"`` decodes every usable file once before the first batch (cached
            by path, size and mtime) and skips the damaged ones
            (:mod:`videomix_dali.source.verify`); None (default) relies on the probe and on
            skipping at run time.
        **overrides: recipe fields to change, e.g. ``batch_size=8, num_frames=16``; None
            keeps the recipe's value, an unknown name is a TypeError.

    Unusable files (missing, undecodable, a codec the backend cannot decode) are listed in
    ``skipped`` as (path, reason). A batch that fails in DALI is decoded again clip by clip;
    the files that fail alone join ``skipped`` (and ``damaged``) with the decoder's message,
    the pipeline is rebuilt and the epoch goes on; in evaluation (``train=False``) their views
    are dropped from the batches (every other view still comes exactly once), in training
    their clips are replaced by clips of other videos
    (:class:`~videomix_dali.sampling.ClipSampler`: deterministic, same steps on every rank;
    ``state_dict`` carries them). Where no clip fails alone, RuntimeError names the batch's
    files. Before the first batch, the loader refuses batches that would not fit in memory
    (ValueError with the estimate). A clip decodes only the bytes it needs, from the safe
    keyframe at or before its first frame (Matroska / WebM cut at keyframe clusters,
    :mod:`videomix_dali.source.cuts`; MP4 / MOV packets rewrapped,
    :mod:`videomix_dali.source.remux`); files that cannot be cut decode from frame 0 and are
    listed in ``uncut`` as (path, reason).
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
        mix: VideoMix | MixStack | None = None,
        fmt: str | None = None,
        root: str | Path | None = None,
        progress: bool = True,
        verify: str | None = None,
        **overrides: Any,
    ) -> None:
        self.recipe: Recipe = resolve_recipe(recipe, **overrides)
        recipe = self.recipe
        # probing is split over the process group's ranks; with explicit shards the other
        # shards' processes may not exist
        group = shard_id is None and num_shards is None
        shard_id, num_shards = resolve_shards(shard_id, num_shards)
        probe_ranks = (shard_id, num_shards) if group else (0, 1)
        last_batch = last_batch or ("drop" if train else "partial")
        checked_choice("dtype", dtype, DTYPES)
        checked_choice("last_batch", last_batch, LAST_BATCH_POLICIES)
        self.prefetch = checked_prefetch(prefetch)
        self.short_videos = checked_choice("short_videos", short_videos, SHORT_VIDEO_POLICIES)
        self.verify = checked_choice("verify", verify, VERIFY_MODES)
        self.device = resolve_device(device)
        self.train = train
        self.dtype = dtype
        self.seed = checked_int("seed", seed, 0)
        self.num_threads = checked_int("num_threads", num_threads, 1)
        self.return_index = return_index
        if mix is not None and not isinstance(mix, (VideoMix, MixStack)):
            raise ValueError(f"mix={mix!r} must be a VideoMix, a MixStack or None")
        self.mix = mix

        self.index: VideoIndex = read_index(source, fmt=fmt, root=root)
        if probe_ranks[1] > 1:  # one torch.distributed group: every rank must see this list
            listed = [(str(e.path), e.label, e.start, e.end) for e in self.index.entries]
            digest = hashlib.sha1(json.dumps(listed).encode()).hexdigest()
            check_ranks_agree(f"indexes of {self.index.source}", digest, f"{len(listed)} videos")
        self.classes = self.index.classes
        self.skipped: list[tuple[Path, str]] = [(p, "file not found") for p in self.index.missing]
        self.damaged: list[Path] = []  # files skipped at run time (their clips are replaced)
        self.uncut: list[tuple[Path, str]] = []  # usable, but decoded from frame 0 (see cuts)
        self.entries, videos = self._usable_entries(progress, probe_ranks)

        self.sampler = ClipSampler(
            videos,
            ClipConfig.from_recipe(recipe, train=train, augment_choices=len(randaugment_suite())),
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
        k = self.sampler.config.clips_per_video
        if self.sampler.num_batches == 0:
            clips = self.sampler.per_shard * k
            raise ValueError(
                f"batch_size={recipe.batch_size} is larger than the {clips} clips of shard "
                f"{shard_id} with last_batch='drop'; lower batch_size or use last_batch='partial'"
            )
        if mix is not None and k > 1 and recipe.batch_size // k < 2:
            raise ValueError(
                f"mixing needs clips of two videos or more in a batch, but batch_size="
                f"{recipe.batch_size} holds the {k} clips of one video (clips_per_video={k})"
            )
        if mix is not None and mix.num_classes not in (None, self.num_classes):
            raise ValueError(
                f"mix has num_classes={mix.num_classes} but {self.index.source} has "
                f"{self.num_classes} classes"
            )
        self._check_memory()
        self.epoch = 0
        self.step = 0
        self._pipe = None
        self._fed: deque[tuple[int, int]] = deque()

    def batch_bytes(self) -> int:
        """Estimated bytes of one batch in the pipeline: the decoded frames at the largest
        video's size, their resized copy, the output and (mixing) two float32 copies."""
        r = self.recipe
        _, height, width, _ = self._largest_video
        crop = 3 * r.crop_size**2
        itemsize = 4 if self.dtype == "float32" else 2
        per_frame = 3 * height * width + crop + crop * itemsize + (8 * crop if self.mix else 0)
        return r.batch_size * r.num_frames * per_frame

    @property
    def _largest_video(self) -> tuple[int, int, int, int]:
        return max(self.sampler.videos, key=lambda v: v[1] * v[2])

    def _check_memory(self) -> None:
        """ValueError where the batches in flight (``prefetch`` + 1, + 1 decoded on the host)
        cannot fit in memory."""
        ahead = self.prefetch + 1 + self.plan.host_decoded  # host decoding: one batch more
        need = ahead * self.batch_bytes()
        free = free_memory(self.device)
        if need > free:
            r = self.recipe
            _, h, w, _ = self._largest_video
            raise ValueError(
                f"{ahead} batches in flight need about {need / 1e9:.3g} GB "
                f"(batch_size={r.batch_size}, num_frames={r.num_frames}, "
                f"crop_size={r.crop_size}, dtype={self.dtype}, prefetch={self.prefetch}, "
                f"largest video {h}x{w}) but {free / 1e9:.3g} GB of "
                f"{'GPU' if self.device == 'gpu' else 'host'} memory is free; "
                "lower one of them"
            )

    def _usable_entries(self, progress: bool, probe_ranks: tuple[int, int]):
        """Probe every indexed file (split over ``probe_ranks``: this process's rank and the
        number of ranks); keep the decodable ones, list the rest in ``skipped``."""
        rank, world_size = probe_ranks
        paths = [e.path for e in self.index.entries]
        infos = probe_videos(paths, progress=progress, rank=rank, world_size=world_size)
        reasons = [self._unusable_reason(e, i) for e, i in zip(self.index.entries, infos)]
        if self.verify == "decode":
            usable = [k for k, reason in enumerate(reasons) if reason is None]
            found = verify_videos(
                [self.index.entries[k].path for k in usable],
                [infos[k] for k in usable],
                progress=progress,
            )
            for k, reason in zip(usable, found):
                reasons[k] = reason
        entries, videos, self._cuts, codecs = [], [], [], set()
        for entry, info, reason in zip(self.index.entries, infos, reasons):
            if reason:
                self.skipped.append((entry.path, reason))
                continue
            first, last = _frame_range(entry, info)
            entries.append(entry)
            videos.append((last - first, info.height, info.width, first))
            self._cuts.append(info.cuts)
            codecs.add(info.codec)
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
        span = self.recipe.clip_span
        short = [(e.path, n) for e, (n, *_) in zip(entries, videos) if n < span]
        mix = (self.mix.mode, self.mix.num_videos) if self.mix else (None, 2)
        augment = self.recipe.randaugment if self.train else None
        later = tuple(s.mode for s in self.mix.stages[1:]) if isinstance(self.mix, MixStack) else ()
        k = self.recipe.clips_per_video if self.train else 1
        self.plan = GraphPlan.choose(
            self.device, codecs, *mix, augment, later, k, self.recipe.repeat, bool(short)
        )
        if short:  # only with short_videos="pad": "skip" left them out above
            log.warning(
                "%d of %d videos have fewer frames than the %d a clip spans, so each epoch "
                "pads %d of its clips by repeating their last frame (first: %s, %d frames); "
                "short_videos='skip' leaves them out",
                len(short),
                len(entries),
                span,
                len(short) * (1 if self.train else self.recipe.test_clips * self.recipe.test_crops),
                *short[0],
            )
        return entries, videos

    def _unusable_reason(self, entry, info: VideoInfo | Exception) -> str | None:
        """Why ``entry`` cannot be used on this loader's device, or None."""
        if isinstance(info, ProbeError):
            return info.reason
        if self.device == "cpu" and not _has_decoder(info.codec):
            return f"codec {info.codec}: this PyAV (FFmpeg) build has no decoder for it"
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
        decoder = HostDecoder(self.num_threads) if self.plan.host_decoded else None
        ahead: deque = deque()  # host decoding runs a batch ahead of the pipeline
        try:
            for epoch, step in self.positions():
                clips = self.sampler.batch(epoch, step)
                runs = self._decode_runs(clips)
                decoding = decoder and decoder.submit([(data, f) for data, f, _ in runs])
                ahead.append((epoch, step, clips, runs, decoding))
                if decoder is None or len(ahead) == 2:
                    yield self._source_batch(*ahead.popleft())
        finally:
            if decoder is not None:
                decoder.close()

    def _source_batch(self, epoch: int, step: int, clips: list[Clip], runs, decoding):
        """The source's arrays for batch ``step`` of ``epoch`` (``SOURCE_OUTPUTS``, then the
        mixing inputs): each run's bytes and frames, or the clips' frames where ``decoding``
        (host jobs, one per run)."""
        self._fed.append((epoch, step))
        k = len(clips) // len(runs)
        orders = [order for _, _, run_orders in runs for order in run_orders]
        if decoding:  # every clip its frames, picked from its run's decoded frames
            decoded = HostDecoder.result(decoding)
            encoded = [_picked(decoded[i // k], order) for i, order in enumerate(orders)]
            frames = None
        else:
            runs_of = [runs[i // k] if i % k == 0 else None for i in range(len(clips))]
            encoded = [PLACEHOLDER if r is None else r[0] for r in runs_of]
            frames = [PLACEHOLDER_FRAMES if r is None else r[1] for r in runs_of]
        labels = np.array([self.entries[c.item].label for c in clips], np.int64)
        if self.mix is not None:
            t, crop = self.recipe.num_frames, self.recipe.crop_size
            params = self.mix.sample(
                (len(clips), 3, t, crop, crop), step=epoch * len(self) + step, siblings=k
            )
            if isinstance(self.mix, MixStack):
                labels = self.mix.labels(labels, params, self.num_classes)
            else:
                labels = mix_labels(labels, params, self.num_classes, self.mix.label_smoothing)
        arrays = {
            "encoded": encoded,
            "frames": frames,
            "roi_start": [c.roi_start for c in clips],
            "roi_end": [c.roi_end for c in clips],
            "label": list(labels),
            "index": [np.array(c.item, np.int64) for c in clips],
            "augment": [c.augment for c in clips],
            "decodes": [np.array(i % k == 0) for i in range(len(clips))],
            "leader": [np.array(i - i % k, np.int32) for i in range(len(clips))],
            "order": orders,
        }
        batch = tuple(arrays[name] for name in self.plan.source_outputs)
        if self.mix is not None:
            batch += self.plan.encode_mix(params)
        return batch

    def _decode_runs(self, clips: list[Clip]) -> list[tuple[np.ndarray, np.ndarray, list]]:
        """One decode per run of ``clips_per_video`` consecutive clips (one video): (encoded
        bytes (B,) uint8, the run's distinct frames (F,) int32 ascending, as indices into those
        bytes, and each clip's frames (T,) int32 as positions in them)."""
        k = self.plan.clips_per_video
        runs = []
        for start in range(0, len(clips), k):
            run = clips[start : start + k]
            union = np.unique(np.concatenate([c.frames for c in run]))
            data, frames = self._decode_input(run[0].item, union)
            orders = [np.searchsorted(union, c.frames).astype(np.int32) for c in run]
            runs.append((data, frames, orders))
        return runs

    def _decode_input(self, video: int, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(encoded bytes (B,) uint8, ``frames`` as indices into them (F,) int32) to decode
        the distinct ascending frame indices ``frames`` of ``video``.

        Only what they need from a safe keyframe on where the file can be cut: Matroska
        clusters (:mod:`videomix_dali.source.cuts`) or an MP4's packets rewrapped as Matroska
        (:mod:`videomix_dali.source.remux`); else the whole file with the file's frame indices.
        """
        path = self.entries[video].path
        cuts = self._cuts[video]
        try:
            first, last = int(frames[0]), int(frames[-1])
            if cuts is None:
                return np.fromfile(path, dtype=np.uint8), frames.astype(np.int32)
            if isinstance(cuts, TableRef):  # MP4 / MOV: the packets rewrapped as Matroska
                data, shift = remux_clip_bytes(path, cuts.load(), first, last)
            else:
                data, shift = clip_bytes(path, cuts, first, last)
        except OSError as exc:
            raise RuntimeError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:  # its sample table is gone and the file changed since
            raise RuntimeError(f"cannot cut {path}: {exc}") from exc
        return data, (frames - shift).astype(np.int32)

    @property
    def _device_id(self) -> int | None:
        return torch.cuda.current_device() if self.device == "gpu" else None

    def _build(self):
        stream = self._source()
        r = self.recipe
        self._fed.clear()
        self._pipe = build_pipeline(
            lambda: next(stream),
            self.plan,
            batch_size=r.batch_size,
            num_frames=r.num_frames,
            crop_size=r.crop_size,
            mean=r.mean,
            std=r.std,
            dtype=self.dtype,
            num_threads=self.num_threads,
            prefetch=self.prefetch,
            device_id=self._device_id,
            seed=self.seed,
        )

    def _skip_damaged(self, exc: Exception) -> None:
        """After a batch failed in DALI: decode its clips one by one from the same input bytes
        and exclude the files that fail alone (see the class); the loop then rebuilds the
        pipeline. RuntimeError naming the batch and the cause where none fails alone.

        The failed batch is the oldest one fed and not yet returned (DALI reports an error at
        the run of the batch it belongs to, however far ahead it prefetched).
        """
        self._pipe = None
        epoch, step = self._fed[0] if self._fed else (self.epoch, self.step)
        clips = self.sampler.batch(epoch, step)
        found: dict[int, str] = {}
        for clip in clips:
            if clip.item in found:
                continue
            data, frames = self._decode_input(clip.item, np.unique(clip.frames))
            message = clip_decode_error(
                data,
                frames,
                device=self.device,
                host_decoded=self.plan.host_decoded,
                device_id=self._device_id,
            )
            if message is not None and is_sticky_cuda_error(message):
                raise RuntimeError(f"the GPU hit a CUDA fault (no file is blamed): {message}")
            if message is not None:
                first, last = int(clip.frames.min()), int(clip.frames.max())
                found[clip.item] = f"damaged frame data (frames {first}..{last}): {message}"
        if not found:
            files = ", ".join(str(self.entries[c.item].path) for c in clips)
            raise RuntimeError(
                f"the pipeline failed on batch {step} of epoch {epoch} (files: {files}): "
                f"{decoder_message(exc)}"
            ) from exc
        for video, reason in found.items():
            self._exclude(video, reason)

    def _exclude(self, video: int, reason: str) -> None:
        """Skip ``video`` from now on: its clips are replaced (``ClipSampler.exclude``)."""
        path = self.entries[video].path
        self.sampler.exclude(video)
        self.skipped.append((path, reason))
        self.damaged.append(path)
        log.warning("skipped %s: %s; its clips are replaced by other videos'", path, reason)

    @cached_property
    def _index_fingerprint(self) -> str:
        """Hash of the usable entries and their probed layout: what clip positions index."""
        rows = [
            [str(e.path), int(e.label), e.start, e.end, *v]
            for e, v in zip(self.entries, self.sampler.videos)
        ]
        return hashlib.sha1(json.dumps(rows).encode()).hexdigest()

    def _depends_on(self) -> dict[str, Any]:
        k = self.sampler.config.clips_per_video
        repeat = {"repeat": self.recipe.repeat} if k > 1 else {}
        return {
            **super()._depends_on(),
            "batch_size": self.recipe.batch_size,  # clips (the sampler's counts videos)
            "index": self._index_fingerprint,
            "clips_per_video": k,
            **repeat,
        }

    def state_dict(self) -> dict[str, Any]:
        """Position, what it depends on, and the files found damaged so far (``damaged``)."""
        return {**super().state_dict(), "damaged": [str(p) for p in self.damaged]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (see :class:`~videomix_dali.loading.core.LoaderPosition`); the
        files it found damaged are skipped here too, their clips replaced the same way."""
        super().load_state_dict({"clips_per_video": 1, **state})  # older states: one per video
        videos = {str(e.path): k for k, e in enumerate(self.entries)}
        for path in state.get("damaged", []):
            if videos[path] not in self.sampler.excluded:
                self._exclude(
                    videos[path], "damaged frame data, found by the run that saved the state"
                )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """The rest of the current epoch (the next one where it is complete); ends the loop
        running before it."""
        return self._batches(self._new_loop())

    def _batches(self, loop: int) -> Iterator[tuple[torch.Tensor, ...]]:
        while True:
            self._check_loop(loop)
            if self._pipe is None:
                self._build()
            try:
                video, label, index = self._pipe.run()
            except Exception as exc:
                if is_sticky_cuda_error(exc):
                    raise RuntimeError(
                        f"the GPU pipeline hit a CUDA fault (no file is blamed for it): "
                        f"{decoder_message(exc)}"
                    ) from exc
                self._skip_damaged(exc)
                continue
            epoch, step = self._fed.popleft()
            self.step += 1
            last = self.step == len(self)
            if last:
                self.epoch, self.step = self.epoch + 1, 0
            out = (to_torch(video), to_torch(label)) + (to_torch(index),) * self.return_index
            kept = self._evaluated_rows(epoch, step)
            if kept is None:
                yield out
            elif kept.any():  # evaluation: a damaged file's views are dropped, not replaced
                yield tuple(t[torch.from_numpy(kept).to(t.device)] for t in out)
            if last:
                return

    def _evaluated_rows(self, epoch: int, step: int) -> np.ndarray | None:
        """In evaluation, which rows of batch ``step`` of ``epoch`` are the views they stand for
        (False: a damaged file's view, replaced in the pipeline); None where all are."""
        if self.train or not self.sampler.excluded:
            return None
        views = self.sampler.config.views_per_video
        items = self.sampler.batch_items(epoch, step)
        kept = np.array([item // views not in self.sampler.excluded for _, item in items])
        return None if kept.all() else kept


def _picked(frames: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``frames[order]``, without a copy where ``order`` takes them all as they are."""
    if len(order) == len(frames) and (order == np.arange(len(frames))).all():
        return frames
    return frames[order]


def _has_decoder(codec: str) -> bool:
    """Whether PyAV's FFmpeg can decode ``codec`` (an FFmpeg codec name)."""
    try:
        av.codec.Codec(codec, "r")
    except (av.error.FFmpegError, ValueError):
        return False
    return True
