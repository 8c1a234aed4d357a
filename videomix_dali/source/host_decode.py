"""Decoding on the host with PyAV (FFmpeg) for the codecs DALI's CPU build lacks.

DALI 2.4's CPU ``fn.decoders.video`` decodes VP8, VP9 and MJPEG only. For the other codecs the
CPU graph takes its frames from here: the same in-memory clip bytes the GPU decoder gets (a
Matroska file beginning at a safe keyframe, :mod:`videomix_dali.source.cuts` and
:mod:`videomix_dali.source.remux`), decoded in presentation order, the frames a clip asks for picked
out. A decode that ends before a requested frame is an error, never a padded clip.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import av
import numpy as np
from av.video.reformatter import VideoReformatter

#: Codecs DALI's CPU decoder takes (FFmpeg names); others decode here on the CPU.
DALI_CPU_CODECS = ("vp8", "vp9", "mjpeg")
# One colour converter per thread: a new one per frame (``frame.to_ndarray(format=...)``) sets
# up its scaler every time, which costs more than decoding the frame.
_local = threading.local()


class HostDecodeError(RuntimeError):
    """A clip's bytes that PyAV cannot decode to the frames asked for."""


def decode_clip(data: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Frames ``frames`` (T,) int (presentation-order indices, ascending, repeats allowed) of
    the in-memory file ``data`` (uint8 bytes) as (T, H, W, 3) uint8 RGB."""
    wanted = np.asarray(frames, np.int64)
    if wanted.size == 0 or (np.diff(wanted) < 0).any() or wanted[0] < 0:
        raise ValueError(f"frames={wanted.tolist()} must be ascending indices >= 0")
    last = int(wanted[-1])
    picked: dict[int, np.ndarray] = {}
    keep = set(wanted.tolist())
    decoded = 0
    try:
        with av.open(io.BytesIO(memoryview(data)), "r") as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # clips decode in parallel, one thread each
            for frame in container.decode(stream):
                if decoded in keep:
                    picked[decoded] = _to_rgb(frame)
                decoded += 1
                if decoded > last:
                    break
    except av.error.FFmpegError as exc:
        raise HostDecodeError(f"PyAV cannot decode the clip: {exc}") from exc
    if decoded <= last:
        raise HostDecodeError(
            f"the clip's bytes hold {decoded} frames, frame {last} was asked for (the probe "
            "and the file disagree)"
        )
    return np.stack([picked[int(i)] for i in wanted])


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """``frame`` as (H, W, 3) uint8 RGB, with this thread's converter."""
    if not hasattr(_local, "reformatter"):
        _local.reformatter = VideoReformatter()
    return _local.reformatter.reformat(frame, format="rgb24").to_ndarray()


class HostDecoder:
    """Decodes batches of clips on ``threads`` threads (FFmpeg releases the GIL while it
    decodes), a batch ahead: :meth:`submit` starts a batch, :meth:`result` waits for it."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="host-decode")

    def submit(self, clips: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[Future]:
        """Start decoding ``clips``, (bytes, frames) pairs."""
        return [self._pool.submit(decode_clip, data, frames) for data, frames in clips]

    @staticmethod
    def result(jobs: list[Future]) -> list[np.ndarray]:
        """The decoded clips of :meth:`submit`, in order (the first failure raised)."""
        return [job.result() for job in jobs]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
