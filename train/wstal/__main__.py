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
from pathlib import Path

import numpy as np

from videomix_dali.recipes import load_recipe

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.wstal",
        description="Weakly-supervised temporal action localization with Temporal VideoMix "
        "on pre-extracted features (VideoMix Sec. 4.3).",
    )
    src = p.add_argument_group("data")
    src.add_argument("--features", type=Path, help="folder of <video_id>.npy (T x D float32)")
    src.add_argument("--annotations", type=Path, help="ActivityNet-style ground-truth JSON")
    src.add_argument("--classes", type=Path, help="class list, one per line (default: sorted)")
    src.add_argument(
        "--demo", type=Path, help="use (and first generate, if absent) demo features in DIR"
    )
    src.add_argument("--train-subset", default="validation")
    src.add_argument("--test-subset", default="test")
    src.add_argument(
        "--missing", choices=("error", "skip"), default="error", help="videos without .npy"
    )
    tr = p.add_argument_group("training")
    tr.add_argument("--mix", choices=("temporal", "mixup", "none"), default="temporal")
    tr.add_argument("--compare", help="comma-separated mix modes run with the same seed/budget")
    tr.add_argument("--alpha", type=float, default=1.0, help="Beta(alpha, alpha)")
    tr.add_argument("--epochs", type=int, help=f"default {PAPER['epochs']} (demo {DEMO['epochs']})")
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--num-segments", type=int, help="T for training (paper 750, demo 160)")
    tr.add_argument("--eval-segments", type=int, default=0, help="T for evaluation; 0: full length")
    tr.add_argument("--lr", type=float)
    tr.add_argument("--weight-decay", type=float, default=THUMOS.weight_decay)
    tr.add_argument("--hidden", type=int, help="conv width (paper 2048, demo 128)")
    tr.add_argument("--dropout", type=float, default=0.7)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    lo = p.add_argument_group("localization")
    lo.add_argument("--class-threshold", type=float, default=0.1)
    lo.add_argument("--score", choices=("mean", "contrast"), default="mean")
    lo.add_argument("--video-weight", type=float, default=0.0)
    p.add_argument("--out", type=Path, help="write predictions_<mix>.csv and results.json")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from videomix_dali.features import load_feature_dataset, make_demo_features

    from . import run_experiment
    from .localize import as_rows
    from .metrics import IOU_THRESHOLDS

    defaults = PAPER
    if args.demo is not None:
        defaults = DEMO
        if args.features or args.annotations:
            print("error: --demo replaces --features/--annotations", file=sys.stderr)
            return 2
        if not (args.demo / "annotations.json").is_file():
            t0 = time.perf_counter()
            make_demo_features(args.demo, seed=0)
            print(f"demo features written to {args.demo} ({time.perf_counter() - t0:.1f} s)")
        args.features = args.demo / "features"
        args.annotations = args.demo / "annotations.json"
        args.classes = args.demo / "classes.txt"
    if args.features is None or args.annotations is None:
        print("error: give --features and --annotations (or --demo DIR)", file=sys.stderr)
        return 2
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    modes = args.compare.split(",") if args.compare else [args.mix]
    for m in modes:
        if m not in ("temporal", "mixup", "none"):
            print(f"error: unknown mix mode {m!r} in --compare", file=sys.stderr)
            return 2
    try:
        ds = load_feature_dataset(
            args.features, args.annotations, classes=args.classes, missing=args.missing
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    train, test = ds.subset(args.train_subset), ds.subset(args.test_subset)
    print(
        f"{len(train)} training ({args.train_subset}) and {len(test)} test videos, "
        f"{ds.num_classes} classes, D={ds.dim}; T={args.num_segments}, "
        f"{args.epochs} epochs, batch {args.batch_size}, seed {args.seed}"
    )
    results = {}
    for m in modes:
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
