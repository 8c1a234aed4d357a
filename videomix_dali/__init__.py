"""videomix-dali: video decode, sampling, augmentation and VideoMix in one DALI pipeline."""

__version__ = "0.1.0"
