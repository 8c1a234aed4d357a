"""videomix-dali: video decode, sampling, augmentation and VideoMix in one DALI pipeline.

Names are imported on first use, so that ``videomix_dali.mix`` (VideoMix on torch, CuPy and
NumPy batches) and ``videomix_dali.recipes`` work where DALI is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loading.features import FeatureLoader
    from .loading.videos import VideoLoader
    from .mix import VideoMix
    from .recipes import Recipe, load_recipe
    from .source.index import VideoEntry, VideoIndex, read_index

__version__ = "0.1.0"
#: public name -> the module that defines it
_HOMES = {
    "Recipe": "recipes",
    "VideoEntry": "source.index",
    "VideoIndex": "source.index",
    "FeatureLoader": "loading.features",
    "VideoLoader": "loading.videos",
    "VideoMix": "mix",
    "load_recipe": "recipes",
    "read_index": "source.index",
}
__all__ = [
    "FeatureLoader",
    "Recipe",
    "VideoEntry",
    "VideoIndex",
    "VideoLoader",
    "VideoMix",
    "load_recipe",
    "read_index",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'videomix_dali' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
