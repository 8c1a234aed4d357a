"""python -m train: train and evaluate a video classifier on the videomix-dali pipeline.

    python -m train --recipe demo --compare none,spatial --seeds 3   # the demo main job
    python -m train --recipe demo --ablation                     # every mode, 3 seeds, chart
    python -m train --recipe ssv2 ... --init-from K400/checkpoint.pt   # fine-tune a backbone
    python -m train --recipe kinetics --data K400/train.csv --val K400/val.csv \\
        --model slowonly50 --mix spatial --out runs/so50-vmix
    python -m train --model slowfast50 --describe                # params + GFLOPs per view
    torchrun --nproc_per_node 8 -m train ...                     # DDP, one pipeline per rank

train/ is an app folder of the checkout, not an installed package: run it from the checkout's
root, or elsewhere as PYTHONPATH=/path/to/checkout python -m train ... (the demo data and
runs/ are written under the working directory).
"""

from __future__ import annotations

import os

# before torch loads OpenMP: threads that sleep instead of spinning when they wait. On a
# shared 2-core machine spinning threads slowed training ~10x whenever another job ran.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from videomix_dali.mix import MODES
from videomix_dali.mix.params import PAIRING_MODES
from videomix_dali.recipes import REPEATS, list_recipes, load_recipe
from videomix_dali.source.index import read_index

from . import distributed as dist_utils
from .arguments import (
    check_dataset,
    existing_file,
    fraction,
    int_at_least,
    mix_modes,
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
    probability,
    randaugment,
)
from .experiment import (
    ABLATION_MODES,
    AUGMENT_ROWS,
    format_table,
    plot_summary,
    run_grid,
    write_json,
)
from .models import available_models, build_model, describe, loader_frames
from .run import TrainConfig, finished_run, run

DEMO_ROOT = "data/demo"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[1:]),
    )
    p.add_argument("--recipe", default="demo", choices=list_recipes(), help="dataset protocol")
    p.add_argument("--data", help="training set (folder-per-class or index file); demo: generated")
    p.add_argument("--val", nargs="*", help="test sets evaluated after training (multi-view)")
    p.add_argument("--model", default=None, choices=available_models())
    p.add_argument("--width", type=positive_int, help="base width (64 = the paper's)")
    p.add_argument("--num-frames", type=positive_int, help="T of the (slow) clip; default: recipe")
    p.add_argument("--stride", type=positive_int, help="tau of the (slow) clip; default: recipe")
    p.add_argument("--crop-size", type=positive_int)
    p.add_argument("--batch-size", type=positive_int, help="per process; default: recipe")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument(
        "--lr", type=positive_float, help="lr for batch 64 (scaled by global batch / 64)"
    )
    p.add_argument("--warmup-epochs", type=non_negative_float)
    p.add_argument("--weight-decay", type=non_negative_float, default=1e-4)
    p.add_argument("--dropout", type=probability, default=0.5)
    p.add_argument("--mix", default="none", choices=list(MODES), help="VideoMix mode")
    p.add_argument(
        "--stack",
        type=mix_modes,
        default=[],
        metavar="MODES",
        help="comma-separated modes applied after --mix, in order (e.g. mixup,cutout)",
    )
    p.add_argument("--alpha", type=positive_float, default=1.0, help="lambda ~ Beta(alpha, alpha)")
    p.add_argument("--prob", type=probability, default=1.0, help="chance to mix a batch")
    p.add_argument("--num-videos", type=int_at_least(2), default=2)
    p.add_argument(
        "--train-fraction",
        type=fraction,
        default=1.0,
        help="train on this seeded, class-stratified share of the training set (Table 12)",
    )
    p.add_argument(
        "--randaugment",
        type=randaugment,
        metavar="N,M",
        help="RandAugment on every training clip: N operations at magnitude M (0..30; paper: 9)",
    )
    p.add_argument(
        "--clips-per-video",
        type=int_at_least(1),
        default=1,
        metavar="K",
        help="K training clips from each decoded video, side by side in a batch (the batch "
        "counts clips; an epoch then has K times the steps)",
    )
    p.add_argument(
        "--repeat",
        default="views",
        choices=list(REPEATS),
        help="what a video's K clips differ in: crops and flips (views) or also their "
        "windows, inside 1.5 clip spans (windows)",
    )
    p.add_argument("--compare", help="comma-separated mix modes trained with the same budget")
    p.add_argument(
        "--seeds", type=positive_int, help="runs per mode: seeds SEED..SEED+N-1 (1; --ablation: 3)"
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help=f"--compare {','.join(ABLATION_MODES)} (3 seeds unless --seeds), chart + JSON",
    )
    p.add_argument(
        "--scene-bias",
        type=probability,
        help="demo: share of train/test_biased videos whose scene matches the class (0.9)",
    )
    p.add_argument(
        "--init-from", type=existing_file, help="checkpoint whose backbone weights start the run"
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--threads", type=positive_int, default=2, help="DALI CPU threads per pipeline")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--eval-every", type=non_negative_int, default=0, help="epochs; 0: after the last only"
    )
    p.add_argument(
        "--out", type=output_dir, help="run folder (default runs/<recipe>-<model>-<mix>)"
    )
    p.add_argument(
        "--resume", nargs="?", const="auto", help="continue from OUT/checkpoint.pt (or PATH)"
    )
    p.add_argument("--describe", action="store_true", help="print params and GFLOPs, exit")
    p.add_argument("--no-progress", action="store_true")
    return p


