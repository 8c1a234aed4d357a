"""Hide-and-Seek for feature sequences (Singh & Lee, "Hide-and-Seek: Forcing a Network to be
Meticulous for Weakly-supervised Object and Action Localization", ICCV 2017): the paper's
weakly-supervised localization baseline (VideoMix, Table 8).

A sequence of T feature positions is split into consecutive segments of ``segment`` positions;
each segment is hidden with probability ``prob`` (the HaS paper: 0.5) and its positions are
replaced by the training data's mean feature (HaS fills hidden pixels with the dataset mean so
that the statistics the network sees at training and test time agree). Labels are unchanged.
The segment length is in feature positions here (HaS states it in frames of the raw video).
Sampling (:func:`sample_hidden`) is separate from applying (:func:`hide_segments`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import array_module, on_device_of, unwrap_array, wrap_array


def sample_hidden(
    rng: np.random.Generator, n: int, t: int, segment: int, prob: float
) -> np.ndarray:
    """(n, t) bool: which positions of each of ``n`` sequences of ``t`` positions are hidden,
    whole segments of ``segment`` positions at a time, each with probability ``prob``."""
    if segment < 1 or not 0 <= prob <= 1:
        raise ValueError(f"segment={segment} must be >= 1 and prob={prob} in [0, 1]")
    segments = -(-t // segment)
    hidden = rng.random((n, segments)) < prob
    return np.repeat(hidden, segment, axis=1)[:, :t]


def hide_segments(x: Any, hidden: Any, fill: Any) -> Any:
    """``x`` (N, T, D) (NumPy, CuPy or torch) with the positions where ``hidden`` (N, T) is
    True replaced by ``fill`` (D,); a new array, ``x`` is left as it is."""
    if tuple(hidden.shape) != tuple(x.shape[:2]) or tuple(fill.shape) != tuple(x.shape[2:]):
        raise ValueError(
            f"hidden {tuple(hidden.shape)} and fill {tuple(fill.shape)} do not fit x "
            f"{tuple(x.shape)} (N, T, D)"
        )
    arr, kind, _ = unwrap_array(x)
    mask, _, _ = unwrap_array(hidden, "hidden")
    value, _, _ = unwrap_array(fill, "fill")
    with on_device_of(x):
        return wrap_array(array_module(arr).where(mask[..., None], value, arr), kind)
