"""Training steps: soft-target cross-entropy, SGD with the recipe's schedule, JSON-lines metrics.

Protocols (paper Sec. 4.1, 4.2, Appendix C; the ``[schedule]`` of each ``pipelines/*.toml``):
Kinetics / Mini-Kinetics train from scratch for 250 epochs, batch 64, lr 0.1, cosine decay;
SSv2 fine-tunes for 40 epochs, lr 0.01, x0.1 at epochs 26 and 33. The learning rate is scaled
linearly with the global batch (lr * batch / 64). SGD momentum 0.9, weight decay 1e-4. On
CUDA: bf16 autocast and channels_last_3d; on the CPU: fp32.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from videomix_dali.recipes import Schedule

from . import distributed as dist_utils

__all__ = ["Schedule", "Trainer", "soft_cross_entropy", "to_soft_targets"]


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