def model_name(args: argparse.Namespace) -> str:
    """--model, else SlowOnly-18 for the demo and SlowOnly-50 for the paper's recipes."""
    return args.model or ("slowonly18" if args.recipe == "demo" else "slowonly50")


def config_from(args: argparse.Namespace, mix: str) -> TrainConfig:
    demo = args.recipe == "demo"
    if args.data is None:
        from videomix_dali.tools.demo import SPLITS, demo_split

        root, kw = DEMO_ROOT, {}
        if args.scene_bias is not None:
            root, kw = f"{DEMO_ROOT}-bias{args.scene_bias:g}", {"scene_bias": args.scene_bias}
        if dist_utils.is_main():  # one writer; the other ranks wait for it
            demo_split(root, "train", args.device, progress=not args.no_progress, **kw)
        dist_utils.barrier()
        train, *tests = (
            str(demo_split(root, s, args.device, progress=False, **kw)) for s in SPLITS
        )
        args.data = train
        if args.val is None:
            args.val = tests
    model = model_name(args)
    width = args.width or (16 if demo and model.startswith("slowonly") else 64)
    values = {
        "recipe": args.recipe,
        "data": args.data,
        "val": list(args.val or []),
        "model": model,
        "width": width,
        "num_frames": args.num_frames,
        "stride": args.stride,
        "crop_size": args.crop_size,
        "batch_size": args.batch_size or load_recipe(args.recipe).batch_size,
        "epochs": args.epochs,
        "lr": args.lr,
        "warmup_epochs": args.warmup_epochs,
        "weight_decay": args.weight_decay,
        "momentum": 0.9,
        "dropout": args.dropout,
        "mix": mix,
        "alpha": args.alpha,
        "prob": args.prob,
        "num_videos": args.num_videos,
        "randaugment": list(args.randaugment) if args.randaugment else None,
        "train_fraction": args.train_fraction,
        "clips_per_video": args.clips_per_video,
        "repeat": args.repeat,
        "stack": list(args.stack),
        "seed": args.seed,
        "device": args.device,
        "num_threads": args.threads,
        "eval_every": args.eval_every,
        "init_from": str(args.init_from) if args.init_from else None,
    }
    assert set(values) == {f.name for f in fields(TrainConfig)}
    return TrainConfig(**values)


