"""RandAugment for video in the graph: DALI's own suite (``nvidia.dali.auto_aug``), with the
operations and signs drawn by the loader's seeded sampler rather than by DALI's RNG.

Each clip gets ``n`` operations at magnitude bin ``m``, the same for all its frames (DALI's
augmentations take (F, H, W, C) clips whole); which operations and whether each magnitude is
negated come from :meth:`~videomix_dali.sampling.ClipSampler.augment` as a per-sample (2, n)
int32 input, so a run resumes exactly where DALI's pipeline state cannot be saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from nvidia.dali.auto_aug.core import select, signed_bin
from nvidia.dali.auto_aug.rand_augment import get_rand_augment_suite
from nvidia.dali.data_node import DataNode

from ..recipes import RANDAUGMENT_BINS

FILL = 128  # grey where a shear, rotation or translation uncovers the frame


@cache
def suite() -> tuple:
    """DALI's RandAugment operations (translations relative to the frame's shape), in order."""
    return tuple(get_rand_augment_suite(use_shape=True))


def apply_randaugment(
    video: DataNode, augment: DataNode, n: int, m: int, size: Sequence[int]
) -> DataNode:
    """(F, H, W, C) uint8 clips with ``n`` operations of :func:`suite` applied at magnitude bin
    ``m``: ``augment`` (2, n) int32 per sample gives each level's operation index and whether
    its magnitude is negated; ``size`` (H, W) in pixels scales the translations."""
    for level in range(n):
        magnitude = signed_bin(m, random_sign=augment[1, level])
        video = select(
            list(suite()),
            augment[0, level],
            data=video,
            magnitude_bin=magnitude,
            num_magnitude_bins=RANDAUGMENT_BINS,
            shape=list(size),
            fill_value=FILL,
        )
    return video
