"""``videomix-dali bench-data``: a Kinetics-like corpus for the bench, from the demo renderer.

Kinetics-400 clips are 10 s at 25-30 fps, about 340x256 after the usual short-side-256
resize, with keyframes seconds apart. This corpus has that shape: the demo's moving disc over
a striped scene (:mod:`videomix_dali.demo`), 340x256, 30 fps, 300 frames, a keyframe every 150
frames, VP9 in WebM (DALI's CPU decoder) and, with ``h264=True``, H.264 copies in MP4 as
datasets ship (x264's defaults: B-frames), one folder per class. A few 30-s videos (900
frames) in ``long/`` and the index files beside them measure how a clip's cost depends on
its position in the file.

Layout under ``root``::

    train/<class>/<id>.webm              10-s videos (folder per class: pass root/train)
    long/<class>/<id>.webm               30-s videos
    <split>_head.txt, <split>_tail.txt   file lists 'path label start end': the first / the last
                                         ``window`` frames of every video of <split>
    h264/...                             the same with .mp4 files (with h264=True)
    bench-data.json                      the parameters (a marker: other parameters refuse)

Resumable: every video is written to a temporary name and renamed when complete, so a rerun
skips finished files and redoes only the missing ones.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ...source.cuts import CutIndex
from ...source.probe import probe_video
from ...source.table_store import TableRef
from ..demo import DIRECTIONS, assign_scenes, encode_frames, render_frames, video_spec

__all__ = ["BenchData", "bench_split", "make_bench_data"]

_MARKER = "bench-data.json"
_GENERATOR = "videomix_dali.bench.data"  # the corpus format's name (its first module path)
_VERSION = 1
_SPLITS = ("train", "long")
_FORMATS = {"webm": "libvpx-vp9", "mp4": "libx264"}  # extension -> encoder


@dataclass(frozen=True)
class BenchData:
    """The corpus' parameters; the defaults are the Kinetics-like corpus of the bench.

    ``size`` is (height, width) in pixels, ``fps`` in frames/s, ``frames`` / ``long_frames``
    / ``gop`` / ``window`` in frames; ``videos_per_class`` 10-s and ``long_per_class`` 30-s
    videos are made for each of ``classes`` classes.
    """

    classes: int = 8
    videos_per_class: int = 16
    long_per_class: int = 1
    frames: int = 300
    long_frames: int = 900
    size: tuple[int, int] = (256, 340)
    fps: int = 30
    gop: int = 150
    window: int = 57  # the span of a Kinetics 8x8 clip: (8 - 1) * 8 + 1 frames
    h264: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.classes <= len(DIRECTIONS):
            raise ValueError(f"classes={self.classes} must be in [2, {len(DIRECTIONS)}]")
        for name in ("videos_per_class", "fps", "gop", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.long_per_class < 0:
            raise ValueError(f"long_per_class={self.long_per_class} must be >= 0")
        for name in ("frames", "long_frames"):
            if not self.window <= getattr(self, name):
                raise ValueError(f"{name}={getattr(self, name)} must be >= window={self.window}")
        h, w = self.size
        if h < 32 or w < 32 or h % 4 or w % 4:
            raise ValueError(f"size={self.size} must be (height, width), multiples of 4, >= 32")

    def to_json(self) -> dict:
        return {**asdict(self), "size": list(self.size)}


def _videos(spec: BenchData) -> list[tuple[str, int, int, int]]:
    """Every video as (split, class id, number within the class, frames)."""
    per = {
        "train": (spec.videos_per_class, spec.frames),
        "long": (spec.long_per_class, spec.long_frames),
    }
    return [
        (split, c, i, per[split][1])
        for split in _SPLITS
        for c in range(spec.classes)
        for i in range(per[split][0])
    ]


def _classes(spec: BenchData) -> list[str]:
    return sorted(list(DIRECTIONS)[: spec.classes])


def _rel(spec: BenchData, split: str, cls: int, i: int, ext: str) -> str:
    """Path of a video relative to root (the H.264 copies under ``h264/``)."""
    stem = f"{split}{cls:02d}{i:04d}"
    rel = f"{split}/{_classes(spec)[cls]}/{stem}.{ext}"
    return rel if ext == "webm" else f"h264/{rel}"


def _write_video(root: str, spec: BenchData, split: str, cls: int, i: int, frames: int) -> None:
    """Render one video and encode the formats not written yet (atomically: a temporary name,
    renamed when complete)."""
    exts = ["webm", "mp4"] if spec.h264 else ["webm"]
    todo = [e for e in exts if not (Path(root) / _rel(spec, split, cls, i, e)).is_file()]
    if not todo:
        return
    s_idx = _SPLITS.index(split)
    per_class = spec.videos_per_class if split == "train" else spec.long_per_class
    scenes = assign_scenes(
        np.random.default_rng([spec.seed, 0, s_idx]), spec.classes, per_class, None
    )
    name = _classes(spec)[cls]
    rng = np.random.default_rng([spec.seed, 1, s_idx, cls, i])
    video = video_spec(rng, cls, DIRECTIONS[name], scenes[cls][i], spec.classes, spec.size)
    pixels = render_frames(video, frames, spec.size)
    for ext in todo:
        path = Path(root) / _rel(spec, split, cls, i, ext)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.part.{ext}")
        try:
            encode_frames(tmp, pixels, spec.fps, _FORMATS[ext], gop=spec.gop)
            _check_cuts(tmp, frames, spec.gop)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _check_cuts(path: Path, frames: int, gop: int) -> None:
    """RuntimeError unless ``path`` has ``frames`` frames and can be cut at every keyframe.

    FFmpeg's Matroska muxer starts a cluster at a keyframe only once the current cluster holds
    more than 4 KiB, so very small or very static videos are cut less often than ``gop``.
    """
    info = probe_video(path)
    want = tuple(range(0, frames, gop))
    cuts = None if info.cuts is None else cut_frames(info.cuts)
    if info.num_frames != frames or cuts != want:
        raise RuntimeError(
            f"{path}: {info.num_frames} frames cut at {cuts or info.uncut_reason}, expected "
            f"{frames} frames cut at {want} (clusters under 4 KiB? use a larger size or gop)"
        )


def cut_frames(cuts: CutIndex | TableRef) -> tuple[int, ...]:
    """The frame indices a clip of a file can start decoding at (its safe keyframes)."""
    if isinstance(cuts, CutIndex):
        return cuts.frames
    table = cuts.load()
    return tuple(int(d) for d in table.display[table.safe])


def _write_windows(root: Path, spec: BenchData) -> None:
    """``<split>_head.txt`` and ``<split>_tail.txt`` (and their twins under ``h264/``)."""
    for ext, out in (("webm", root), ("mp4", root / "h264"))[: 2 if spec.h264 else 1]:
        for split in _SPLITS:
            for part in ("head", "tail"):
                lines = []
                for _split, c, i, n in (v for v in _videos(spec) if v[0] == split):
                    start = 0 if part == "head" else n - spec.window
                    rel = Path(_rel(spec, split, c, i, ext)).relative_to(out.relative_to(root))
                    lines.append(f"{rel.as_posix()} {c} {start} {start + spec.window}\n")
                _write_text(out / f"{split}_{part}.txt", "".join(lines))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_marker(root: Path) -> dict | None:
    try:
        meta = json.loads((root / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("generator") == _GENERATOR else None


def make_bench_data(
    root: str | os.PathLike,
    spec: BenchData | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write (or complete) the bench corpus ``spec`` under ``root`` and return ``root``.

    ``workers`` processes (default: the CPU cores) render and encode one video each at a
    time. Finished files are kept, so an interrupted run resumes where it stopped. H.264
    copies already there are kept (and indexed) when ``spec.h264`` is False. A ``root`` made
    with other parameters, or a non-empty folder that is not a corpus, is refused.
    """
    from .machine import cpu_cores

    spec = spec or BenchData()
    root = Path(root)
    old = _read_marker(root)
    if old is not None:
        if old.get("version") != _VERSION or {**old["params"], "h264": spec.h264} != spec.to_json():
            raise ValueError(
                f"{root} holds a bench corpus made with other parameters ({old['params']}); "
                "pass another folder or delete it"
            )
        spec = replace(spec, h264=spec.h264 or bool(old["params"]["h264"]))
    elif root.is_dir() and any(root.iterdir()):
        raise ValueError(f"{root} is not empty and not a bench corpus; pass another folder")
    root.mkdir(parents=True, exist_ok=True)
    marker = {"generator": _GENERATOR, "version": _VERSION, "params": spec.to_json()}
    _write_text(root / _MARKER, json.dumps(marker, indent=1) + "\n")
    videos = _videos(spec)
    with (
        ProcessPoolExecutor(workers or cpu_cores()) as pool,
        tqdm(total=len(videos), desc="bench corpus", unit="video", disable=not progress) as bar,
    ):
        for job in as_completed([pool.submit(_write_video, str(root), spec, *v) for v in videos]):
            job.result()
            bar.update()
    _write_windows(root, spec)
    return root


def bench_split(root: str | os.PathLike, device: str, spec: BenchData | None = None) -> Path:
    """The folder of 10-s videos a bench on ``device`` reads (the H.264 copies on the GPU),
    making or completing the corpus ``spec`` (default :class:`BenchData`) first."""
    spec = spec or BenchData(h264=device == "gpu")
    if device == "gpu" and not spec.h264:
        raise ValueError("device='gpu' reads the H.264 copies: pass a spec with h264=True")
    root = make_bench_data(root, spec)
    return root / "h264" / "train" if device == "gpu" else root / "train"