def print_describe(args: argparse.Namespace) -> None:
    recipe = load_recipe(args.recipe)
    demo = args.recipe == "demo"
    name = model_name(args)
    width = args.width or (16 if demo and name.startswith("slowonly") else 64)
    num_classes = recipe.num_classes
    model = build_model(name, num_classes, width=width)
    t, tau = loader_frames(
        model, args.num_frames or recipe.num_frames, args.stride or recipe.stride
    )
    crop = args.crop_size or recipe.crop_size
    views = recipe.test_clips * recipe.test_crops
    print(f"{name} (width {width}, {num_classes} classes; loader clip {t}x{tau})")
    print("  " + describe(model, (3, t, crop, crop)))
    print(f"  test views per video ({args.recipe}): {views}")


def row_config(args: argparse.Namespace, row: str) -> TrainConfig:
    """The run of one row of a comparison: a mix mode, or one of ``AUGMENT_ROWS``."""
    if row not in AUGMENT_ROWS:
        return config_from(args, row)
    settings = AUGMENT_ROWS[row]
    return replace(config_from(args, settings["mix"]), **settings)


def compare(args: argparse.Namespace, modes: list[str], *, ablation: bool = False) -> dict:
    """Train every mode with ``args.seeds`` seeds from ``args.seed`` (default 1, ablation 3;
    same model and budget), print top-1 mean ± std per test split and the verdicts, write the
    JSON (and, for the ablation, the chart). A finished run of the same config is reused."""
    base = Path(args.out or f"runs/compare-{args.recipe}")
    num_seeds = args.seeds or (3 if ablation else 1)
    seeds = [args.seed + i for i in range(num_seeds)]

    def train_one(mode: str, seed: int) -> dict[str, Any]:
        cfg = replace(row_config(args, mode), seed=seed)
        out = base / mode / f"seed{seed}"
        splits = [Path(v).name for v in cfg.val]
        done = finished_run(cfg, out)
        if done is not None:
            top1 = {s: done[f"{s}/top1"] for s in splits}
            return {**top1, "wall_s": done["train_time_s"], "reused": True}
        results = run(cfg, out, progress=False, verbose=False)
        return {s: results[s].top1 for s in splits}

    baseline = "none" if "none" in modes else modes[0]
    progress = not args.no_progress and dist_utils.is_main()
    result = run_grid(modes, seeds, train_one, baseline=baseline, progress=progress)
    cfg = config_from(args, baseline)
    result["config"] = {k: v for k, v in asdict(cfg).items() if k not in ("mix", "seed")}
    name = "ablation" if ablation else "compare"
    if not dist_utils.is_main():
        return result
    head = (
        f"{cfg.model} width {cfg.width}, {cfg.schedule().epochs} epochs, batch {cfg.batch_size}, "
        f"recipe {cfg.recipe}, seeds {seeds[0]}..{seeds[-1]}"
    )
    print(head)
    print(format_table(result["summary"], result["splits"], len(seeds)))
    print("\n".join(result["verdicts"]))
    if ablation:
        chance = 100 / len(read_index(cfg.data).classes)
        png = base / f"{name}.png"
        plot_summary(result["summary"], result["splits"], png, chance=chance, title=head)
        print(f"chart: {png}")
    minutes, seconds = divmod(round(result["wall_s"]), 60)
    json_path = write_json(result, base / f"{name}.json")
    reused = sum(bool(r.get("reused")) for rows in result["runs"].values() for r in rows)
    runs = f"{len(modes) * len(seeds)} runs" + (f" ({reused} reused)" if reused else "")
    print(f"{runs} in {minutes} min {seconds} s; results: {json_path}")
    return result


