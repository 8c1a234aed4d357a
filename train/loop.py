"""Training: soft-target cross-entropy, SGD, cosine (with linear warm-up) or step schedule,
per-epoch checkpoints that resume the same run exactly, JSON-lines metrics.

Protocols (paper Sec. 4.1, 4.2, Appendix C): Kinetics / Mini-Kinetics train from scratch for
250 epochs, batch 64, lr 0.1, cosine decay; SSv2 fine-tunes for 40 epochs, lr 0.01, x0.1 at
epochs 26 and 33. The learning rate is scaled linearly with the global batch (lr * batch / 64).
SGD momentum 0.9, weight decay 1e-4. On CUDA: bf16 autocast and channels_last_3d; on the CPU:
fp32.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from videomix_dali.recipes import Schedule, load_recipe

from . import distributed as dist_utils

__all__ = [
    "Schedule",
    "Trainer",
    "load_checkpoint",
    "save_checkpoint",
    "soft_cross_entropy",
    "to_soft_targets",
]


def to_soft_targets(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N,) int class ids -> one-hot float (N, K); (N, K) soft targets pass through."""
    if target.dim() == 1:
        return F.one_hot(target.long(), num_classes).float()
    if target.dim() != 2 or target.shape[1] != num_classes:
        raise ValueError(f"target of shape {tuple(target.shape)}: want (N,) or (N, {num_classes})")
    return target.float()


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k y_k log softmax(logits)_k; int targets are one-hot."""
    y = to_soft_targets(target, logits.shape[1]).to(logits.device)
    return -(y * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


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
    seed: int = 0
    device: str = "auto"
    num_threads: int = 2
    eval_every: int = 0  # 0: evaluate only after the last epoch

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


def device_of(name: str) -> tuple[str, torch.device]:
    """(loader device 'cpu'/'gpu', torch device for the model)."""
    if name == "auto":
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("--device gpu but no CUDA device is visible; use --device cpu")
        return "gpu", torch.device("cuda", torch.cuda.current_device())
    if name != "cpu":
        raise SystemExit(f"--device {name!r} must be cpu, gpu or auto")
    return "cpu", torch.device("cpu")


class Trainer:
    """One run: model (DDP-wrapped when distributed), SGD, schedule, loader.

    ``state_dict()`` holds tensors and primitive containers only, so a checkpoint loads with
    ``torch.load(..., weights_only=True)``; it captures the loader's position too, so a run
    saved mid-epoch continues with exactly the batches (and losses) it would have seen.
    """

    def __init__(
        self,
        model: nn.Module,
        loader,
        schedule: Schedule,
        *,
        device: torch.device,
        lr_batch: int | None = None,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        log_path: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        model = model.to(device)
        if self.cuda:
            model = model.to(memory_format=torch.channels_last_3d)
        self.model = model
        self.net = dist_utils.wrap_ddp(model, device)
        self.loader = loader
        self.num_classes = loader.num_classes
        self.schedule = schedule
        global_batch = lr_batch or loader.recipe.batch_size * dist_utils.world_size()
        self.base_lr = schedule.scaled_lr(global_batch)
        decay, no_decay = [], []
        for p in model.parameters():
            (no_decay if p.dim() <= 1 else decay).append(p)
        # weight decay on conv / linear weights; BN and biases without (SlowFast's default)
        self.optimizer = torch.optim.SGD(
            [
                {"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.base_lr,
            momentum=momentum,
        )
        self.iteration = 0
        self.epoch = 0
        self.log_path = Path(log_path) if log_path else None
        self.progress = progress and dist_utils.is_main()

    # ---- one step
    def lr_now(self) -> float:
        return self.base_lr * self.schedule.factor(self.iteration / len(self.loader))

    def step(self, video: torch.Tensor, target: torch.Tensor) -> float:
        """One SGD step on a batch; returns the loss (before the update)."""
        self.net.train()
        lr = self.lr_now()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        video = video.to(self.device, non_blocking=True)
        target = target.to(self.device, non_blocking=True)
        if self.cuda:
            video = video.contiguous(memory_format=torch.channels_last_3d)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = self.net(video)
        else:
            logits = self.net(video)
        loss = soft_cross_entropy(logits, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        return float(loss.detach())

    def train_epoch(self, max_steps: int | None = None) -> dict[str, Any]:
        """Run the rest of the current epoch (or ``max_steps`` batches of it)."""
        start = time.perf_counter()
        losses, clips = [], 0
        total = len(self.loader) - self.loader.step
        bar = tqdm(
            total=total if max_steps is None else min(total, max_steps),
            desc=f"epoch {self.epoch + 1}/{self.schedule.epochs}",
            unit="batch",
            disable=not self.progress,
            leave=False,
        )
        with bar:
            for video, target in self.loader:
                losses.append(self.step(video, target))
                clips += video.shape[0]
                bar.update()
                bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{self.lr_now():.4g}")
                if max_steps is not None and len(losses) >= max_steps:
                    break
        finished = self.loader.step == 0 and self.loader.epoch == self.epoch + 1
        if finished:
            self.epoch += 1
            dist_utils.average_buffers(self.model)
        seconds = time.perf_counter() - start
        loss = torch.tensor([sum(losses), len(losses)], dtype=torch.float64)
        dist_utils.all_reduce_sum(loss)
        return {
            "epoch": self.epoch,
            "iteration": self.iteration,
            "train_loss": float(loss[0] / max(loss[1], 1)),
            "lr": self.lr_now(),
            "time_s": round(seconds, 3),
            "clips_per_s": round(clips * dist_utils.world_size() / max(seconds, 1e-9), 2),
        }

    def log(self, record: dict[str, Any]) -> None:
        if self.log_path is not None and dist_utils.is_main():
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    # ---- checkpoint
    def state_dict(self) -> dict[str, Any]:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"iteration": self.iteration, "base_lr": self.base_lr},
            "loader": dict(self.loader.state_dict()),
            "epoch": self.epoch,
            "rng": {"torch": torch.get_rng_state()},
        }
        if self.cuda:
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["scheduler"]["iteration"])
        self.base_lr = float(state["scheduler"]["base_lr"])
        self.loader.load_state_dict(state["loader"])
        self.epoch = int(state["epoch"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.cuda and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)


def save_checkpoint(path: str | Path, trainer: Trainer, extra: dict[str, Any]) -> None:
    """Atomically write ``trainer.state_dict()`` plus ``extra`` (config, classes) on rank 0."""
    if not dist_utils.is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({**trainer.state_dict(), **extra}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint of this app; only tensors and primitive containers (weights_only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def build_run(cfg: TrainConfig, *, progress: bool = True):
    """(model, train loader, mix, torch device, loader device) of a config."""
    from videomix_dali import VideoLoader
    from videomix_dali.mix import VideoMix

    from .models import build_model, loader_frames

    loader_device, device = device_of(cfg.device)
    recipe = load_recipe(cfg.recipe)
    # class count from the index before building the model: the loader needs the model's alpha
    from videomix_dali.index import read_index

    num_classes = len(read_index(cfg.data).classes)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes, width=cfg.width, dropout=cfg.dropout)
    t, tau = loader_frames(model, cfg.num_frames or recipe.num_frames, cfg.stride or recipe.stride)
    mix = None
    if cfg.mix != "none":
        mix = VideoMix(
            cfg.mix,
            alpha=cfg.alpha,
            prob=cfg.prob,
            num_videos=cfg.num_videos,
            num_classes=num_classes,
            seed=cfg.seed,
        )
    loader = VideoLoader(
        cfg.data,
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
    )
    return model, loader, mix, device, loader_device


def run(cfg: TrainConfig, out: str | Path, *, resume: str | None = None, progress=True):
    """Train ``cfg`` into ``out`` (checkpoint.pt, metrics.jsonl, predictions_*.csv) and
    evaluate on ``cfg.val``; returns {split: EvalResult} of the final evaluation."""
    from .evaluate import evaluate, make_eval_loader, write_predictions

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
        for key in ("model", "width", "recipe", "mix", "alpha", "prob", "seed", "batch_size"):
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
    if main:
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
        if main:
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
        trainer.log({"final": True, "train_time_s": round(time.perf_counter() - start, 2), **final})
    return results
