"""``FeatureLoader``: feature sequences (N, T, D) for weakly-supervised temporal action
localization (the format: :mod:`videomix_dali.source.features`), on the video loader's core::

    FeatureSampler (seeded: epoch order, shard, T positions per video)
    ->  host source: the T rows of each file (memory map), targets, mix params (packed)
    ->  one DALI graph: (.gpu()) -> the pipeline's mix step, (N, T, D), VideoMix (temporal)
    ->  torch.from_dlpack(batch.as_tensor())          (no copy; dynamic executor)

with ``device="cpu"`` or ``device="gpu"`` (same graph; on GPU the step gets CuPy arrays
and the mix runs as a CuPy kernel).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import EllipsisType
from typing import Any, NamedTuple

import numpy as np
import torch

from ..checks import checked_int
from ..graph.build import build_feature_pipeline
from ..handoff import to_torch
from ..mix import VideoMix, mix_labels
from ..recipes import FeatureRecipe, resolve_recipe
from ..runtime import resolve_device
from ..sampling import FeatureSampler
from ..source.features import FeatureDataset, normalize_targets
from .core import LoaderPosition, checked_prefetch, resolve_shards


class FeatureBatch(NamedTuple):
    """One batch as torch tensors; ``features`` and ``target`` share DALI's memory."""

    features: torch.Tensor  # (N, T, D) float32
    target: torch.Tensor  # (N, K) float32: normalised multi-hot, mixed by exact segment share
    index: torch.Tensor  # (N,) int64 dataset index of each (unmixed) sample
    length: torch.Tensor  # (N,) int64 original number of segments (the valid length)


