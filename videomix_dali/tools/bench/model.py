"""``--model``: training steps/s of a model fed by a loader vs the model alone (is the GPU
kept fed?).

Models other than ``tiny3d`` come from a model factory the caller passes in, ``factory(name,
num_classes) -> nn.Module`` (the bench command line passes the training app's ``build_model``
when it runs from the repository); the library itself defines only ``tiny3d``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

#: ``factory(name, num_classes)`` -> a torch module taking (N, C, T, H, W) clips
ModelFactory = Callable[[str, int], Any]


def tiny3d_net(num_classes: int) -> Any:
    """A small 3-D conv net (torchvision-free) for ``--model tiny3d``."""
    from torch import nn

    return nn.Sequential(
        nn.Conv3d(3, 32, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
        nn.BatchNorm3d(32),
        nn.ReLU(inplace=True),
        nn.Conv3d(32, 64, 3, (1, 2, 2), 1, bias=False),
        nn.BatchNorm3d(64),
        nn.ReLU(inplace=True),
        nn.Conv3d(64, 128, 3, 2, 1, bias=False),
        nn.BatchNorm3d(128),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(128, num_classes),
    )


def build_bench_model(name: str, num_classes: int, factory: ModelFactory | None = None) -> Any:
    """``tiny3d`` (defined here) or ``factory(name, num_classes)``."""
    if name == "tiny3d":
        return tiny3d_net(num_classes)
    if factory is None:
        raise ValueError(
            f"--model {name!r}: no model factory (the training app's train/models.py is "
            "importable when run from the repository root); use --model tiny3d"
        )
    try:
        return factory(name, num_classes)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"--model {name!r}: {exc}") from exc


def time_model_steps(
    model: Any,
    batches: Iterator[tuple[Any, Any]] | None,
    *,
    device: str,
    duration: float,
    warmup: float,
    example: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Training steps/s with batches from ``batches`` (the loader) or, without it, the same
    ``example`` batch over and over (the model's own speed, an upper bound)."""
    import torch

    dev = torch.device("cuda" if device == "gpu" else "cpu")
    model = model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)

    def step(video, target):
        video, target = video.to(dev, non_blocking=True), target.to(dev, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(video), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def pull():
        return next(batches) if batches is not None else example

    t_warm = time.perf_counter()
    while True:
        step(*pull())
        sync()
        if time.perf_counter() - t_warm >= warmup:
            break
    clips, steps = 0, 0
    t0 = time.perf_counter()
    while True:
        video, target = pull()
        step(video, target)
        sync()
        clips += int(video.shape[0])
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= duration and steps >= 2:
            break
    return {"steps_per_s": round(steps / elapsed, 3), "clips_per_s": round(clips / elapsed, 2)}


def model_fields(
    model_name: str,
    make_stream: Callable[[], Iterator[tuple[Any, Any]]],
    cfg: dict[str, Any],
    warmup: float,
    duration: float,
    factory: ModelFactory | None = None,
) -> dict[str, Any]:
    """A row's training fields: clips/s fed by the loader vs the model alone on one repeated
    batch."""
    import torch

    stream = make_stream()
    first = next(stream)
    num_classes = cfg["classes"]
    net = build_bench_model(model_name, num_classes, factory)
    alone = time_model_steps(
        net,
        None,
        device=cfg["device"],
        duration=duration,
        warmup=warmup,
        example=(first[0].clone(), first[1].clone()),
    )
    net = build_bench_model(model_name, num_classes, factory)
    fed = time_model_steps(net, stream, device=cfg["device"], duration=duration, warmup=warmup)
    stream.close()
    del stream, net
    torch.cuda.empty_cache()
    return {
        "model": model_name,
        "train_clips_per_s": fed["clips_per_s"],
        "model_only_clips_per_s": alone["clips_per_s"],
        "gpu_fed": round(fed["clips_per_s"] / alone["clips_per_s"], 3),
    }
