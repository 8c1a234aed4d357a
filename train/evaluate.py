"""Multi-view evaluation: top-1 / top-5 from the softmax averaged over each video's views.

Kinetics: 3 spatial crops x 10 uniform temporal clips (30 views); SSv2: 3 x 1 (the recipe's
``test_crops`` x ``test_clips``). The loader (``train=False, return_index=True``) yields every
view with the id of its video; probabilities are summed per video id (and all-reduced over
ranks under DDP), then divided by the number of views seen.

    python -m train.evaluate --checkpoint runs/x/checkpoint.pt --data PATH [--out preds.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from videomix_dali import VideoLoader
from videomix_dali.recipes import load_recipe

from . import distributed as dist_utils
from .arguments import check_dataset, existing_file, positive_int
from .checkpoint import device_of, load_checkpoint
from .models import build_model, loader_frames

__all__ = ["EvalResult", "accumulate_views", "evaluate", "topk_correct", "write_predictions"]


@dataclass
class EvalResult:
    probs: torch.Tensor  # (V, K) mean softmax over the views of each video
    labels: torch.Tensor  # (V,)
    views: torch.Tensor  # (V,) views seen per video (0: video not evaluated)
    top1: float
    top5: float
    num_videos: int

    def metrics(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}top1": self.top1, f"{prefix}top5": self.top5}


def accumulate_views(
    sums: torch.Tensor, counts: torch.Tensor, probs: torch.Tensor, index: torch.Tensor
) -> None:
    """Add the per-view ``probs`` (N, K) into ``sums[index]`` and count views in ``counts``."""
    index = index.to(sums.device).long()
    sums.index_add_(0, index, probs.to(sums.dtype))
    counts.index_add_(0, index, torch.ones_like(index, dtype=counts.dtype))


def topk_correct(probs: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    """Videos whose label is among the ``k`` highest scores (ties: lower class id first)."""
    k = min(k, probs.shape[1])
    top = probs.topk(k, dim=1).indices
    return int((top == labels[:, None]).any(dim=1).sum())


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device, *, progress=True) -> EvalResult:
    """Evaluate ``model`` on every view of ``loader`` (``train=False, return_index=True``)."""
    if not loader.return_index or loader.train:
        raise ValueError("evaluate needs a loader with train=False and return_index=True")
    model.eval()
    num_videos, k = len(loader.entries), loader.num_classes
    sums = torch.zeros(num_videos, k, dtype=torch.float64)
    counts = torch.zeros(num_videos, dtype=torch.float64)
    cuda = device.type == "cuda"
    bar = tqdm(
        total=len(loader) - loader.step,
        desc="eval",
        unit="batch",
        leave=False,
        disable=not (progress and dist_utils.is_main()),
    )
    with bar:
        for video, _, index in loader:
            video = video.to(device, non_blocking=True)
            if cuda:
                video = video.contiguous(memory_format=torch.channels_last_3d)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = model(video)
            else:
                logits = model(video)
            accumulate_views(sums, counts, logits.float().softmax(dim=1).cpu(), index.cpu())
            bar.update()
    dist_utils.all_reduce_sum(sums)
    dist_utils.all_reduce_sum(counts)
    labels = torch.tensor([e.label for e in loader.entries], dtype=torch.long)
    seen = counts > 0
    probs = sums / counts.clamp(min=1)[:, None]
    n = int(seen.sum())
    top1 = topk_correct(probs[seen], labels[seen], 1) / max(n, 1)
    top5 = topk_correct(probs[seen], labels[seen], 5) / max(n, 1)
    return EvalResult(probs.float(), labels, counts.long(), 100 * top1, 100 * top5, n)


HEADER = ["path", "label", "label_name", "predicted", "predicted_name", "top5", "p_true", "views"]


def write_predictions(path: str | Path, result: EvalResult, entries, classes: list[str]) -> None:
    """CSV, one row per evaluated video: path, label, predicted, top-5 ids, p(true class)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    k = min(5, result.probs.shape[1])
    top = result.probs.topk(k, dim=1).indices
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i, e in enumerate(entries):
            if result.views[i] == 0:
                continue
            pred = int(top[i, 0])
            w.writerow(
                [
                    str(e.path),
                    e.label,
                    classes[e.label],
                    pred,
                    classes[pred],
                    " ".join(str(int(c)) for c in top[i]),
                    f"{float(result.probs[i, e.label]):.6f}",
                    int(result.views[i]),
                ]
            )


def make_eval_loader(source, cfg, model, *, device: str, batch_size: int | None = None):
    """The test-view loader of a run's recipe (SlowFast: the fast clip)."""
    recipe = load_recipe(cfg["recipe"])
    t = cfg.get("num_frames") or recipe.num_frames
    tau = cfg.get("stride") or recipe.stride
    t, tau = loader_frames(model, t, tau)
    return VideoLoader(
        source,
        recipe=cfg["recipe"],
        device=device,
        train=False,
        batch_size=batch_size or cfg.get("batch_size") or recipe.batch_size,
        num_frames=t,
        stride=tau,
        crop_size=cfg.get("crop_size"),
        seed=cfg.get("seed", 0),
        return_index=True,
        num_threads=cfg.get("num_threads", 2),
        progress=False,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument(
        "--checkpoint",
        required=True,
        type=existing_file,
        help="checkpoint.pt written by python -m train",
    )
    p.add_argument("--data", required=True, help="test set: folder-per-class or an index file")
    p.add_argument("--out", help="CSV of per-video predictions")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--batch-size", type=positive_int)
    args = p.parse_args(argv)
    check_dataset(p, "--data", args.data)

    dist_utils.setup(args.device)
    loader_device, device = device_of(args.device)
    ckpt = load_checkpoint(args.checkpoint)
    cfg = ckpt["config"]
    model = build_model(cfg["model"], len(ckpt["classes"]), width=cfg["width"])
    model.load_state_dict(ckpt["model"])
    model.to(device)
    loader = make_eval_loader(
        args.data, cfg, model, device=loader_device, batch_size=args.batch_size
    )
    if list(loader.classes) != list(ckpt["classes"]):
        print(f"warning: classes of {args.data} differ from the checkpoint's", file=sys.stderr)
    res = evaluate(model, loader, device)
    if dist_utils.is_main():
        r = loader.recipe
        print(
            f"{args.data}: {res.num_videos} videos x {r.test_clips} clips x "
            f"{r.test_crops} crops: top-1 {res.top1:.2f}  top-5 {res.top5:.2f}"
        )
        if args.out:
            write_predictions(args.out, res, loader.entries, loader.classes)
            print(f"predictions: {args.out}")
    dist_utils.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
