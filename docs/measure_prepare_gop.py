"""Measure the keyframe interval of ``videomix-dali prepare`` (README, "Preparing a dataset").

Renders Kinetics-like sources (340x256, 30 fps, 300 frames, a keyframe every 150 frames: a
panning textured scene), prepares them at several keyframe intervals and measures the CPU time
per clip of DALI CPU decode of 8x8 windows (8 frames, stride 8) through ``VideoLoader``: at
frame 0, in the last 57 frames (index sub-ranges) and at random.
Run: ``python docs/measure_prepare_gop.py WORKDIR``.
"""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videomix_dali import VideoLoader
from videomix_dali.tools.prepare import prepare

GOPS = (16, 32, 64, 150)
NUM_VIDEOS, NUM_FRAMES, HEIGHT, WIDTH, FPS = 8, 300, 256, 340, 30
SPAN = 57  # frames an 8x8 window spans
WINDOWS = {"frame 0": (0, SPAN), "last 57 frames": (NUM_FRAMES - SPAN, NUM_FRAMES), "random": None}
EPOCHS, ROUNDS = 8, 5  # batches of 8 timed per measurement; interleaved rounds (the least)


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(height, width, 3) float: random blocks at 4, 8, 16 and 32 px, summed."""
    out = np.zeros((height, width, 3))
    for size in (4, 8, 16, 32):
        blocks = rng.random((height // size + 1, width // size + 1, 3))
        out += np.repeat(np.repeat(blocks, size, 0), size, 1)[:height, :width]
    return out * 255 / 4


def render_sources(src: Path) -> None:
    """A textured scene panning 1.37 px per frame with a disc moving across it, in
    near-lossless H.264 with a keyframe every 150 frames (what ``prepare`` re-encodes)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for i in range(NUM_VIDEOS):
        rng = np.random.default_rng(i)
        scene = _texture(rng, HEIGHT, WIDTH + 420)
        path = src / f"class{i % 2}" / f"v{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=FPS, options={"qp": "8", "g": "150"})
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            for t in range(NUM_FRAMES):
                x, frac = divmod(1.37 * t, 1.0)
                x = int(x)
                rgb = (1 - frac) * scene[:, x : x + WIDTH] + frac * scene[:, x + 1 : x + 1 + WIDTH]
                disc = (xx - 40 - 0.8 * t) ** 2 + (yy - 128) ** 2 < 30**2
                rgb[disc] = 236
                frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
                frame.pts, frame.time_base = t, Fraction(1, FPS)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))


def cpu_ms_per_clip(tree: Path, window: tuple[int, int] | None) -> float:
    """CPU time (ms, all threads of this process) per decoded, cropped 8x8 clip; batch 8, 2 DALI
    threads. CPU time rather than wall time, as other processes may share the machine."""
    videos = sorted(tree.rglob("*.webm"))
    classes = sorted({p.parent.name for p in videos})
    rows = [f"{p} {classes.index(p.parent.name)}" for p in videos]
    if window is not None:
        rows = [f"{r} {window[0]} {window[1]}" for r in rows]
    index = tree / f"windows-{window}.txt".replace(" ", "")
    index.write_text("\n".join(rows) + "\n")
    loader = VideoLoader(index, recipe="kinetics", device="cpu", batch_size=8, progress=False)
    for _ in loader:  # warm-up epoch: pipeline build, page cache
        pass
    start = time.process_time()
    clips = sum(video.shape[0] for _ in range(EPOCHS) for video, _ in loader)
    return (time.process_time() - start) * 1000 / clips


def main(work: Path) -> None:
    src = work / "src"
    if not src.is_dir():
        render_sources(src)
    sizes = {}
    for gop in GOPS:
        tree = work / f"gop{gop}"
        prepare(src, tree, gop=gop, progress=False)
        sizes[gop] = sum(p.stat().st_size for p in tree.rglob("*.webm")) / NUM_VIDEOS
    results: dict[tuple[int, str], list[float]] = {}
    for _ in range(ROUNDS):
        for gop in GOPS:
            for name, window in WINDOWS.items():
                cost = cpu_ms_per_clip(work / f"gop{gop}", window)
                results.setdefault((gop, name), []).append(cost)
    base = sizes[150]
    print(
        "| keyframe every | CPU ms per clip at frame 0 | in the last 57 frames | late / frame 0 "
        "| at random | KiB per 10-s video | size vs 150 |"
    )
    print("|---|---|---|---|---|---|---|")
    for gop in GOPS:
        first, late, rand = (min(results[gop, n]) for n in WINDOWS)
        print(
            f"| {gop} | {first:.1f} | {late:.1f} | {late / first:.2f}x | {rand:.1f} "
            f"| {sizes[gop] / 1024:.0f} | {sizes[gop] / base:.2f}x |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
