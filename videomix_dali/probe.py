"""Video metadata (frame count, height, width), read once per file and cached.

Clip sampling needs each video's frame count before decode, so that the loader's own seeded
sampler can pick exact frame indices (DALI decodes the indices it is given).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import av
from tqdm import tqdm


@dataclass(frozen=True)
class VideoInfo:
    """What the sampler needs to know about one video file."""

    num_frames: int
    height: int
    width: int
    codec: str  # FFmpeg codec name, e.g. "vp9", "h264"


class ProbeError(ValueError):
    """A file that cannot be used as a video: ``str()`` is "path: reason"."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def probe_video(path: str | Path) -> VideoInfo:
    """Count the frames of ``path``'s first video stream by demuxing (no decode)."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ProbeError(path, "no video stream")
            stream = container.streams.video[0]
            height, width = stream.codec_context.height, stream.codec_context.width
            codec = stream.codec_context.name
            packets = [p for p in container.demux(stream) if p.size]
            num_frames = len(packets)
            if num_frames and len(container.streams) == 1:
                _check_not_truncated(path, container, stream, packets)
    except av.error.FFmpegError as exc:
        raise ProbeError(path, f"not a readable video ({exc})") from exc
    if num_frames == 0 or height == 0 or width == 0:
        raise ProbeError(path, "video stream has no frames")
    return VideoInfo(num_frames=num_frames, height=height, width=width, codec=codec)


def _check_not_truncated(path: Path, container, stream, packets) -> None:
    """A video-only file whose frames stop well before its declared duration was cut short."""
    if container.duration is None or stream.time_base is None:
        return
    declared = container.duration / av.time_base
    pts = [p.pts for p in packets if p.pts is not None]
    if not pts:
        return
    frame = 1 / float(stream.average_rate) if stream.average_rate else 0.04
    present = (max(pts) - min(pts)) * float(stream.time_base) + frame
    if present < declared - 2 * frame:
        raise ProbeError(
            path,
            f"truncated: the container declares {declared:.2f} s but its frames stop "
            f"after {present:.2f} s",
        )


def _cache_key(path: Path) -> str:
    st = path.stat()
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "videomix_dali" / "probe-v2.json"


def probe_videos(
    paths: Sequence[Path], *, progress: bool = True, num_workers: int | None = None
) -> list[VideoInfo | ProbeError]:
    """Probe many files, reusing a cache keyed by path, size and mtime.

    Returns one ``VideoInfo`` or ``ProbeError`` per path, in order.
    """
    cache_path = _cache_file()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    keys = []
    for path in paths:
        try:
            keys.append(_cache_key(path))
        except OSError:
            keys.append(None)
    results: list[VideoInfo | ProbeError | None] = [None] * len(paths)
    todo = []
    for i, (path, key) in enumerate(zip(paths, keys)):
        if key is None:
            results[i] = ProbeError(path, "cannot stat file")
        elif key in cache:
            results[i] = VideoInfo(**cache[key])
        else:
            todo.append(i)

    def run(i: int) -> VideoInfo | ProbeError:
        try:
            return probe_video(paths[i])
        except ProbeError as exc:
            return exc
        except OSError as exc:
            return ProbeError(paths[i], str(exc.strerror or exc))

    if todo:
        workers = num_workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(workers) as pool:
            bar = tqdm(
                pool.map(run, todo),
                total=len(todo),
                desc="probing videos",
                unit="file",
                disable=not progress or len(todo) < 64,
            )
            for i, info in zip(todo, bar):
                results[i] = info
                if isinstance(info, VideoInfo):
                    cache[keys[i]] = asdict(info)
        _write_cache(cache_path, cache)
    return results  # type: ignore[return-value]


def _write_cache(cache_path: Path, cache: dict) -> None:
    """Atomic write, so concurrent ranks never read a half-written cache."""
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        suffix = hashlib.sha1(str(os.getpid()).encode()).hexdigest()[:8]
        tmp = cache_path.with_suffix(f".{suffix}.tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_path)
    except OSError:
        pass  # a read-only home only costs a re-probe next time
