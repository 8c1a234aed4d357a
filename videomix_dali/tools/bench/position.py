"""Does a clip's cost follow the clip or its position in the file?

For each video, two index sub-ranges of one clip span each (``(T - 1) * stride + 1``
frames): the first frames of the file and its last frames. One evaluation loader per side
decodes exactly that window (a centred window of the span's length is the whole range),
through the same pipeline as training. The rounds alternate between the sides; the report
gives the decode time per clip of each and their ratio (1.0: position costs nothing).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ...loading.videos import VideoLoader
from ...source.index import read_index
from ...source.probe import VideoInfo
from ...source.probe_cache import probe_videos
from .data import cut_frames, make_bench_data
from .report import write_json


def _index(
    path: Path, root: Path, videos: list[tuple[Path, int, int]], span: int, side: str
) -> Path:
    """A ``path label start end`` index (paths relative to ``root``) of one window per video:
    its first ``span`` frames, its last, or the window as far after the first keyframe as the
    last one is after the keyframe it decodes from (``side``: first, last, matched)."""
    lines = []
    for i, (video, num_frames, offset) in enumerate(videos):
        start = {"first": 0, "last": num_frames - span, "matched": offset}[side]
        lines.append(f"{video.resolve().relative_to(root)} {i % 2} {start} {start + span}")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_position_bench(
    videos: list[Path],
    work: Path,
    *,
    num_frames: int = 8,
    stride: int = 8,
    crop: int = 224,
    rounds: int = 3,
    threads: int = 2,
) -> dict[str, Any]:
    """Seconds per clip for windows at frame 0, at the end of each of ``videos``, and at the
    end's distance from its keyframe after frame 0 (the same decode work, early in the file)."""
    span = (num_frames - 1) * stride + 1
    infos = probe_videos(videos, progress=False)
    usable = [
        (v, i.num_frames, _offset(i, i.num_frames - span))
        for v, i in zip(videos, infos)
        if getattr(i, "num_frames", 0) >= 2 * span
    ]
    if len(usable) < 2:
        raise ValueError(f"need at least 2 videos of >= {2 * span} frames, got {len(usable)}")
    work.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.commonpath([v.resolve().parent for v, _, _ in usable]))
    loaders = {
        side: VideoLoader(
            _index(work / f"{side}.txt", root, usable, span, side),
            recipe="kinetics",
            device="cpu",
            train=False,
            batch_size=2,
            num_frames=num_frames,
            stride=stride,
            crop_size=crop,
            test_clips=1,
            test_crops=1,
            num_threads=threads,
            progress=False,
            root=root,
        )
        for side in ("first", "last", "matched")
    }
    seconds = {side: 0.0 for side in loaders}
    for _ in range(rounds):
        for side, loader in loaders.items():
            t0 = time.perf_counter()
            for _batch in loader:
                pass
            seconds[side] += time.perf_counter() - t0
    clips = rounds * len(usable)
    per_clip = {side: s / clips for side, s in seconds.items()}
    return {
        "videos": len(usable),
        "span_frames": span,
        "uncut": len(loaders["first"].uncut),
        "ms_per_clip_first": round(per_clip["first"] * 1000, 2),
        "ms_per_clip_last": round(per_clip["last"] * 1000, 2),
        "ms_per_clip_matched": round(per_clip["matched"] * 1000, 2),
        "last_over_first": round(per_clip["last"] / per_clip["first"], 3),
        "last_over_matched": round(per_clip["last"] / per_clip["matched"], 3),
    }


def _offset(info: VideoInfo, start: int) -> int:
    """Frames from the keyframe a clip starting at ``start`` decodes from to ``start`` (0 for a
    file that cannot be cut: it decodes from frame 0)."""
    keyframes = (0,) if info.cuts is None else cut_frames(info.cuts)
    return start - max(k for k in keyframes if k <= start)


def run_positions(
    data: str,
    *,
    bench_root: str | Path,
    work: Path,
    num_frames: int,
    stride: int,
    crop: int,
    rounds: int,
    threads: int,
    json_path: str | Path | None = None,
) -> dict[str, Any]:
    """:func:`run_position_bench` on the bench corpus' 10-s and 30-s videos (``data="bench"``)
    or on the videos of one folder / index; prints a table, optionally writes the JSON."""
    if data == "bench":
        root = make_bench_data(bench_root)
        sets = {"10-s videos": root / "train", "30-s videos": root / "long"}
    else:
        sets = {str(data): Path(data)}
    report: dict[str, Any] = {"num_frames": num_frames, "stride": stride, "results": {}}
    for name, source in sets.items():
        videos = [e.path for e in read_index(source).entries]
        result = run_position_bench(
            videos, work / name.replace(" ", "-"), num_frames=num_frames, stride=stride,
            crop=crop, rounds=rounds, threads=threads,
        )  # fmt: skip
        report["results"][name] = result
        print(
            f"{name:>14}: window at frame 0 {result['ms_per_clip_first']:7.1f} ms/clip, "
            f"last {result['span_frames']} frames {result['ms_per_clip_last']:7.1f} ms/clip, "
            f"ratio {result['last_over_first']:.2f}; same distance after an early keyframe "
            f"{result['ms_per_clip_matched']:7.1f} ms/clip, ratio "
            f"{result['last_over_matched']:.2f} ({result['videos']} videos, "
            f"{result['uncut']} uncut)"
        )
    if json_path:
        write_json(report, json_path)
    return report
