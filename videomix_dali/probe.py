"""Video metadata (frame count, size, codec, pixel format, keyframe cuts), read once per file
and cached.

Clip sampling needs each video's frame count before decode, so that the loader's own seeded
sampler can pick exact frame indices (DALI decodes the indices it is given). Size, codec and pixel
format decide whether a backend can decode the file at all (:func:`nvdec_unusable_reason`).

The cache, ``$XDG_CACHE_HOME/videomix_dali/probe-v5.npz``, is keyed by path, size and mtime and
holds plain NumPy arrays (loaded without pickle), which stay fast to load at dataset scale
(docs/benchmarks.md, "Start-up"). Under ``torch.distributed`` the ranks split the probing of the
files not cached yet and share their results through per-rank files beside the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import torch
from tqdm import tqdm

from .cuts import CutIndex, cut_index, declared_size
from .runtime import rank_and_world_size

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
    cuts: CutIndex | None = None  # where the file can be cut at keyframes (videomix_dali.cuts)
    uncut_reason: str | None = None  # why not: a clip then decodes the whole file from frame 0


class ProbeError(ValueError):
    """A file that cannot be used as a video: ``str()`` is "path: reason"."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def probe_video(path: str | Path) -> VideoInfo:
    """Count the frames of ``path``'s first video stream by demuxing (no decode)."""
    path = Path(path)
    size = _regular_file(path).st_size
    try:
        with av.open(str(path)) as container:
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
            if "matroska" in container.format.name:
                positions = np.array([-1 if p.pos is None else p.pos for p in packets], np.int64)
                keyframes = np.array([p.is_keyframe for p in packets], bool)
                cuts = cut_index(path, positions, keyframes) if num_frames else "no frames"
            else:
                kind = container.format.name.split(",")[0]
                cuts = f"{kind} container (only Matroska / WebM is cut at keyframes)"
    except av.error.FFmpegError as exc:
        raise ProbeError(path, f"not a readable video ({exc})") from exc
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
        cuts=cuts if isinstance(cuts, CutIndex) else None,
        uncut_reason=None if isinstance(cuts, CutIndex) else cuts,
    )