class FeatureLoader(LoaderPosition):
    """Batches of fixed-length feature sequences from one DALI pipeline, handed to torch.

    The same core as :class:`~videomix_dali.VideoLoader`: a seeded sampler fixes each epoch's
    order and every video's positions, an endless host source feeds one pipeline for the
    life of the loader (rows read on the host, moved with ``.gpu()``), the mix runs inside
    the graph (the pipeline's shared mix step), and ``state_dict()`` /
    ``load_state_dict()`` resume exactly. Each epoch visits every video of this shard once;
    iterating continues the current epoch where it stopped. Batches are
    :class:`FeatureBatch`.

    Args:
        dataset: a :class:`~videomix_dali.source.features.FeatureDataset` (usually one
            subset).
        recipe: a feature protocol of ``pipelines/`` by name (``"thumos-features"``) or a
            ``FeatureRecipe``; ``loader.recipe`` holds it with the overrides.
        num_positions: T, the fixed length; default the recipe's (750); None keeps every
            video's full length (needs ``batch_size=1``: the evaluation setting, bit-exact).
        train: random order per epoch, jittered bin sampling, last partial batch dropped;
            else file order, deterministic sampling, every video once.
        mix: a ``VideoMix`` (mode temporal / mixup / none) applied to (N, T, D) inside the
            graph, or None; its parameters come from its seeded sampler at step
            ``epoch * len + b``.
        seed: order and jitter come from ``SeedSequence([seed, epoch(, position)])``.
        device: ``"cpu"``, ``"gpu"`` or ``"auto"`` (the GPU where torch sees one).
        device_id: the GPU; default ``torch.cuda.current_device()``.
        shard_id, num_shards: this process's shard; default ``torch.distributed``'s rank and
            world size.
        num_threads: DALI CPU threads.
        prefetch: batches DALI prepares ahead of the consumer (1 to ``MAX_PREFETCH``).
        **overrides: recipe fields to change, e.g. ``batch_size=16``.
    """

    def __init__(
        self,
        dataset: FeatureDataset,
        *,
        recipe: str | FeatureRecipe = "thumos-features",
        num_positions: int | None | EllipsisType = ...,
        train: bool = False,
        mix: VideoMix | None = None,
        seed: int = 0,
        device: str = "auto",
        device_id: int | None = None,
        shard_id: int | None = None,
        num_shards: int | None = None,
        num_threads: int = 2,
        prefetch: int = 2,
        **overrides: Any,
    ) -> None:
        if num_positions is not ... and num_positions is not None:
            overrides["num_positions"] = num_positions
        self.recipe: FeatureRecipe = resolve_recipe(recipe, FeatureRecipe, **overrides)
        self.num_positions = self.recipe.num_positions if num_positions is not None else None
        batch_size = self.recipe.batch_size
        if self.num_positions is None and batch_size != 1:
            raise ValueError("num_positions=None (full length) needs batch_size=1")
        if len(dataset) == 0:
            raise ValueError("dataset has no videos")
        if mix is not None:
            if not isinstance(mix, VideoMix):
                raise ValueError(f"mix must be a videomix_dali.mix.VideoMix or None, got {mix!r}")
            if mix.num_classes not in (None, dataset.num_classes):
                raise ValueError(
                    f"mix has num_classes={mix.num_classes}, dataset has {dataset.num_classes}"
                )
        shard_id, num_shards = resolve_shards(shard_id, num_shards)
        self.device = resolve_device(device)
        self.device_id = device_id
        if self.device == "gpu" and device_id is None:
            self.device_id = torch.cuda.current_device()
        self.dataset = dataset
        self.train = bool(train)
        self.mix = mix
        self.seed = checked_int("seed", seed, 0)
        self.num_threads = checked_int("num_threads", num_threads, 1)
        self.prefetch = checked_prefetch(prefetch)
        self.sampler = FeatureSampler(
            [v.length for v in dataset.videos],
            self.num_positions,
            train=self.train,
            batch_size=batch_size,
            shard_id=shard_id,
            num_shards=num_shards,
            last_batch="drop" if self.train else "partial",
            seed=self.seed,
        )
        if self.sampler.num_batches == 0:
            raise ValueError(f"{len(dataset)} videos cannot fill one batch of {batch_size}")
        self._targets = normalize_targets(dataset.multi_hot())
        self.epoch = 0
        self.step = 0
        self._pipe = None

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_size

    def __len__(self) -> int:
        """Batches per epoch for this shard."""
        return self.sampler.num_batches

    def _source(self) -> Iterator[tuple[list, ...]]:
        """Host side of the pipeline: the next batch's rows, targets, indices, lengths (and
        packed mix params); endless, from the loader's position on."""
        videos = self.dataset.videos
        for epoch, step in self.positions():
            samples = self.sampler.batch(epoch, step)
            items = [i for i, _ in samples]
            feats = [_read_rows(videos[i].path, pos) for i, pos in samples]
            target = self._targets[items]
            extra: tuple = ()
            if self.mix is not None:
                shape = (len(feats), *feats[0].shape)
                params = self.mix.sample(shape, step=epoch * len(self) + step)
                target = mix_labels(
                    target, params, self.dataset.num_classes, self.mix.label_smoothing
                )
                rows, coef = params.pack()
                extra = (list(rows), list(coef))
            yield (
                feats,
                list(target),
                [np.array(i, np.int64) for i in items],
                [np.array(videos[i].length, np.int64) for i in items],
            ) + extra

    def _build(self) -> None:
        stream = self._source()
        self._pipe = build_feature_pipeline(
            lambda: next(stream),
            device=self.device,
            batch_size=self.batch_size,
            num_threads=self.num_threads,
            prefetch=self.prefetch,
            device_id=self.device_id,
            seed=self.seed,
            mix=self.mix,
        )

    def __iter__(self) -> Iterator[FeatureBatch]:
        """The rest of the current epoch (the next one where it is complete); ends the loop
        running before it."""
        return self._batches(self._new_loop())

    def _batches(self, loop: int) -> Iterator[FeatureBatch]:
        while True:
            self._check_loop(loop)
            if self._pipe is None:
                self._build()
            outputs = self._pipe.run()
            self.step += 1
            last = self.step == len(self)
            if last:  # the position is the next epoch's first batch once this one is out
                self.epoch, self.step = self.epoch + 1, 0
            yield FeatureBatch(*(to_torch(o) for o in outputs))
            if last:
                return


def _read_rows(path: Path, positions: np.ndarray) -> np.ndarray:
    """Rows ``positions`` of a (L, D) float32 feature file, read through a memory map."""
    return np.ascontiguousarray(np.load(path, mmap_mode="r", allow_pickle=False)[positions])