def modes_of(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The mix modes to train: --ablation's, --compare's or --mix."""
    if args.ablation:
        return list(ABLATION_MODES)
    if args.compare is None:
        if args.seeds is not None:
            p.error("argument --seeds: needs --compare or --ablation")
        return [args.mix]
    modes = [m.strip() for m in args.compare.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES and m not in AUGMENT_ROWS]
    if unknown or not modes:
        choices = ", ".join([*MODES, *AUGMENT_ROWS])
        p.error(f"argument --compare: unknown mode(s) {unknown}; choose from {choices}")
    return modes


def check_recipe(p: argparse.ArgumentParser, args: argparse.Namespace, modes: list[str]) -> None:
    """Exit 2 naming the option whose value the recipe or the other options refuse."""
    recipe = load_recipe(args.recipe)
    for name in ("num_frames", "stride", "crop_size", "batch_size"):
        try:
            recipe.replace(**{name: getattr(args, name)})
        except ValueError as exc:
            p.error(f"argument --{name.replace('_', '-')}: {exc}")
    batch = args.batch_size or recipe.batch_size
    try:
        recipe.replace(batch_size=batch, clips_per_video=args.clips_per_video)
    except ValueError as exc:
        p.error(f"argument --clips-per-video: {exc}")
    if args.num_videos > batch and any(m in PAIRING_MODES for m in modes):
        p.error(
            f"argument --num-videos: must be <= the batch size ({batch}), got {args.num_videos}"
        )
    epochs = args.epochs or recipe.schedule.epochs
    if args.warmup_epochs is not None and args.warmup_epochs > epochs:
        got = f"{args.warmup_epochs:g}"
        p.error(f"argument --warmup-epochs: must be <= the epochs ({epochs}), got {got}")


def check_paths(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 naming the option whose path is missing, empty or not a dataset."""
    if args.data is None and args.recipe != "demo":
        p.error(f"argument --data: required with --recipe {args.recipe}")
    if args.data is not None:
        check_dataset(p, "--data", args.data)
    for path in args.val or []:
        check_dataset(p, "--val", path)


def run_dir(args: argparse.Namespace) -> Path:
    """The folder of a single run: --out, else runs/<recipe>-<model>-<mix>."""
    return args.out or Path(f"runs/{args.recipe}-{model_name(args)}-{args.mix}")


def resume_path(p: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The checkpoint that --resume names (auto: the run folder's); exit 2 where it is none."""
    if args.resume is None or args.compare or args.ablation:
        return None
    path = run_dir(args) / "checkpoint.pt" if args.resume == "auto" else Path(args.resume)
    if not path.is_file():
        p.error(f"argument --resume: no checkpoint at {str(path)!r}")
    return str(path)


def checked_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked against each other, the recipe and the disk (exit 2 naming the
    option otherwise); ``modes`` holds the mix modes to train, ``resume`` a checkpoint path."""
    p = parser()
    args = p.parse_args(argv)
    if args.describe:
        return args
    args.modes = modes_of(p, args)
    if args.stack and args.mix == "none":
        p.error("argument --stack: stacks after a first mode: give --mix too")
    check_recipe(p, args, args.modes)
    check_paths(p, args)
    args.resume = resume_path(p, args)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = checked_args(argv)
    except SystemExit as stop:  # argparse printed the usage error (2) or the help (0)
        return int(stop.code or 0)
    if args.describe:
        print_describe(args)
        return 0
    if args.epochs is None and args.recipe == "demo":
        args.epochs = load_recipe("demo").schedule.epochs
    dist_utils.setup(args.device)
    try:
        if args.ablation or args.compare:
            compare(args, args.modes, ablation=args.ablation)
        else:
            cfg = config_from(args, args.mix)
            out = run_dir(args)
            results = run(cfg, out, resume=args.resume, progress=not args.no_progress)
            if dist_utils.is_main():
                for name, r in results.items():
                    print(f"{name}: top-1 {r.top1:.2f}  top-5 {r.top5:.2f}  ({r.num_videos})")
                print(f"run folder: {out}")
    finally:
        dist_utils.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