_FILE_TYPES = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def _regular_file(path: Path) -> os.stat_result:
    """``path``'s status; ProbeError for anything but a regular file (``av.open`` would wait
    forever on a FIFO)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _FILE_TYPES if test(st.st_mode)), "unknown type")
        raise ProbeError(path, f"not a regular file ({kind})")
    return st


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


def _cache_key(path: Path) -> str:
    st = _regular_file(path)
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


#: The cache's layout (:func:`_encode`); bump it with any change to the arrays.
_CACHE_VERSION = 5
#: ``rows`` columns: num_frames, height, width, bit_depth, the number of cut points (-1: no
#: CutIndex), the cuts' end, then the cuts' three header byte ranges (EBML header, Info, Tracks).
_ROW = 12
#: ``codes`` columns are indices into ``strings`` (-1: None): these fields, then an error reason.
_STRINGS = ("codec", "pix_fmt", "chroma", "uncut_reason")
_LAYOUT = {  # array name: (dtype, number of dimensions)
    "version": (np.int64, 1),
    "keys": (np.uint8, 1),
    "strings": (np.uint8, 1),
    "rows": (np.int64, 2),
    "codes": (np.int32, 2),
    "starts": (np.int64, 1),
    "frames": (np.int64, 1),
}


def _cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "videomix_dali" / f"probe-v{_CACHE_VERSION}.npz"


def _blob(strings: Iterable[str]) -> np.ndarray:
    """``strings``, each ended by NUL, as UTF-8 bytes (paths that are not UTF-8 included)."""
    text = "".join(f"{s}\0" for s in strings)
    return np.frombuffer(text.encode("utf-8", "surrogateescape"), np.uint8)


def _unblob(blob: np.ndarray) -> list[str]:
    return blob.tobytes().decode("utf-8", "surrogateescape").split("\0")[:-1]


def _encode(entries: Mapping[str, VideoInfo | str]) -> dict[str, np.ndarray]:
    """Column arrays of ``entries`` (cache key -> probe result or error reason)."""
    strings: dict[str, int] = {}

    def code(s: str | None) -> int:
        return -1 if s is None else strings.setdefault(s, len(strings))

    rows, codes, starts, frames = [], [], [], []
    for entry in entries.values():
        if isinstance(entry, str):
            rows.append([0] * _ROW)
            codes.append([-1] * len(_STRINGS) + [code(entry)])
            continue
        cuts = entry.cuts
        row = [entry.num_frames, entry.height, entry.width, entry.bit_depth, -1, 0] + [0] * 6
        if cuts is not None:
            row[4:] = [len(cuts.starts), cuts.end, *(x for r in cuts.header for x in r)]
            starts += cuts.starts
            frames += cuts.frames
        rows.append(row)
        codes.append([code(getattr(entry, name)) for name in _STRINGS] + [-1])
    return {
        "version": np.array([_CACHE_VERSION], np.int64),
        "keys": _blob(entries),
        "strings": _blob(strings),
        "rows": np.array(rows, np.int64).reshape(-1, _ROW),
        "codes": np.array(codes, np.int32).reshape(-1, len(_STRINGS) + 1),
        "starts": np.array(starts, np.int64),
        "frames": np.array(frames, np.int64),
    }


def _decode(arrays: Mapping[str, object]) -> dict[str, VideoInfo | str]:
    """The entries of :func:`_encode`'s arrays; ValueError saying what does not fit the layout."""
    for name, (dtype, ndim) in _LAYOUT.items():
        a = arrays.get(name)
        if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != ndim:
            raise ValueError(f"no {ndim}-d {np.dtype(dtype)} array {name!r}")
    if arrays["version"].tolist() != [_CACHE_VERSION]:
        raise ValueError(f"layout version {arrays['version'].tolist()}, not [{_CACHE_VERSION}]")
    keys, strings = _unblob(arrays["keys"]), _unblob(arrays["strings"])
    rows, codes, starts, frames = (arrays[k] for k in ("rows", "codes", "starts", "frames"))
    if rows.shape != (len(keys), _ROW) or codes.shape != (len(keys), len(_STRINGS) + 1):
        raise ValueError(f"{len(keys)} keys but rows {rows.shape} and codes {codes.shape}")
    if codes.size and not -1 <= codes.min() <= codes.max() < len(strings):
        raise ValueError(f"string codes outside [-1, {len(strings)})")
    info = codes[:, -1] < 0
    if (codes[info, :3] < 0).any() or (rows[info, 4] < -1).any():
        raise ValueError("an entry without codec, pixel format or chroma, or a bad cut count")
    if np.maximum(rows[info, 4], 0).sum() != len(starts) or len(frames) != len(starts):
        raise ValueError("cut point counts do not match the cut point arrays")
    text = np.array([*strings, None], object)  # code -1 -> None
    codec, pix_fmt, chroma, uncut, error = (text[codes[:, j]].tolist() for j in range(5))
    ends = np.cumsum(np.maximum(rows[:, 4], 0) * info).tolist()
    starts, frames = starts.tolist(), frames.tolist()
    out: dict[str, VideoInfo | str] = {}
    for i, (key, row) in enumerate(zip(keys, rows.tolist())):
        if error[i] is not None:
            out[key] = error[i]
            continue
        n, h = row[4], row[6:]
        cuts = None
        if n >= 0:
            a, b = ends[i] - n, ends[i]
            header = ((h[0], h[1]), (h[2], h[3]), (h[4], h[5]))
            cuts = CutIndex(header, tuple(starts[a:b]), tuple(frames[a:b]), row[5])
        out[key] = VideoInfo(
            row[0], row[1], row[2], codec[i], pix_fmt[i], row[3], chroma[i], cuts, uncut[i]
        )
    return out


def _read_table(path: Path) -> dict[str, VideoInfo | str]:
    """The entries of a cache (or shard) file; {} where there is none, and where it is not
    the current layout (logged, naming the file; the next write replaces it)."""
    try:
        with open(path, "rb") as f:
            if not zipfile.is_zipfile(f):
                raise ValueError("not an .npz archive")
            with np.load(f, allow_pickle=False) as loaded:
                return _decode({name: loaded[name] for name in loaded.files})
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        log.warning(
            "ignoring the probe cache %s, which it cannot use (%s); it is rebuilt", path, exc
        )
        return {}


def _write_table(path: Path, entries: Mapping[str, VideoInfo | str]) -> bool:
    """Write ``entries`` as a cache (or shard) file; False where it cannot."""
    return _write_atomic(path, lambda f: np.savez(f, **_encode(entries)))


def _write_cache(cache_path: Path, cache: dict) -> None:
    """Write a JSON cache beside the probe's (verify.py's decode checks)."""
    _write_atomic(cache_path, lambda f: f.write(json.dumps(cache).encode()))


