"""The ``bench`` command line: ``videomix-dali bench`` and ``python -m videomix_dali.bench``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

from . import __doc__ as OVERVIEW
from .op import run_op_bench
from .run import run_bench
from .streams import LOADERS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="folder or index file (default: the demo train split)")
    p.add_argument("--demo-root", default="data/demo", help="where the demo dataset lives")
    p.add_argument("--recipe", default="demo")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--batch-size", type=_positive_int, help="default: the recipe's")
    p.add_argument("--frames", type=_positive_int, help="frames per clip T (recipe's)")
    p.add_argument("--stride", type=_positive_int, help="frame stride tau (recipe's)")
    p.add_argument("--crop", type=_positive_int, help="output size (recipe's crop_size)")
    p.add_argument("--mix", default="spatial", help="mode of the mixed rows ('none': no rows)")
    p.add_argument("--duration", type=_seconds, default=20.0, help="measured seconds per row")
    p.add_argument("--warmup", type=_seconds, default=5.0, help="warm-up seconds per row")
    p.add_argument(
        "--loaders",
        default=",".join(LOADERS),
        help=f"comma-separated subset of {','.join(LOADERS)} (default: all)",
    )
    p.add_argument("--workers", type=_positive_int, help="DataLoader workers (default: cores)")
    p.add_argument("--threads", type=_positive_int, help="DALI threads (default: cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="GPU only: also time training steps (tiny3d, slowonly50, ...)")
    p.add_argument("--json", dest="json_path", help="write the report as JSON here")
    p.add_argument("--plot", dest="plot_path", help="write a PNG bar chart here")
    p.add_argument("--op", action="store_true", help="micro-benchmark the mix op instead")
    p.add_argument("--op-repeats", type=_positive_int, default=20)


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    if args.op:
        from ..recipes import load_recipe

        r = load_recipe(args.recipe).replace(
            batch_size=args.batch_size, num_frames=args.frames, crop_size=args.crop
        )
        shape = (r.batch_size, 3, r.num_frames, r.crop_size, r.crop_size)
        return run_op_bench(
            shape,
            mode=args.mix if args.mix != "none" else "spatial",
            repeats=args.op_repeats,
            seed=args.seed,
            mean=r.mean,
            std=r.std,
            gpu=True if args.device == "gpu" else None,
            json_path=args.json_path,
        )
    return run_bench(
        args.data,
        recipe=args.recipe,
        device=args.device,
        batch_size=args.batch_size,
        frames=args.frames,
        stride=args.stride,
        crop=args.crop,
        mix=args.mix,
        duration=args.duration,
        warmup=args.warmup,
        loaders=args.loaders,
        workers=args.workers,
        threads=args.threads,
        seed=args.seed,
        model=args.model,
        json_path=args.json_path,
        plot_path=args.plot_path,
        demo_root=args.demo_root,
    )


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to an argparse ``subparsers`` object (its ``func`` runs the bench)."""
    p = subparsers.add_parser(
        "bench",
        help="loader throughput vs PyAV/torchcodec/decord baselines (or --op: the mix op)",
        description=OVERVIEW.split("\n\n")[0],
    )
    _add_arguments(p)
    p.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m videomix_dali.bench", description=OVERVIEW)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cmd_bench(args)
    except ValueError as exc:
        raise SystemExit(f"videomix-dali bench: error: {exc}") from exc
