"""The VideoMix family of batch-mixing augmentations (Yun et al., 2020).

One seeded sampler (:func:`sample_mix_params` / :meth:`VideoMix.sample`) draws a small
:class:`MixParams` value; pure appliers use it: the NumPy twin, the CuPy kernels
(kernels/videomix.cu), the fused paste + normalise + NCTHW step of the DALI pipeline
(:func:`mix_normalize_batch`) and the soft labels (:func:`mix_labels`).
"""

from .labels import mix_labels
from .op import MixStack, VideoMix, apply_mix, mix_normalize_batch
from .params import MODES, MixParams, sample_mix_params

__all__ = [
    "MODES",
    "MixParams",
    "MixStack",
    "VideoMix",
    "apply_mix",
    "mix_labels",
    "mix_normalize_batch",
    "sample_mix_params",
]
