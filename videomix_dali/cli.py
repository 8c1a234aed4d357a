"""``videomix-dali`` command line: demo data, the streaming main job."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

from tqdm import tqdm


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def cmd_demo_data(args: argparse.Namespace) -> None:
    from .demo import make_demo_dataset

    root = make_demo_dataset(args.dir, seed=args.seed, h264=args.h264)
    print(f"demo dataset ready in {root}")


def cmd_stream(args: argparse.Namespace) -> None:
    """Stream epochs of augmented batches through the loader and report clips/s."""
    from .demo import ensure_demo_dataset
    from .loader import VideoLoader

    data = args.data
    if data is None:
        data = ensure_demo_dataset(args.demo_root) / "train"
    loader = VideoLoader(
        data,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videomix-dali", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", help="generate the built-in demo dataset")
    p.add_argument("dir", help="output folder, e.g. data/demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--h264", action="store_true", help="also write H.264 .mp4 copies")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("stream", help="stream augmented batches and print clips/s")
    p.add_argument("--data", help="folder or index file (default: the demo train split)")
    p.add_argument("--demo-root", default="data/demo", help="where the demo dataset lives")
    p.add_argument("--recipe", default="demo")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--epochs", type=_positive_int, default=3)
    p.add_argument("--threads", type=_positive_int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_stream)
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
