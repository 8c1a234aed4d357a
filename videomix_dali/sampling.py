"""The loaders' seeded samplers: epoch order, sharding, clip frame indices and crop windows,
feature-sequence positions.

Everything random about a clip is drawn here, on the host, from ``SeedSequence([seed, epoch,
position])`` where ``position`` is the clip's place in the epoch's global order. So a clip's
frames and crop do not depend on the batch size, the shard layout or the device, and any point
of a run can be reproduced (resume) from ``(epoch, step)`` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .recipes import Recipe
from .source.features import sample_positions

LAST_BATCH_POLICIES = ("drop", "partial")


@dataclass(frozen=True)
class Clip:
    """One output sample: which video, which frames, which window of the frame.

    ``roi_start``/``roi_end`` are (y, x) in input pixels, ends exclusive; a flip is expressed by
    swapping the x coordinates (DALI's resize mirrors a reversed ROI). ``augment``: the clip's
    RandAugment draw, (2, n) int32: the operations' indices into the suite, and whether each
    one's magnitude is negated (0 / 1); (2, 0) without RandAugment.
    """

    item: int
    view: int
    frames: np.ndarray  # (T,) int32, frame indices into the file
    roi_start: np.ndarray  # (2,) float32
    roi_end: np.ndarray  # (2,) float32
    augment: np.ndarray = field(default_factory=lambda: np.zeros((2, 0), np.int32))


def window_frames(num_frames: int, length: int, stride: int, start: int) -> np.ndarray:
    """``length`` frames from ``start`` every ``stride``; past the end the last frame repeats."""
    idx = start + stride * np.arange(length)
    return np.minimum(idx, num_frames - 1).astype(np.int32)


def random_window_start(rng: np.random.Generator, num_frames: int, span: int) -> int:
    """Uniform start of a ``span``-frame window, every start from 0 to n - span included."""
    return int(rng.integers(0, max(num_frames - span, 0) + 1))


def uniform_window_starts(num_frames: int, span: int, num_clips: int) -> np.ndarray:
    """Starts of ``num_clips`` windows spread evenly over the video (a centred one for 1)."""
    last = max(num_frames - span, 0)
    if num_clips == 1:
        return np.array([last // 2])
    return np.round(np.linspace(0, last, num_clips)).astype(np.int64)


def windows_span(num_frames: int, span: int) -> int:
    """Frames of the one span the windows of ``repeat="windows"`` are drawn inside:
    ``floor(1.5 * span)``, at most the video. Decoding it from the keyframe before it costs at
    most 1.5 times what one window's decode from that keyframe costs."""
    return min(num_frames, (3 * span) // 2)


def segment_frames(num_frames: int, length: int, rng: np.random.Generator | None) -> np.ndarray:
    """SSv2 sampling (Appendix C): ``length`` equal bins, one frame per bin.

    A random frame of each bin with ``rng``, the bin's middle frame without.
    """
    edges = np.linspace(0, num_frames, length + 1)
    lo = np.floor(edges[:-1]).astype(np.int64)
    hi = np.maximum(np.floor(edges[1:]).astype(np.int64), lo + 1)
    if rng is None:
        idx = (lo + hi - 1) // 2
    else:
        idx = rng.integers(lo, hi)
    return np.minimum(idx, num_frames - 1).astype(np.int32)


def random_resized_crop(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> tuple[float, float, float, float]:
    """A window (y0, x0, y1, x1) covering ``scale`` of the area with aspect ``ratio`` (w/h).

    Ten tries as in Inception-style cropping; then the largest centred window whose aspect is
    clamped into ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = math.sqrt(target * aspect)
        h = math.sqrt(target / aspect)
        if w <= width and h <= height:
            y0 = rng.uniform(0, height - h)
            x0 = rng.uniform(0, width - w)
            return y0, x0, y0 + h, x0 + w
    aspect = min(max(width / height, ratio[0]), ratio[1])
    w, h = (height * aspect, height) if width / height > aspect else (width, width / aspect)
    y0, x0 = (height - h) / 2, (width - w) / 2
    return y0, x0, y0 + h, x0 + w


def eval_crop(
    height: int, width: int, crop_size: int, short_side: int, index: int, num_crops: int
) -> tuple[float, float, float, float]:
    """Test-time window: the frame scaled to ``short_side``, a square ``crop_size`` crop.

    ``num_crops`` crops are spread along the longer side (1: centre; 3: start, centre, end).
    """
    side = min(crop_size * min(height, width) / short_side, height, width)
    along = np.linspace(0, 1, num_crops)[index] if num_crops > 1 else 0.5
    if width >= height:
        y0, x0 = (height - side) / 2, along * (width - side)
    else:
        y0, x0 = along * (height - side), (width - side) / 2
    return y0, x0, y0 + side, x0 + side


@dataclass(frozen=True)
class ClipConfig:
    """How clips are cut: the recipe's sampling fields plus train/eval."""

    train: bool
    num_frames: int
    stride: int
    sampling: str  # "window" | "segment"
    crop_size: int
    scale: tuple[float, float]
    ratio: tuple[float, float]
    flip: bool
    eval_short_side: int
    test_clips: int
    test_crops: int
    augment_ops: int = 0  # RandAugment operations per clip (0: none)
    augment_choices: int = 0  # operations in the RandAugment suite
    clips_per_video: int = 1  # clips a training video gives from one decode
    repeat: str = "views"  # "views" | "windows": what those clips differ in

    @classmethod
    def from_recipe(cls, recipe: Recipe, *, train: bool, augment_choices: int = 0) -> ClipConfig:
        """The clip fields of ``recipe``; no flip and no RandAugment at test time.
        ``augment_choices``: the size of the RandAugment suite the graph applies."""
        own = {"train", "augment_ops", "augment_choices", "clips_per_video"}
        values = {f.name: getattr(recipe, f.name) for f in fields(cls) if f.name not in own}
        ops = recipe.randaugment[0] if recipe.randaugment and train else 0
        if ops and augment_choices < 1:
            raise ValueError("randaugment needs the size of the suite (augment_choices >= 1)")
        return cls(
            train=train,
            **{**values, "flip": recipe.flip and train},
            augment_ops=ops,
            augment_choices=augment_choices if ops else 0,
            clips_per_video=recipe.clips_per_video if train else 1,
        )

    @property
    def views_per_video(self) -> int:
        return 1 if self.train else self.test_clips * self.test_crops


class EpochSampler:
    """Per-epoch order of ``num_items`` items, this shard's share of it, and its batches.

    Training shuffles the order every epoch (``SeedSequence([seed, epoch])``) and drops or
    keeps the last partial batch (``last_batch``); evaluation keeps the items in order. The
    randomness of one item comes from :meth:`rng`, keyed by its global position, so it does
    not depend on the batch size or the shard layout, and ``(epoch, step)`` alone fixes a
    batch (exact resume).
    """

    def __init__(
        self,
        num_items: int,
        *,
        train: bool,
        batch_size: int,
        shard_id: int,
        num_shards: int,
        last_batch: str,
        seed: int,
    ) -> None:
        self.num_items = num_items
        self._last_order: tuple[int, np.ndarray] | None = None  # (epoch, epoch_order(epoch))
        self.train = train
        self.batch_size = batch_size
        self.shard_id = shard_id
        self.num_shards = num_shards
        self.last_batch = last_batch
        self.seed = seed
        # Shards take global positions round-robin: shard s gets s, s + num_shards, ...
        # Training pads the epoch order by wrapping around to a multiple of num_shards, so
        # every rank runs the same number of steps; evaluation does not pad, so every view is
        # seen exactly once over all shards (shard sizes then differ by at most one).
        padded = math.ceil(num_items / num_shards) * num_shards
        positions = np.arange(padded if train else num_items) % num_items
        self.positions = positions[shard_id::num_shards]
        self.per_shard = len(self.positions)
        full, rest = divmod(self.per_shard, batch_size)
        self.num_batches = full + (1 if rest and last_batch == "partial" else 0)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Item id at each global position of ``epoch`` (a permutation when training).

        The last epoch's order is kept: every batch of an epoch reads it, and a permutation of
        a Kinetics-size index costs milliseconds on the host source's hot path.
        """
        cached = self._last_order
        if cached is not None and cached[0] == epoch:
            return cached[1]
        if not self.train:
            order = np.arange(self.num_items)
        else:
            seeds = np.random.SeedSequence([self.seed, epoch])
            order = np.random.Generator(np.random.PCG64(seeds)).permutation(self.num_items)
        self._last_order = (epoch, order)
        return order

    def batch_items(self, epoch: int, step: int) -> list[tuple[int, int]]:
        """(global position, item id) of each sample of batch ``step`` of ``epoch``."""
        if not 0 <= step < self.num_batches:
            raise IndexError(f"step {step} outside 0..{self.num_batches - 1}")
        positions = self.positions[step * self.batch_size :][: self.batch_size]
        order = self.epoch_order(epoch)
        return [(int(p), int(order[p])) for p in positions]

    def rng(self, epoch: int, position: int) -> np.random.Generator:
        """The generator of the item at global ``position`` of ``epoch``."""
        return np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([self.seed, epoch, position]))
        )


class ClipSampler(EpochSampler):
    """Per-epoch order, this shard's share of it, and each clip's frames and window.

    ``videos`` is a list of (num_frames, height, width, first_frame) per usable video;
    ``first_frame`` offsets clips of entries that start inside the file. ``batch_size`` counts
    clips: with ``clips_per_video`` k, the video at each global position gives k consecutive
    clips of one batch (clip 0 draws from the position's generator, clip j from
    ``SeedSequence([seed, epoch, position, 3, j])``), so a batch holds ``batch_size / k``
    videos.

    Videos found damaged during a run are :meth:`exclude`d: from then on each of their clips
    is replaced by the same view of another video, drawn from ``SeedSequence([seed, epoch,
    position, 1])`` until one is not excluded, with that position's frames and crop. The epoch
    order, the shards and the number of steps stay as they were, and the replacement depends
    only on the seed, the position and the excluded set.
    """

    def __init__(
        self,
        videos: list[tuple[int, int, int, int]],
        config: ClipConfig,
        *,
        batch_size: int,
        shard_id: int,
        num_shards: int,
        last_batch: str,
        seed: int,
    ) -> None:
        self.videos = videos
        self.config = config
        self.excluded: set[int] = set()
        k = config.clips_per_video
        if batch_size % k:
            raise ValueError(f"batch_size={batch_size} must be a multiple of clips_per_video={k}")
        super().__init__(
            len(videos) * config.views_per_video,
            train=config.train,
            batch_size=batch_size // k,
            shard_id=shard_id,
            num_shards=num_shards,
            last_batch=last_batch,
            seed=seed,
        )

    def batch(self, epoch: int, step: int) -> list[Clip]:
        """The clips of batch ``step`` (0-based) of ``epoch`` on this shard (a video's
        ``clips_per_video`` clips side by side)."""
        return [
            clip
            for p, item in self.batch_items(epoch, step)
            for clip in self.clips(epoch, p, self.replacement(epoch, p, item))
        ]

    def exclude(self, video: int) -> None:
        """Replace the clips of ``video`` from now on; RuntimeError if none would be left."""
        if len(self.excluded | {video}) == len(self.videos):
            raise RuntimeError("every video of the index is damaged: nothing left to replace with")
        self.excluded.add(video)

    def replacement(self, epoch: int, position: int, item: int) -> int:
        """``item``, or the item replacing it where its video is excluded (see the class)."""
        views = self.config.views_per_video
        video, view = divmod(item, views)
        if video not in self.excluded:
            return item
        seeds = np.random.SeedSequence([self.seed, epoch, position, 1])
        rng = np.random.Generator(np.random.PCG64(seeds))
        while video in self.excluded:
            video = int(rng.integers(len(self.videos)))
        return video * views + view

    def clips(self, epoch: int, position: int, item: int) -> list[Clip]:
        """The ``clips_per_video`` clips of the item at ``position`` (one in evaluation)."""
        cfg = self.config
        if not cfg.train:
            return [self._eval_clip(item)]
        num_frames, height, width, first = self.videos[item]
        span = (cfg.num_frames - 1) * cfg.stride + 1
        rngs = [self.rng(epoch, position)] + [
            np.random.Generator(
                np.random.PCG64(np.random.SeedSequence([self.seed, epoch, position, 3, j]))
            )
            for j in range(1, cfg.clips_per_video)
        ]
        windows = cfg.repeat == "windows" and cfg.clips_per_video > 1
        if windows and cfg.sampling == "window":
            union = windows_span(num_frames, span)
            start = random_window_start(rngs[0], num_frames, union)
            starts = [start + random_window_start(rng, union, span) for rng in rngs]
            frames = [window_frames(num_frames, cfg.num_frames, cfg.stride, s) for s in starts]
        elif windows:  # segment sampling: each clip its own frame per bin
            frames = [segment_frames(num_frames, cfg.num_frames, rng) for rng in rngs]
        else:
            frames = [self._train_frames(rngs[0], num_frames, span)] * len(rngs)
        out = []
        for j, (rng, clip_frames) in enumerate(zip(rngs, frames)):
            y0, x0, y1, x1 = random_resized_crop(rng, height, width, cfg.scale, cfg.ratio)
            if cfg.flip and rng.random() < 0.5:
                x0, x1 = x1, x0
            out.append(
                Clip(
                    item=item,
                    view=0,
                    frames=(clip_frames + first).astype(np.int32),
                    roi_start=np.array([y0, x0], np.float32),
                    roi_end=np.array([y1, x1], np.float32),
                    augment=self.augment(epoch, position, j),
                )
            )
        return out

    def _train_frames(self, rng: np.random.Generator, num_frames: int, span: int) -> np.ndarray:
        """One training clip's frame indices (T,) drawn from ``rng``."""
        cfg = self.config
        if cfg.sampling == "segment":
            return segment_frames(num_frames, cfg.num_frames, rng)
        start = random_window_start(rng, num_frames, span)
        return window_frames(num_frames, cfg.num_frames, cfg.stride, start)

    def _eval_clip(self, item: int) -> Clip:
        """The deterministic view ``item`` enumerates (video, temporal clip, crop)."""
        cfg = self.config
        video, view = divmod(item, cfg.views_per_video)
        num_frames, height, width, first = self.videos[video]
        span = (cfg.num_frames - 1) * cfg.stride + 1
        clip_index, crop_index = divmod(view, cfg.test_crops)
        if cfg.sampling == "segment":
            frames = segment_frames(num_frames, cfg.num_frames, None)
        else:
            start = uniform_window_starts(num_frames, span, cfg.test_clips)[clip_index]
            frames = window_frames(num_frames, cfg.num_frames, cfg.stride, int(start))
        y0, x0, y1, x1 = eval_crop(
            height, width, cfg.crop_size, cfg.eval_short_side, crop_index, cfg.test_crops
        )
        return Clip(
            item=video,
            view=view,
            frames=(frames + first).astype(np.int32),
            roi_start=np.array([y0, x0], np.float32),
            roi_end=np.array([y1, x1], np.float32),
        )

    def augment(self, epoch: int, position: int, sibling: int = 0) -> np.ndarray:
        """The RandAugment draw of clip ``sibling`` of the item at ``position`` (see
        :class:`Clip`), from its own ``SeedSequence([seed, epoch, position, 2])`` (clip j > 0:
        ``[..., 2, j]``): the clip's frames and crop are the same with RandAugment on or off."""
        cfg = self.config
        if not cfg.augment_ops:
            return np.zeros((2, 0), np.int32)
        key = [self.seed, epoch, position, 2] + ([sibling] if sibling else [])
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))
        ops = rng.integers(0, cfg.augment_choices, cfg.augment_ops)
        signs = rng.integers(0, 2, cfg.augment_ops)
        return np.stack([ops, signs]).astype(np.int32)


class FeatureSampler(EpochSampler):
    """Per-epoch order of the videos, this shard's batches, and each video's T positions.

    ``lengths``: segments per video; ``num_positions``: T, or None for every video's full
    length. Training jitters each bin with the generator of the video's global position.
    """

    def __init__(self, lengths: list[int], num_positions: int | None, **kwargs: Any) -> None:
        self.lengths = lengths
        self.num_positions = num_positions
        super().__init__(len(lengths), **kwargs)

    def batch(self, epoch: int, step: int) -> list[tuple[int, np.ndarray]]:
        """(video, (T,) int64 segment indices) of each sample of batch ``step`` of ``epoch``."""
        out = []
        for position, item in self.batch_items(epoch, step):
            L = self.lengths[item]
            rng = self.rng(epoch, position) if self.train else None
            out.append((item, sample_positions(L, self.num_positions or L, rng=rng)))
        return out
