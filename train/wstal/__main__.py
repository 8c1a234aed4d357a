"""``python -m train.wstal``: train a WSTAL model on feature sequences, localize, score.

Examples::

    python -m train.wstal --demo /tmp/wstal-demo --compare none,temporal
    python -m train.wstal --features thumos14/features --annotations thumos14/gt.json \\
        --classes thumos14/classes.txt --mix temporal --epochs 100 --out runs/wstal
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time

import numpy as np

from videomix_dali.recipes import load_recipe
from videomix_dali.source.features import SUBSETS, FeatureDataset, load_feature_dataset
from videomix_dali.tools.demo_features import make_demo_features

from ..arguments import (
    existing_dir,
    existing_file,
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
    probability,
)

# Defaults: the paper's (THUMOS'14 I3D features: pipelines/thumos-features.toml), and the small
# demo's.
THUMOS = load_recipe("thumos-features")
PAPER = {
    "epochs": THUMOS.epochs,
    "hidden": 2048,
    "num_segments": THUMOS.num_positions,
    "lr": THUMOS.lr,
    "batch_size": THUMOS.batch_size,
}
DEMO = {"epochs": 40, "hidden": 128, "num_segments": 160, "lr": 1e-3, "batch_size": 16}
MIX_MODES = ("temporal", "mixup", "hide-and-seek", "none")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.wstal",
        description="Weakly-supervised temporal action localization with Temporal VideoMix "
        "on pre-extracted features (VideoMix Sec. 4.3).",
    )
    src = p.add_argument_group("data")
    src.add_argument(
        "--features", type=existing_dir, help="folder of <video_id>.npy (T x D float32)"
    )
    src.add_argument(
        "--annotations", type=existing_file, help="ActivityNet-style ground-truth JSON"
    )
    src.add_argument(
        "--classes", type=existing_file, help="class list, one per line (default: sorted)"
    )
    src.add_argument(
        "--demo", type=output_dir, help="use (and first generate, if absent) demo features in DIR"
    )
    src.add_argument("--train-subset", default="validation", choices=SUBSETS)
    src.add_argument("--test-subset", default="test", choices=SUBSETS)
    src.add_argument(
        "--missing", choices=("error", "skip"), default="error", help="videos without .npy"
    )
    tr = p.add_argument_group("training")
    tr.add_argument("--mix", choices=MIX_MODES, default="temporal")
    tr.add_argument("--compare", help="comma-separated mix modes run with the same seed/budget")
    tr.add_argument("--alpha", type=positive_float, default=1.0, help="Beta(alpha, alpha)")
    tr.add_argument(
        "--epochs", type=positive_int, help=f"default {PAPER['epochs']} (demo {DEMO['epochs']})"
    )
    tr.add_argument("--batch-size", type=positive_int)
    tr.add_argument(
        "--num-segments", type=positive_int, help="T for training (paper 750, demo 160)"
    )
    tr.add_argument(
        "--eval-segments", type=non_negative_int, default=0, help="T for evaluation; 0: full length"
    )
    tr.add_argument("--lr", type=positive_float)
    tr.add_argument("--weight-decay", type=non_negative_float, default=THUMOS.weight_decay)
    tr.add_argument("--hidden", type=positive_int, help="conv width (paper 2048, demo 128)")
    tr.add_argument("--dropout", type=probability, default=0.7)
    tr.add_argument("--seed", type=non_negative_int, default=0)
    tr.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    lo = p.add_argument_group("localization")
    lo.add_argument("--class-threshold", type=probability, default=0.1)
    lo.add_argument("--score", choices=("mean", "contrast"), default="mean")
    lo.add_argument("--video-weight", type=non_negative_float, default=0.0)
    p.add_argument("--out", type=output_dir, help="write predictions_<mix>.csv and results.json")
    p.add_argument("--no-progress", action="store_true")
    return p


def format_table(results: dict[str, dict], thresholds: np.ndarray) -> str:
    head = f"{'mAP (%) @ IoU':<14}" + "".join(f"{t:>6.1f}" for t in thresholds)
    head += f"{'avg':>7}{'acc':>7}{'train s':>9}"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        row = f"{name:<14}" + "".join(f"{100 * a:>6.1f}" for a in r["ap"])
        row += f"{100 * r['map']:>7.2f}{100 * r['accuracy']:>7.1f}{r['train_seconds']:>9.1f}"
        lines.append(row)
    return "\n".join(lines)


def modes_of(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The mix modes to train: --compare's or --mix."""
    if args.compare is None:
        return [args.mix]
    modes = [m.strip() for m in args.compare.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MIX_MODES]
    if unknown or not modes:
        p.error(
            f"argument --compare: unknown mode(s) {unknown}; choose from {', '.join(MIX_MODES)}"
        )
    return modes


