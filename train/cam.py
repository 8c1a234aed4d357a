"""Spatio-temporal class activation maps (ST-CAM, VideoMix paper Appendix F, Fig. 3).

The last feature map before global average pooling, (C, T', H', W'), is multiplied with the
classifier weights of a class (C,) giving a (T', H', W') map per class; it is upsampled
(trilinear) to the clip and drawn over its frames, one row per class. As in the paper, the last
spatial stride is reduced from 2 to 1 (``--last-stride 1``, the default here; conv weights do
not depend on the stride, so the trained checkpoint loads as it is) for a finer map.

    python -m train.cam --checkpoint runs/x/checkpoint.pt --video A.webm \\
        [--video2 B.webm --mix spatial] [--classes move_left,move_up] --out cams/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from videomix_dali import VideoLoader
from videomix_dali.mix import MODES, VideoMix
from videomix_dali.recipes import load_recipe

from .checkpoint import load_checkpoint
from .models import build_model, loader_frames

__all__ = ["compute_cam", "render_cam_png", "upsample_cam"]


@torch.no_grad()
def compute_cam(model: torch.nn.Module, clip: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """ST-CAM of one clip (C, T, H, W) for ``classes``: (len(classes), T', H', W')."""
    model.eval()
    cams = model.cam(clip[None])[0]  # (K, T', H', W')
    return cams[classes].float()


def upsample_cam(cam: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """(n, T', H', W') -> (n, T, H, W), trilinear, each class scaled to [0, 1] over the clip
    (ReLU first: the CAM shows where the evidence *for* the class is)."""
    up = F.interpolate(cam[:, None], size=size, mode="trilinear", align_corners=False)[:, 0]
    up = up.clamp(min=0)
    peak = up.flatten(1).amax(dim=1).clamp(min=1e-12)
    return up / peak[:, None, None, None]


def render_cam_png(
    frames: np.ndarray,
    cams: np.ndarray,
    class_names: list[str],
    path: str | Path,
    *,
    title: str = "",
    max_frames: int = 8,
) -> Path:
    """Grid PNG: row 0 the frames (T, H, W, 3 uint8), then one overlay row per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = frames.shape[0]
    cols = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int))
    rows = 1 + len(class_names)
    fig, axes = plt.subplots(rows, len(cols), figsize=(1.6 * len(cols), 1.7 * rows), squeeze=False)
    for j, ti in enumerate(cols):
        axes[0, j].imshow(frames[ti])
        axes[0, j].set_title(f"t={ti}", fontsize=8)
        for i in range(len(class_names)):
            ax = axes[i + 1, j]
            ax.imshow(frames[ti])
            ax.imshow(cams[i, ti], cmap="jet", alpha=0.5, vmin=0, vmax=1)
        for i in range(rows):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=8)
    for i, name in enumerate(class_names):
        axes[i + 1, 0].set_ylabel(f"CAM: {name}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _to_frames(clip: torch.Tensor, mean, std) -> np.ndarray:
    """Normalized (C, T, H, W) -> uint8 (T, H, W, C)."""
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None, None]
    x = (clip.float().cpu() * s + m).clamp(0, 255).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).numpy()


def _class_ids(spec: str | None, classes: list[str], fallback: list[int]) -> list[int]:
    if not spec:
        return fallback
    ids = []
    for c in spec.split(","):
        c = c.strip()
        if c in classes:
            ids.append(classes.index(c))
        elif c.isdigit() and int(c) < len(classes):
            ids.append(int(c))
        else:
            raise SystemExit(f"--classes: {c!r} is not a class of the checkpoint: {classes}")
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.cam", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--video2", help="second video, mixed into the first with --mix")
    p.add_argument("--mix", default="spatial", choices=[m for m in MODES if m != "none"])
    p.add_argument("--seed", type=int, default=0, help="seed of the mixing box")
    p.add_argument("--classes", help="class names or ids, comma-separated (default: top-2)")
    p.add_argument("--last-stride", type=int, default=1, choices=[1, 2])
    p.add_argument("--out", default="cams")
    args = p.parse_args(argv)

    ckpt = load_checkpoint(args.checkpoint)
    cfg, classes = ckpt["config"], list(ckpt["classes"])
    model = build_model(
        cfg["model"], len(classes), width=cfg["width"], last_stride=args.last_stride
    )
    model.load_state_dict(ckpt["model"])
    r = load_recipe(cfg["recipe"])
    t, tau = loader_frames(
        model, cfg.get("num_frames") or r.num_frames, cfg.get("stride") or r.stride
    )
    videos = [(args.video, 0)] + ([(args.video2, 0)] if args.video2 else [])
    loader = VideoLoader(
        videos,
        recipe=cfg["recipe"],
        device="cpu",
        train=False,
        batch_size=len(videos),
        num_frames=t,
        stride=tau,
        crop_size=cfg.get("crop_size"),
        test_clips=1,
        test_crops=1,
        shard_id=0,
        num_shards=1,
        progress=False,
    )
    x, _ = next(iter(loader))
    title = Path(args.video).name
    if args.video2:
        mix = VideoMix(args.mix, num_classes=len(classes), seed=args.seed, rank=0)
        x, y = mix(x, torch.tensor([0, 1]))
        lam = float(y[0, 0])  # share of the first video's voxels
        title = f"{args.mix} mix: {Path(args.video).name} ({lam:.2f}) + {Path(args.video2).name}"
    clip = x[0]
    with torch.no_grad():
        model.eval()
        probs = model(clip[None]).softmax(1)[0]
    top = probs.topk(min(2, len(classes))).indices.tolist()
    ids = _class_ids(args.classes, classes, top)
    cam = compute_cam(model, clip, ids)
    up = upsample_cam(cam, tuple(clip.shape[1:]))
    frames = _to_frames(clip, loader.recipe.mean, loader.recipe.std)
    names = [f"{classes[i]} (p={float(probs[i]):.2f})" for i in ids]
    out = Path(args.out)
    stem = Path(args.video).stem + (f"+{Path(args.video2).stem}" if args.video2 else "")
    png = render_cam_png(frames, up.numpy(), names, out / f"stcam_{stem}.png", title=title)
    np.save(out / f"stcam_{stem}.npy", cam.numpy())
    print(f"ST-CAM {tuple(cam.shape)} (classes x T' x H' x W') for {', '.join(names)}: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
