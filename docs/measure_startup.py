"""Start-up at dataset scale: the figures of docs/benchmarks.md, "Start-up".

    python docs/measure_startup.py --src data/bench/train --dst /tmp/startup --files 10000

Makes a ``--files``-video folder-per-class index by copying the Kinetics-like bench corpus
(``videomix-dali bench-data``: 340x256, 300 frames, a keyframe every 150) under distinct names,
then times, each with an empty ("cold") and then a filled ("warm") probe cache: the probe alone,
one process and two ranks (a gloo process group, so they meet at a barrier); and
``VideoLoader(...)`` construction to its first batch. Last, the cache format: loading 240k
synthetic entries (2-20 keyframe cut points each) from JSON (the v4 layout) and from the v5 .npz.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch.distributed as dist
import torch.multiprocessing as mp

from videomix_dali import VideoLoader
from videomix_dali.source.cuts import CutIndex
from videomix_dali.source.probe import VideoInfo
from videomix_dali.source.probe_cache import (
    _decode,
    _encode,
    _read_table,
    _write_table,
    cache_file,
    probe_videos,
)


def make_corpus(src: Path, dst: Path, files: int) -> list[Path]:
    """``files`` copies of ``src``'s videos under ``dst/<class>/``, round-robin over its classes."""
    sources = sorted(src.rglob("*.webm"))
    paths = []
    for i in range(files):
        source = sources[i % len(sources)]
        path = dst / source.parent.name / f"{source.stem}-{i:06d}.webm"
        paths.append(path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)
    return sorted(paths)


def fresh_cache() -> Path:
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="startup-cache-")
    return cache_file()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def first_batch(dst: Path) -> None:
    loader = VideoLoader(
        dst,
        recipe="kinetics",
        device="cpu",
        batch_size=8,
        num_frames=8,
        stride=8,
        crop_size=224,
        progress=False,
    )
    next(iter(loader))


def rank_main(rank: int, world: int, paths: list[Path], cache_home: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29517", XDG_CACHE_HOME=cache_home)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    times = []
    for _ in ("cold", "warm"):
        dist.barrier()
        times.append(
            timed(lambda: probe_videos(paths, progress=False, rank=rank, world_size=world))
        )
    Path(out, f"rank{rank}.json").write_text(json.dumps(times))
    dist.destroy_process_group()


def two_ranks(paths: list[Path]) -> tuple[float, float]:
    """(cold, warm) seconds of the slower of two ranks probing ``paths`` together."""
    out = tempfile.mkdtemp(prefix="startup-ranks-")
    mp.spawn(rank_main, args=(2, paths, tempfile.mkdtemp(prefix="startup-cache-"), out), nprocs=2)
    per_rank = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in (0, 1)]
    cold, warm = (max(t) for t in zip(*per_rank))
    return cold, warm


def synthetic(n: int) -> dict[str, VideoInfo]:
    rng = np.random.default_rng(0)
    entries = {}
    for i in range(n):
        k = int(rng.integers(2, 21))
        starts = tuple(int(x) for x in np.cumsum(rng.integers(1000, 90000, k)) + 700)
        cuts = CutIndex(((0, 40), (52, 300), (310, 650)), starts, tuple(range(0, 30 * k, 30)), 1)
        key = f"/data/kinetics400/train/class_{i % 400:03d}/{i:07d}_000084_000094.webm|{i}|{i}"
        entries[key] = VideoInfo(300, 256, 340, "vp9", "yuv420p", 8, "4:2:0", cuts, None)
    return entries


def formats(n: int) -> dict[str, float]:
    """Seconds to load ``n`` synthetic entries into VideoInfo objects: JSON (v4) and .npz (v5)."""
    entries = synthetic(n)
    folder = Path(tempfile.mkdtemp(prefix="startup-format-"))

    def to_json(v: VideoInfo) -> dict:
        c = v.cuts
        return {**asdict(v), "cuts": [[list(r) for r in c.header], c.starts, c.frames, c.end]}

    def from_json(d: dict) -> VideoInfo:
        h, s, f, e = d["cuts"]
        cuts = CutIndex(tuple(tuple(r) for r in h), tuple(s), tuple(f), e)
        return VideoInfo(**{**d, "cuts": cuts})

    (folder / "v4.json").write_text(json.dumps({k: to_json(v) for k, v in entries.items()}))
    write_npz = timed(lambda: _write_table(folder / "v5.npz", entries))
    load_json = timed(
        lambda: {k: from_json(v) for k, v in json.loads((folder / "v4.json").read_text()).items()}
    )
    load_npz = timed(lambda: _read_table(folder / "v5.npz"))
    assert _decode(_encode(entries)) == entries
    return {
        "json_mb": (folder / "v4.json").stat().st_size / 1e6,
        "npz_mb": (folder / "v5.npz").stat().st_size / 1e6,
        "load_json_s": load_json,
        "load_npz_s": load_npz,
        "write_npz_s": write_npz,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", type=Path, default=Path("data/bench/train"))
    p.add_argument("--dst", type=Path, default=Path("/tmp/startup"))
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--synthetic", type=int, default=240_000)
    args = p.parse_args()
    result: dict[str, object] = {"load_average_at_start": os.getloadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="startup-") as scratch:
        tempfile.tempdir = scratch  # the caches and tables below, removed at the end
        t = time.perf_counter()
        paths = make_corpus(args.src, args.dst, args.files)
        result["copy_s"] = time.perf_counter() - t
        cache = fresh_cache()
        result["probe_cold_s"] = timed(lambda: probe_videos(paths, progress=False))
        result["probe_warm_s"] = timed(lambda: probe_videos(paths, progress=False))
        result["cache_mb"] = cache.stat().st_size / 1e6
        result["cache_load_s"] = timed(lambda: _read_table(cache))
        result["probe_cold_2ranks_s"], result["probe_warm_2ranks_s"] = two_ranks(paths)
        fresh_cache()
        result["loader_first_batch_cold_s"] = timed(lambda: first_batch(args.dst))
        result["loader_first_batch_warm_s"] = timed(lambda: first_batch(args.dst))
        result["formats"] = formats(args.synthetic)
        result["load_average_at_end"] = os.getloadavg()
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