def _write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> bool:
    """Write ``path`` through a temporary file, so that readers never see half a file; False
    where it cannot (a read-only cache folder only costs a re-probe next time)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
        tmp.replace(path)
        return True
    except OSError:
        _remove([tmp])
        return False


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def probe_videos(
    paths: Sequence[Path],
    *,
    progress: bool = True,
    num_workers: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    timeout: float = 1800.0,
) -> list[VideoInfo | ProbeError]:
    """Probe many files, reusing a cache keyed by path, size and mtime.

    Returns one ``VideoInfo`` or ``ProbeError`` per path, in order. With ``world_size`` > 1
    every rank calls this with the same ``paths``: rank ``r`` probes files ``r::world_size`` of
    those not cached, and the ranks exchange their results through files beside the cache,
    meeting at ``torch.distributed.barrier()`` where a process group of that size is
    initialised, else waiting up to ``timeout`` seconds for the other ranks' files (the files
    of a rank that never comes are probed here, with a warning).
    """
    cache_path = _cache_file()
    cache = _read_table(cache_path)
    keys: list[str] = []
    results: list[VideoInfo | ProbeError | None] = []
    for path in paths:
        key, result = "", None
        try:
            key = _cache_key(path)
        except ProbeError as exc:
            result = exc
        except OSError:
            result = ProbeError(path, "cannot stat file")
        cached = cache.get(key)  # the cache holds no errors: they are probed again
        keys.append(key)
        results.append(result or (cached if isinstance(cached, VideoInfo) else None))
    todo = [i for i, result in enumerate(results) if result is None]
    in_group = world_size > 1 and rank_and_world_size() == (rank, world_size)

    def probe(part: Sequence[int], desc: str) -> dict[str, VideoInfo | str]:
        found = _probe_all([paths[i] for i in part], desc, progress, num_workers)
        return dict(zip([keys[i] for i in part], found))

    found: dict[str, VideoInfo | str] = {}
    if world_size > 1 and (todo or in_group):  # a group's ranks all meet, cached or not
        found = _probe_shared(
            [keys[i] for i in todo],
            lambda part: probe([todo[i] for i in part], f"probing videos (rank {rank})"),
            rank,
            world_size,
            in_group,
            timeout,
        )
    rest = [i for i in todo if keys[i] not in found]
    if rest:
        if world_size > 1:
            log.warning("%d files were not probed by another rank: probing them here", len(rest))
        found.update(probe(rest, "probing videos"))
    for i in todo:
        result = found[keys[i]]
        results[i] = ProbeError(paths[i], result) if isinstance(result, str) else result
    if todo and (rank == 0 or rest):
        cache.update((k, v) for k, v in found.items() if isinstance(v, VideoInfo))
        _write_table(cache_path, cache)
    return results  # type: ignore[return-value]


def _probe_all(
    paths: Sequence[Path], desc: str, progress: bool, num_workers: int | None
) -> list[VideoInfo | str]:
    """``probe_video`` of each path, or why it failed, in threads, with a progress bar."""

    def run(path: Path) -> VideoInfo | str:
        try:
            return probe_video(path)
        except ProbeError as exc:
            return exc.reason
        except OSError as exc:
            return str(exc.strerror or exc)

    workers = num_workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers, thread_name_prefix=desc) as pool:
        bar = tqdm(
            pool.map(run, paths),
            total=len(paths),
            desc=desc,
            unit="file",
            disable=not progress or len(paths) < 64,
        )
        return list(bar)


def _probe_shared(
    keys: list[str],
    probe: Callable[[range], dict[str, VideoInfo | str]],
    rank: int,
    world_size: int,
    in_group: bool,
    timeout: float,
) -> dict[str, VideoInfo | str]:
    """Probe this rank's part of the uncached files (``keys``), write it to a shard file and read
    the other ranks' shards: the results that came, by key.

    The shards are named by the files (so every rank of one start finds the same names). In a
    process group the ranks meet at barriers and each removes its own shard once all have read
    them; without one, each waits for the others' shards and marks when it has read them, and
    the last to do so removes them all.
    """
    files = "\n".join([str(world_size), *keys]).encode("utf-8", "surrogateescape")
    stem = f"probe-v{_CACHE_VERSION}.{hashlib.sha1(files).hexdigest()[:16]}"
    folder = _cache_file().parent

    def shard(r: int, kind: str = "npz") -> Path:
        return folder / f"{stem}.rank{r}of{world_size}.{kind}"

    _remove([shard(rank, "done")])  # left by a start that stopped half-way
    found = probe(range(rank, len(keys), world_size))
    shared = _write_table(shard(rank), found)
    others = [shard(r) for r in range(world_size) if r != rank]
    if in_group:
        torch.distributed.barrier()
    elif shared:
        _wait_for(others, timeout)
    for path in others:
        found.update(_read_table(path))
    if in_group:
        torch.distributed.barrier()
        _remove([shard(rank)])
    elif shared:
        with contextlib.suppress(OSError):
            shard(rank, "done").touch()
        done = [shard(r, "done") for r in range(world_size)]
        if all(p.exists() for p in done):
            _remove(done + [shard(r) for r in range(world_size)])
    return found


def _wait_for(paths: list[Path], timeout: float) -> None:
    """Wait until every one of ``paths`` exists, up to ``timeout`` seconds (then log which not)."""
    deadline = time.monotonic() + timeout
    while paths := [p for p in paths if not p.exists()]:
        if time.monotonic() > deadline:
            log.warning(
                "waited %.0f s for the probe results of other ranks, which did not come: %s",
                timeout,
                ", ".join(map(str, paths)),
            )
            return
        time.sleep(0.1)
