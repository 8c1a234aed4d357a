"""Video metadata of one file (frame count, size, codec, pixel format, keyframe cuts).

Clip sampling needs each video's frame count before decode, so that the loader's own seeded
sampler can pick exact frame indices (DALI decodes the indices it is given). Size, codec and pixel
format decide whether a backend can decode the file at all (:func:`nvdec_unusable_reason`).
Many files, once: :func:`videomix_dali.source.probe_cache.probe_videos` (cached, split over ranks).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ..cache import file_key
from .cuts import CutIndex, cut_index, declared_size
from .remux import sample_table
from .table_store import TableRef, save_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the sampler needs to know about one video file."""

    num_frames: int
    height: int
    width: int
    codec: str  # FFmpeg codec name, e.g. "vp9", "h264"
    pix_fmt: str  # FFmpeg pixel format, e.g. "yuv420p", "yuv420p10le"
    bit_depth: int  # bits per luma sample
    chroma: str  # chroma subsampling J:a:b ("4:2:0", "4:4:4", "4:0:0" for grey) or "RGB"
    # where a clip's bytes come from: Matroska cut at keyframe clusters (videomix_dali.source.cuts),
    # or an MP4 / MOV's packets rewrapped as Matroska (videomix_dali.source.remux)
    cuts: CutIndex | TableRef | None = None
    uncut_reason: str | None = None  # why not: a clip then decodes the whole file from frame 0


class ProbeError(ValueError):
    """A file that cannot be used as a video: ``str()`` is "path: reason"."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def probe_video(path: str | Path) -> VideoInfo:
    """Count the frames of ``path``'s first video stream by demuxing (no decode); an MP4 /
    MOV's sample table is saved for its clips (:mod:`videomix_dali.source.table_store`)."""
    path = Path(path)
    size = regular_file(path).st_size
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.video:
                raise ProbeError(path, "no video stream")
            stream = container.streams.video[0]
            height, width = stream.codec_context.height, stream.codec_context.width
            codec = stream.codec_context.name
            fmt = stream.codec_context.format
            packets = [p for p in container.demux(stream) if p.size]
            num_frames = len(packets)
            if num_frames:
                _check_complete(path, size, container, stream, packets)
            if "matroska" in container.format.name and num_frames:
                order = presentation_order(packets, codec)
                if isinstance(order, str):
                    cuts = order
                else:  # hidden frames (VP8 alt-ref) are packets a decode never shows
                    display, safe = order
                    num_frames = int(np.count_nonzero(display >= 0))
                    positions = np.array([-1 if p.pos is None else p.pos for p in packets])
                    cuts = cut_index(path, positions, display, safe)
            else:
                kind = container.format.name.split(",")[0]
                cuts = f"{kind} container (only Matroska / WebM is cut at keyframes)"
    except av.error.FFmpegError as exc:
        raise ProbeError(path, f"not a readable video ({exc})") from exc
    if num_frames and "matroska" not in container.format.name:
        table = sample_table(path)
        if isinstance(table, str):
            cuts = f"{kind} container: its packets cannot be rewrapped ({table})"
        else:  # the frames a full decode shows (an edit list may hide some packets)
            num_frames = table.num_frames
            cuts = save_table(path, cache_key(path), table)
    if num_frames == 0 or height == 0 or width == 0:
        raise ProbeError(path, "video stream has no frames")
    if fmt is None:
        raise ProbeError(path, "pixel format unknown (FFmpeg could not parse the stream)")
    return VideoInfo(
        num_frames=num_frames,
        height=height,
        width=width,
        codec=codec,
        pix_fmt=fmt.name,
        bit_depth=fmt.components[0].bits,
        chroma=_chroma(fmt.name),
        cuts=None if isinstance(cuts, str) else cuts,
        uncut_reason=cuts if isinstance(cuts, str) else None,
    )


