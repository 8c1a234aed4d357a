"""videomix-dali: video decode, sampling, augmentation and VideoMix in one DALI pipeline."""

from .index import VideoEntry, VideoIndex, read_index
from .loader import VideoLoader
from .mix import VideoMix
from .recipes import Recipe, load_recipe

__version__ = "0.1.0"
__all__ = [
    "Recipe",
    "VideoEntry",
    "VideoIndex",
    "VideoLoader",
    "VideoMix",
    "load_recipe",
    "read_index",
]