def data_paths(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Point --features, --annotations and --classes at the demo's with --demo (making it
    first); exit 2 where the data options are missing or conflict."""
    if args.demo is None:
        if args.features is None or args.annotations is None:
            p.error("argument --features/--annotations: give both (or --demo DIR)")
        return
    if args.features or args.annotations:
        p.error("argument --demo: replaces --features/--annotations; give one or the other")
    if not (args.demo / "annotations.json").is_file():
        t0 = time.perf_counter()
        make_demo_features(args.demo, seed=0)
        print(f"demo features written to {args.demo} ({time.perf_counter() - t0:.1f} s)")
    args.features = args.demo / "features"
    args.annotations = args.demo / "annotations.json"
    args.classes = args.demo / "classes.txt"


def checked_data(argv: list[str] | None) -> tuple[argparse.Namespace, FeatureDataset]:
    """The options, checked, with the paper's or the demo's defaults filled in, and the
    feature data set they name (exit 2 naming the option otherwise)."""
    p = build_parser()
    args = p.parse_args(argv)
    args.modes = modes_of(p, args)
    data_paths(p, args)
    for k, v in (PAPER if args.demo is None else DEMO).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    option = "--demo" if args.demo is not None else "--features/--annotations"
    try:
        ds = load_feature_dataset(
            args.features, args.annotations, classes=args.classes, missing=args.missing
        )
    except ValueError as exc:
        p.error(f"argument {option}: {exc}")
    for name in ("train_subset", "test_subset"):
        subset = getattr(args, name)
        if not ds.subset(subset).videos:
            p.error(
                f"argument --{name.replace('_', '-')}: no {subset!r} video in {args.annotations}"
            )
    return args, ds


def main(argv: list[str] | None = None) -> int:
    try:
        args, ds = checked_data(argv)
    except SystemExit as stop:  # argparse printed the usage error (2) or the help (0)
        return int(stop.code or 0)
    from . import run_experiment
    from .localize import as_rows
    from .metrics import IOU_THRESHOLDS

    train, test = ds.subset(args.train_subset), ds.subset(args.test_subset)
    print(
        f"{len(train)} training ({args.train_subset}) and {len(test)} test videos, "
        f"{ds.num_classes} classes, D={ds.dim}; T={args.num_segments}, "
        f"{args.epochs} epochs, batch {args.batch_size}, seed {args.seed}"
    )
    results = {}
    for m in args.modes:
        r = run_experiment(
            train,
            test,
            mix=m,
            alpha=args.alpha,
            seed=args.seed,
            eval_positions=args.eval_segments or None,
            localize={
                "class_threshold": args.class_threshold,
                "score": args.score,
                "video_weight": args.video_weight,
            },
            epochs=args.epochs,
            batch_size=args.batch_size,
            num_positions=args.num_segments,
            lr=args.lr,
            weight_decay=args.weight_decay,
            hidden=args.hidden,
            dropout=args.dropout,
            device=args.device,
            progress=not args.no_progress,
        )
        results[m] = r
        print(
            f"[{m}] mAP {100 * r['map']:.2f}  train {r['train_seconds']:.1f} s  "
            f"eval {r['eval_seconds']:.1f} s  final loss {r['losses'][-1]:.4f}"
        )
    print(format_table(results, IOU_THRESHOLDS))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for m, r in results.items():
            with open(args.out / f"predictions_{m}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["video_id", "label", "start", "end", "score"])
                w.writerows(as_rows(r["predictions"]))
        summary = {
            m: {
                "iou_thresholds": IOU_THRESHOLDS.tolist(),
                "ap": r["ap"].tolist(),
                "map": r["map"],
                "video_accuracy": r["accuracy"],
                "train_seconds": r["train_seconds"],
                "eval_seconds": r["eval_seconds"],
            }
            for m, r in results.items()
        }
        summary["args"] = {k: str(v) for k, v in vars(args).items()}
        (args.out / "results.json").write_text(json.dumps(summary, indent=1))
        print(f"predictions and results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
