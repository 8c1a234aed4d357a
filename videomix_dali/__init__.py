"""videomix-dali: video decode, sampling, augmentation and VideoMix in one DALI pipeline."""

from .index import VideoEntry, VideoIndex, read_index
from .loader import VideoLoader

__version__ = "0.1.0"
__all__ = ["VideoEntry", "VideoIndex", "VideoLoader", "read_index"]
