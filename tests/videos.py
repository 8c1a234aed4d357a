"""Small real test videos, encoded with PyAV (VP9, which both DALI backends decode, or H.264)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_video(
    path: Path,
    frames: np.ndarray,
    *,
    codec: str = "libvpx-vp9",
    fps: int = 25,
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
):
    """Encode ``frames`` (F, H, W, 3) uint8 RGB to ``path``; lossless yuv420p VP9 by default.

    ``gop``: a keyframe every ``gop`` frames (the encoder's default otherwise).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if gop is not None:  # a keyframe every ``gop`` frames
            stream.codec_context.gop_size = gop
        if codec == "libvpx-vp9":
            stream.options = {"lossless": "1", "deadline": "realtime", "cpu-used": "8"}
        elif codec == "libx264":
            stream.options = {"qp": "1"}  # near-lossless; qp 0 would be a profile NVDEC lacks
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_video(path: Path) -> np.ndarray:
    """Every frame of ``path`` as (F, H, W, 3) uint8 RGB, decoded by PyAV (FFmpeg)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def ramp_video(num_frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """Smooth frames whose content changes every frame, so frame indices are identifiable.

    Red follows the frame number, green a horizontal ramp, blue a vertical one plus a
    per-video offset.
    """
    t = np.arange(num_frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    red = np.broadcast_to(20 + 4 * t, (num_frames, height, width))  # up to 58 frames
    green = np.broadcast_to(30 + 180 * x / max(width - 1, 1), (num_frames, height, width))
    blue = np.broadcast_to(
        (40 + seed * 17 + 150 * y / max(height - 1, 1)) % 256, (num_frames, height, width)
    )
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)