_FILE_TYPES = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def regular_file(path: Path) -> os.stat_result:
    """``path``'s status; ProbeError for anything but a regular file (``av.open`` would wait
    forever on a FIFO)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _FILE_TYPES if test(st.st_mode)), "unknown type")
        raise ProbeError(path, f"not a regular file ({kind})")
    return st


def presentation_order(packets: list, codec: str) -> tuple[np.ndarray, np.ndarray] | str:
    """(display index (P,) int64 of each packet in decode order, -1 for a hidden frame; safe
    (P,) bool: a shown keyframe from which decoding yields every frame shown at or after it
    and none before), or why the packets cannot be ordered.

    Display indices rank the shown packets' timestamps, as a decode presents them. A keyframe
    followed in decode order by a frame shown before it (open-GOP leading pictures, which
    reference the previous group) is not safe to start a clip at.
    """
    if any(p.pts is None for p in packets):
        return "packets without timestamps"
    pts = np.array([p.pts for p in packets], np.int64)
    shown = np.array([_shown(p, codec) for p in packets], bool)
    order = np.argsort(pts[shown], kind="stable")
    if np.any(np.diff(pts[shown][order]) == 0):
        return "two shown frames share a timestamp"
    display = np.full(len(pts), -1, np.int64)
    display[np.flatnonzero(shown)[order]] = np.arange(len(order))
    before = np.maximum.accumulate(np.concatenate([[-1], display[:-1]]))
    later = np.where(shown, display, np.iinfo(np.int64).max)
    after = np.minimum.accumulate(later[::-1])[::-1]
    keyframes = np.array([p.is_keyframe for p in packets], bool)
    return display, keyframes & shown & (before < display) & (after == display)


def _shown(packet, codec: str) -> bool:
    """Whether a decode shows the frame of ``packet``: VP8 marks hidden (alt-ref) frames in
    its frame tag (bit 4 of the first byte, show_frame); other codecs here show every packet."""
    return codec != "vp8" or bool(memoryview(packet)[0] & 0x10)


def cache_key(path: Path) -> str:
    """What identifies ``path``'s contents to the caches: path, size and mtime (ProbeError if
    not a regular file)."""
    return file_key(path, regular_file(path))


def _chroma(pix_fmt: str) -> str:
    """Chroma subsampling of an FFmpeg pixel format as J:a:b ("4:2:0"), "4:0:0" or "RGB"."""
    fmt = av.VideoFormat(pix_fmt, 16, 16)  # a size divisible by every subsampling factor
    if fmt.is_rgb:
        return "RGB"
    if sum(not c.is_alpha for c in fmt.components) == 1:
        return "4:0:0"
    step_x, step_y = 16 // fmt.chroma_width(), 16 // fmt.chroma_height()
    return f"4:{4 // step_x}:{4 // step_x if step_y == 1 else 0}"


#: What NVDEC takes, per FFmpeg codec name: (min width, min height, max width, max height) in
#: pixels. Source: NVIDIA Video Codec SDK, "NVDEC Video Decoder API Programming Guide", Sec. 2
#: "Video Decoder Capabilities" (hardware decoder capability table; maxima for Pascal and later,
#: H.264 at 8192x8192 only from Blackwell on), and ``cuvidGetDecoderCaps``' H.264 example in
#: ``cuviddec.h`` (shipped in DALI's wheel under ``nvidia/dali/include``). MPEG-4's maximum width
#: is the 2032 that drivers report (GStreamer's nvmpeg4videodec caps), below the guide's 2048.
#: DALI 2.4's GPU decoder (``frames_decoder_gpu.cc``, ``SelectVideoStream``) accepts only these
#: codecs: MJPEG is commented out there although the operator docs list it. AV1 needs an
#: Ampere GA10x, Ada or Blackwell GPU (not Turing, A100 or H100; NVDEC Application Note, Table 1).
NVDEC_SIZE_LIMITS: dict[str, tuple[int, int, int, int]] = {
    "h264": (48, 16, 4096, 4096),
    "hevc": (144, 144, 8192, 8192),
    "vp8": (48, 16, 4096, 4096),
    "vp9": (128, 128, 8192, 8192),
    "av1": (128, 128, 8192, 8192),
    "mpeg4": (48, 16, 2032, 1024),
}
_TO_GPU_FORMAT = "transcode with ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4"


def nvdec_unusable_reason(info: VideoInfo) -> str | None:
    """Why DALI 2.4's GPU decoder (NVDEC) cannot decode ``info``'s video; None if it can.

    Codec and size follow :data:`NVDEC_SIZE_LIMITS` (sizes are the display width x height in
    pixels). Pixel formats: DALI creates every NVDEC decoder with an NV12 (8-bit 4:2:0) output
    surface and converts that to RGB (``frames_decoder_gpu.cc``: ``OutputFormat`` left at 0 =
    ``cudaVideoSurfaceFormat_NV12``), so anything but 8-bit 4:2:0 is refused here even where the
    hardware decodes it (10-bit HEVC/VP9/AV1, 12-bit HEVC/VP9, 4:4:4 HEVC).
    """
    limits = NVDEC_SIZE_LIMITS.get(info.codec)
    if limits is None:
        return (
            f"codec {info.codec} cannot be decoded by DALI's GPU backend (H.264, HEVC, VP8, VP9, "
            f"AV1, MPEG-4 only); {_TO_GPU_FORMAT}"
        )
    if info.bit_depth != 8:
        return (
            f"{info.bit_depth}-bit video ({info.pix_fmt}) cannot be decoded by DALI's GPU backend "
            f"(8-bit only); {_TO_GPU_FORMAT}"
        )
    if info.chroma != "4:2:0":
        return (
            f"chroma {info.chroma} ({info.pix_fmt}) cannot be decoded by DALI's GPU backend "
            f"(4:2:0 only); {_TO_GPU_FORMAT}"
        )
    min_w, min_h, max_w, max_h = limits
    if info.width < min_w or info.height < min_h:
        return (
            f"{info.width}x{info.height} is below NVDEC's {info.codec} minimum of {min_w}x{min_h} "
            f"(width x height); {_TO_GPU_FORMAT} (H.264 takes 48x16 and up)"
        )
    if info.width > max_w or info.height > max_h:
        return (
            f"{info.width}x{info.height} is above NVDEC's {info.codec} maximum of {max_w}x{max_h} "
            "(width x height); scale it down (ffmpeg -vf scale=-2:720)"
        )
    return None


def _declared_duration(container, stream) -> tuple[float, bool] | None:
    """The video stream's declared duration in seconds, and whether it is the stream's own
    (an MP4 track's duration, a Matroska DURATION tag) rather than the whole container's."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base), True
    tag = next((v for k, v in stream.metadata.items() if k.upper().startswith("DURATION")), "")
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds), True
    except ValueError:
        pass
    if container.duration is not None:
        return container.duration / av.time_base, len(container.streams) == 1
    return None


