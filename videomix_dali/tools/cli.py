"""``videomix-dali`` command line: demo and bench data, the streaming main job."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

from .argtypes import positive_int
from .bench import add_bench_parser
from .prepare import CODECS, DEFAULT_GOP, DEFAULT_SHORT_SIDE, FAILURES, PathOverlapError, prepare


def cmd_demo_data(args: argparse.Namespace) -> None:
    from .demo import make_demo_dataset

    root = make_demo_dataset(args.dir, seed=args.seed, h264=args.h264)
    print(f"demo dataset ready in {root}")


def cmd_bench_data(args: argparse.Namespace) -> None:
    from .bench.data import BenchData, make_bench_data

    spec = BenchData(
        videos_per_class=args.videos_per_class,
        long_per_class=args.long_per_class,
        h264=args.h264,
        seed=args.seed,
    )
    root = make_bench_data(args.dir, spec, workers=args.workers)
    print(f"bench corpus ready in {root} (bench reads {root / 'train'})")


def cmd_demo_features(args: argparse.Namespace) -> None:
    from .demo_features import make_demo_features

    root = make_demo_features(args.dir, seed=args.seed)
    print(f"demo features ready in {root}")


def cmd_prepare(args: argparse.Namespace) -> None:
    """Re-encode a dataset for fast decode; exit non-zero when no file could be prepared.

    Exit status 2: the output folder overlaps the source; 130: interrupted (SIGINT).
    """
    try:
        result = prepare(
            args.src,
            args.dst,
            codec=args.codec,
            short_side=args.short_side,
            gop=args.gop,
            workers=args.workers,
            fmt=args.fmt,
            root=args.root,
            split=args.split,
        )
    except PathOverlapError as exc:
        print(f"videomix-dali prepare: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    except KeyboardInterrupt as exc:  # prepare's PrepareInterrupted says what it kept
        print(f"videomix-dali prepare: {exc or 'interrupted'}", file=sys.stderr)
        raise SystemExit(130) from exc
    except OSError as exc:  # the manifest, an index or the failures list (a full disk)
        raise SystemExit(f"videomix-dali prepare: error: {exc}") from exc
    print(
        f"prepared {result.prepared} file(s): {result.encoded} encoded now, "
        f"{result.reused} done by an earlier run; {len(result.failures)} failed"
    )
    for path, codec, reason in result.failures[:10]:
        print(f"  failed ({codec}): {path}: {reason}")
    if result.failures:
        print(f"  all failures: {args.dst}/{FAILURES}")
    if result.removed:
        print(f"  removed {len(result.removed)} stale file(s) of earlier runs")
    if not result.prepared:
        raise SystemExit(f"videomix-dali prepare: error: no file of {args.src} could be prepared")
    for codec, index in result.indexes.items():
        fmt = f", fmt={result.fmt!r}" if result.fmt == "hmdb51" and index.is_dir() else ""
        print(f"{codec}: read it with VideoLoader({str(index)!r}{fmt})")


def cmd_stream(args: argparse.Namespace) -> None:
    """Stream epochs of augmented batches through the loader and report clips/s."""
    from ..loading.videos import VideoLoader
    from .demo import demo_split

    data = args.data
    if data is None:
        if args.root is not None:
            raise ValueError("--root needs --data (an index file whose paths it roots)")
        data = demo_split(args.demo_root, "train", args.device)
    loader = VideoLoader(
        data,
        root=args.root,
        recipe=args.recipe,
        device=args.device,
        batch_size=args.batch_size,
        seed=args.seed,
        num_threads=args.threads,
    )
    print(
        f"{len(loader.entries)} videos, {loader.num_classes} classes, {len(loader)} batches "
        f"per epoch on {loader.device}"
        + (f"; skipped {len(loader.skipped)}" if loader.skipped else "")
    )
    for epoch in range(args.epochs):
        clips, start = 0, time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch")
        for video, _target in bar:
            clips += video.shape[0]
            bar.set_postfix(clips_per_s=f"{clips / (time.perf_counter() - start):.1f}")
        elapsed = time.perf_counter() - start
        print(
            f"epoch {epoch}: {clips} clips in {elapsed:.2f} s = {clips / elapsed:.1f} clips/s "
            f"(batch {tuple(video.shape)} {video.dtype} on {video.device})"
        )


def cmd_show(args: argparse.Namespace) -> None:
    """Mix one batch of demo (or given) clips and draw it: samples x frames, boxes, weights."""
    import numpy as np

    from ..loading.videos import VideoLoader
    from ..mix import VideoMix
    from .demo import demo_split
    from .show import render_mix_grid

    data = args.data or demo_split(args.demo_root, "train", "cpu")
    loader = VideoLoader(
        data, recipe=args.recipe, device="cpu", batch_size=args.batch_size, seed=args.seed
    )
    video, label = next(iter(loader))
    mean = np.asarray(loader.recipe.mean, np.float32).reshape(1, 3, 1, 1, 1)
    std = np.asarray(loader.recipe.std, np.float32).reshape(1, 3, 1, 1, 1)
    pixels = np.clip(np.rint(video.numpy() * std + mean), 0, 255).astype(np.uint8)
    mix = VideoMix(
        args.mode,
        alpha=args.alpha,
        num_videos=args.num_videos,
        num_classes=loader.num_classes,
        seed=args.seed,
    )
    params = mix.sample(pixels.shape)
    mixed, target = mix.apply(pixels, label.numpy(), params)
    path = render_mix_grid(mixed, params, target, loader.classes, args.out)
    print(f"wrote {path}\n{params}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videomix-dali", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", help="generate the built-in demo dataset")
    p.add_argument("dir", help="output folder, e.g. data/demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--h264", action="store_true", help="also write H.264 .mp4 copies")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser(
        "bench-data",
        help="generate the Kinetics-like bench corpus (340x256, 30 fps, 10-s and 30-s videos)",
        description="A Kinetics-like corpus from the demo renderer: 340x256, 30 fps, 300 frames, "
        "a keyframe every 150 frames, VP9 .webm (DALI's CPU backend), folder per class under "
        "DIR/train; 900-frame videos under DIR/long; DIR/<split>_head.txt and _tail.txt index "
        "the first and the last 57 frames of each video. Resumable: finished files are kept.",
    )
    p.add_argument("dir", help="output folder, e.g. data/bench")
    p.add_argument("--h264", action="store_true", help="also write H.264 .mp4 copies")
    p.add_argument("--videos-per-class", type=positive_int, default=16, help="10-s videos")
    p.add_argument("--long-per-class", type=positive_int, default=1, help="30-s videos")
    p.add_argument("--workers", type=positive_int, help="processes (default: the CPU cores)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bench_data)

    p = sub.add_parser("demo-features", help="generate synthetic WSTAL feature data")
    p.add_argument("dir", help="output folder, e.g. data/demo-features")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo_features)

    p = sub.add_parser("prepare", help="re-encode a dataset into the layout that decodes fastest")
    p.add_argument("src", help="folder-per-class directory or index file")
    p.add_argument("dst", help="output root")
    p.add_argument(
        "--codec",
        default="vp9",
        choices=CODECS,
        help="vp9 (.webm), h264 (.mkv), both (DST/vp9 and DST/h264) or copy (the packets "
        "remuxed into .mkv, nothing re-encoded: --short-side and --gop do not apply)",
    )
    p.add_argument("--short-side", type=positive_int, default=DEFAULT_SHORT_SIDE, help="pixels")
    p.add_argument("--gop", type=positive_int, default=DEFAULT_GOP, help="frames per keyframe")
    p.add_argument("--workers", type=positive_int, help="processes (default: all cores)")
    p.add_argument("--fmt", help="index format (default: detected; see read_index)")
    p.add_argument("--root", help="folder the index's paths are relative to")
    p.add_argument("--split", help="split to read (see read_index)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("stream", help="stream augmented batches and print clips/s")
    p.add_argument("--data", help="folder or index file (default: the demo train split)")
    p.add_argument(
        "--root", help="folder the index file's paths are relative to (default: its folder)"
    )
    p.add_argument("--demo-root", default="data/demo", help="where the demo dataset lives")
    p.add_argument("--recipe", default="demo")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("show", help="draw a mixed batch as a PNG grid (samples x frames)")
    p.add_argument("--mode", default="spatial", help="mixing mode (spatial, temporal, ...)")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--num-videos", type=int, default=2)
    p.add_argument("--data", help="folder or index file (default: the demo train split)")
    p.add_argument("--demo-root", default="data/demo", help="where the demo dataset lives")
    p.add_argument("--recipe", default="demo")
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="videomix.png", help="PNG file to write")
    p.set_defaults(func=cmd_show)

    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as exc:
        raise SystemExit(f"videomix-dali {args.command}: error: {exc}") from exc


if __name__ == "__main__":
    main()
