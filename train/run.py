"""One training run from a config: model, loader, mix, per-epoch checkpoints and evaluation."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from videomix_dali import VideoLoader
from videomix_dali.mix import MixStack, VideoMix
from videomix_dali.recipes import Schedule, load_recipe
from videomix_dali.source.index import read_index, stratified_subset

from . import distributed as dist_utils
from .checkpoint import device_of, init_from, load_checkpoint, save_checkpoint
from .evaluate import evaluate, make_eval_loader, write_predictions
from .models import build_model, loader_frames
from .trainer import Trainer

__all__ = ["TrainConfig", "build_run", "finished_run", "run"]


@dataclass
class TrainConfig:
    """Everything that defines a run (stored in the checkpoint; primitives only)."""

    recipe: str = "demo"
    data: str = ""
    val: list[str] = field(default_factory=list)
    model: str = "slowonly18"
    width: int = 16
    num_frames: int | None = None  # slow T (SlowFast: loader gets alpha x T)
    stride: int | None = None  # slow tau
    crop_size: int | None = None
    batch_size: int | None = None  # per process
    epochs: int | None = None
    lr: float | None = None  # for batch 64; scaled by global batch / 64
    warmup_epochs: float | None = None
    weight_decay: float = 1e-4
    momentum: float = 0.9
    dropout: float = 0.5
    mix: str = "none"
    alpha: float = 1.0
    prob: float = 1.0
    num_videos: int = 2
    randaugment: list[int] | None = None  # (n, m): RandAugment on every training clip
    train_fraction: float = 1.0  # a seeded, class-stratified share of the training set
    clips_per_video: int = 1  # training clips taken from each decoded video
    repeat: str = "views"  # what those clips differ in: "views" or "windows"
    stack: list[str] = field(default_factory=list)  # mix modes applied after `mix`, in order
    seed: int = 0
    device: str = "auto"
    num_threads: int = 2
    eval_every: int = 0  # 0: evaluate only after the last epoch
    init_from: str | None = None  # checkpoint whose backbone weights start the run

    def schedule(self) -> Schedule:
        """The recipe's schedule with this run's epochs, lr and warm-up (a warm-up longer
        than shortened training shrinks to a tenth of it)."""
        s = load_recipe(self.recipe).schedule
        epochs = s.epochs if self.epochs is None else self.epochs
        warmup = s.warmup_epochs
        if warmup > epochs:
            warmup = epochs / 10
        if self.warmup_epochs is not None:
            warmup = self.warmup_epochs
        return s.replace(
            epochs=epochs, lr=s.lr if self.lr is None else self.lr, warmup_epochs=warmup
        )


def build_run(cfg: TrainConfig, *, progress: bool = True):
    """(model, train loader, mix, torch device, loader device) of a config."""
    loader_device, device = device_of(cfg.device)
    recipe = load_recipe(cfg.recipe)
    # class count from the index before building the model: the loader needs the model's alpha
    num_classes = len(read_index(cfg.data).classes)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes, width=cfg.width, dropout=cfg.dropout)
    if cfg.init_from:
        report = init_from(model, cfg.init_from)
        if dist_utils.is_main():
            print(f"--init-from {cfg.init_from}:\n{report}")
    t, tau = loader_frames(model, cfg.num_frames or recipe.num_frames, cfg.stride or recipe.stride)
    mix = None
    if cfg.mix != "none":
        stages = [
            VideoMix(
                mode,
                alpha=cfg.alpha,
                prob=cfg.prob,
                num_videos=cfg.num_videos,
                num_classes=num_classes,
                seed=cfg.seed + k,  # each stage its own draws
            )
            for k, mode in enumerate([cfg.mix, *cfg.stack])
        ]
        mix = MixStack(*stages) if cfg.stack else stages[0]
    data = cfg.data
    if cfg.train_fraction < 1:
        data = stratified_subset(read_index(cfg.data), cfg.train_fraction, cfg.seed)
    loader = VideoLoader(
        data,
        recipe=cfg.recipe,
        device=loader_device,
        train=True,
        batch_size=cfg.batch_size,
        num_frames=t,
        stride=tau,
        crop_size=cfg.crop_size,
        seed=cfg.seed,
        mix=mix,
        num_threads=cfg.num_threads,
        progress=progress and dist_utils.is_main(),
        randaugment=tuple(cfg.randaugment) if cfg.randaugment else None,
        clips_per_video=cfg.clips_per_video,
        repeat=cfg.repeat,
    )
    return model, loader, mix, device, loader_device


def finished_run(cfg: TrainConfig, out: str | Path) -> dict[str, Any] | None:
    """The final record of a run of exactly ``cfg`` that finished in ``out``, else None."""
    try:
        lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
        record = json.loads(lines[-1])
    except (OSError, IndexError, ValueError):
        return None
    return record if record.get("final") and record.get("config") == asdict(cfg) else None


def run(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: str | None = None,
    progress: bool = True,
    verbose: bool = True,
):
    """Train ``cfg`` into ``out`` (checkpoint.pt, metrics.jsonl, predictions_*.csv) and
    evaluate on ``cfg.val``; returns {split: EvalResult} of the final evaluation.
    ``verbose=False``: no per-epoch lines (progress bars follow ``progress``)."""
    out = Path(out)
    model, loader, mix, device, loader_device = build_run(cfg, progress=progress)
    schedule = cfg.schedule()
    trainer = Trainer(
        model,
        loader,
        schedule,
        device=device,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        log_path=out / "metrics.jsonl",
        progress=progress,
    )
    ckpt_path = out / "checkpoint.pt"
    if resume:
        path = ckpt_path if resume == "auto" else Path(resume)
        state = load_checkpoint(path)
        saved = state["config"]
        keys = ("model", "width", "recipe", "mix", "stack", "alpha", "prob", "seed", "batch_size")
        later = ("randaugment", "train_fraction", "clips_per_video", "repeat")
        for key in (*keys, *later):
            if saved.get(key) != asdict(cfg).get(key):
                raise SystemExit(
                    f"--resume {path}: {key}={saved.get(key)!r} in the checkpoint but "
                    f"{asdict(cfg).get(key)!r} now"
                )
        trainer.load_state_dict(state)
        if dist_utils.is_main():
            print(f"resumed {path} at epoch {trainer.epoch}, iteration {trainer.iteration}")
    elif dist_utils.is_main() and (out / "metrics.jsonl").exists():
        (out / "metrics.jsonl").unlink()
    extra = {"config": asdict(cfg), "classes": list(loader.classes)}
    val_loaders = {
        Path(v).name: make_eval_loader(v, asdict(cfg), model, device=loader_device) for v in cfg.val
    }

    def run_eval() -> dict[str, Any]:
        return {n: evaluate(model, vl, device, progress=progress) for n, vl in val_loaders.items()}

    results: dict[str, Any] = {}
    main = dist_utils.is_main()
    if main and verbose:
        r = loader.recipe
        print(
            f"{cfg.model} (width {cfg.width}) on {cfg.data}: {len(loader.entries)} videos, "
            f"{loader.num_classes} classes, {len(loader)} batches/epoch x {dist_utils.world_size()}"
            f" process(es), batch {r.batch_size}, clip {r.num_frames}x{r.stride} @ "
            f"{r.crop_size}, mix={cfg.mix}, lr {trainer.base_lr:.4g} "
            f"({schedule.kind}, {schedule.epochs} epochs), device {device}"
        )
    start = time.perf_counter()
    while trainer.epoch < schedule.epochs:
        record = trainer.train_epoch()
        last = trainer.epoch == schedule.epochs
        if val_loaders and (last or (cfg.eval_every and trainer.epoch % cfg.eval_every == 0)):
            results = run_eval()
            for name, r in results.items():
                record.update(r.metrics(f"{name}/"))
        trainer.log(record)
        save_checkpoint(ckpt_path, trainer, extra)
        if main and verbose:
            evals = "  ".join(f"{k} {v:.1f}" for k, v in record.items() if k.endswith("top1"))
            print(
                f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  "
                f"lr {record['lr']:.4g}  {record['clips_per_s']:.1f} clips/s  {evals}".rstrip(),
                flush=True,
            )
    if val_loaders and not results:  # resumed a finished run: evaluate again
        results = run_eval()
    if main:
        for name, r in results.items():
            write_predictions(
                out / f"predictions_{name}.csv", r, val_loaders[name].entries, loader.classes
            )
        final = {k: v for n, r in results.items() for k, v in r.metrics(f"{n}/").items()}
        seconds = round(time.perf_counter() - start, 2)
        trainer.log({"final": True, "train_time_s": seconds, **final, "config": asdict(cfg)})
    return results