def _check_complete(path: Path, size: int, container, stream, packets) -> None:
    """Video frames that stop short of the stream's declared duration: the file was cut short
    ("truncated"), or, in a file of full length, the demuxer stopped at damage ("damaged").

    Both are measured from the video stream's first timestamp, whatever other streams there
    are; only a duration declared for the whole container (which an audio stream may extend)
    gets 1 s of slack.
    """
    declared = _declared_duration(container, stream)
    pts = [p.pts for p in packets if p.pts is not None]
    if declared is None or not pts or stream.time_base is None:
        return
    duration, own = declared
    time_base = float(stream.time_base)
    start = min(pts) * time_base
    if duration > start:
        # FFmpeg's Matroska muxer writes the end time as the duration, MP4 and the Matroska
        # spec a length: read it as the shorter, so that no complete file is called short
        duration -= start
    frame = 1 / float(stream.average_rate) if stream.average_rate else 0.04
    present = (max(pts) - min(pts)) * time_base + frame
    if present >= duration - 2 * frame - (0 if own else 1):
        return
    what = f"the container declares {duration:.2f} s but its frames stop after {present:.2f} s"
    full = declared_size(path) if "matroska" in container.format.name else None
    if full is None:
        raise ProbeError(path, f"truncated or damaged: {what}")
    if full > size:
        raise ProbeError(path, f"truncated: {what}")
    stop = max((p.pos + p.size for p in packets if p.pos is not None and p.pos >= 0), default=0)
    raise ProbeError(
        path, f"damaged: {what} in a file of full length ({size} bytes, demuxed to byte {stop})"
    )
