"""Damaged frame data: the decoder's view of a file, which the probe (demux only) lacks.

Two checks. :func:`verify_videos` is the loader's ``verify="decode"``: a one-time full decode
of every usable file (PyAV, the FFmpeg decoders), with the frame counts compared, cached by
path, size and mtime beside the probe's cache. After a batch failed in DALI,
:func:`~videomix_dali.graph.build.clip_decode_error` decodes each clip's input bytes alone with
the loader's own decoder, so the loader can tell which file broke the batch and why; the
messages it reports are cut to the decoder's own words here (:func:`decoder_message`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
from tqdm import tqdm

from ..cache import cache_dir, open_cached, write_atomic
from .cuts import CutIndex, block_counts, video_track
from .probe import VideoInfo, cache_key

VERIFY_MODES = (None, "decode")
_CACHE_NAME = "verify-v1.json"
# Lines of a DALI pipeline error that are DALI's, not the failing operator's.
_DALI_LINES = ("Critical error in pipeline:", "Current pipeline object is no longer valid.")


def decoder_message(exc: BaseException) -> str:
    """The failing operator's own message in a DALI pipeline error, e.g. "Failed to send packet
    to decoder: Invalid data found when processing input", without DALI's framing."""
    text = str(exc)
    _, found, after = text.partition("encountered:")
    lines = [line.strip() for line in (after if found else text).splitlines()]
    lines = [line for line in lines if line and line not in _DALI_LINES]
    return re.sub(r'^Assert on ".*?" failed: ', "", lines[0]) if lines else text.strip()


#: What CUDA says (runtime, driver, CuPy, torch) after an error that leaves the device unusable
#: for the process ("sticky"): a kernel fault, never a file's damaged frame data.
_STICKY_CUDA = re.compile(
    r"illegal (memory access|address|instruction)|unspecified launch failure|misaligned "
    r"address|device-side assert|ECC error|ECC_UNCORRECTABLE|hardware stack error|invalid "
    r"program counter|cudaErrorLaunchFailure|CUDA_ERROR_LAUNCH_FAILED",
    re.IGNORECASE,
)


def is_sticky_cuda_error(exc: BaseException | str) -> bool:
    """Whether ``exc`` (or its message) reports a CUDA fault that no file caused."""
    return bool(_STICKY_CUDA.search(str(exc)))


def decode_check(path: Path, info: VideoInfo) -> str | None:
    """Why ``path`` fails a full decode, or None.

    Reasons: the decoder rejects a frame's data; it decodes another number of frames than the
    probe counted; or (Matroska / WebM) the clusters hold another number of video frames than
    the demuxer delivers, or blocks of undeclared tracks: a damaged block header, after which
    the demuxer skips the rest of its cluster, so frame indices point at other frames.
    """
    decoded = packets = 0
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            for packet in container.demux(video=0):
                packets += packet.size > 0  # hidden frames (VP8 alt-ref) are packets too
                for _ in packet.decode():
                    decoded += 1
    except av.error.FFmpegError as exc:
        where = f", {exc.filename}" if exc.filename else ""
        return f"damaged frame data: decoding stops at frame {decoded} ({exc.strerror}{where})"
    if decoded != info.num_frames:
        return f"decodes {decoded} frames but the probe counted {info.num_frames}"
    if not isinstance(info.cuts, CutIndex):  # the block count is Matroska's
        return None
    blocks = block_counts(path, info.cuts)
    if isinstance(blocks, str):
        return f"damaged Matroska clusters: {blocks}"
    try:
        track, tracks = video_track(path, info.cuts)
    except (ValueError, IndexError) as exc:
        return f"damaged Matroska Tracks element: {exc}"
    undeclared = sum(n for t, n in blocks.items() if t not in tracks)
    if undeclared or blocks.get(track, 0) != packets:
        return (
            f"damaged block header: the clusters hold {blocks.get(track, 0)} video frames "
            f"(and {undeclared} of undeclared tracks) but the demuxer delivers "
            f"{packets} packets, so frame indices would point at other frames"
        )
    return None


def _read_cache(path: Path) -> dict[str, str | None]:
    """Cache key -> reason or None; {} where the file is missing or not of this layout."""
    try:
        with open_cached(path) as f:
            cache = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(cache, dict):
        return {}
    return {k: v for k, v in cache.items() if v is None or isinstance(v, str)}


def verify_videos(
    paths: Sequence[Path], infos: Sequence[VideoInfo], *, progress: bool = True
) -> list[str | None]:
    """:func:`decode_check` of every file (its probe result in ``infos``): the reason it is
    damaged or None, per path in order; cached by path, size and mtime."""
    cache_path = cache_dir() / _CACHE_NAME
    cache = _read_cache(cache_path)
    keys = [cache_key(path) for path in paths]
    todo = [i for i, key in enumerate(keys) if key not in cache]
    if todo:
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            results = pool.map(lambda i: decode_check(paths[i], infos[i]), todo)
            bar = tqdm(
                results, total=len(todo), desc="decoding videos", unit="file", disable=not progress
            )
            for i, reason in zip(todo, bar):
                cache[keys[i]] = reason
        write_atomic(cache_path, lambda f: f.write(json.dumps(cache).encode()))
    return [cache[key] for key in keys]
