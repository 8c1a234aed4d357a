"""Spatio-temporal class activation maps (ST-CAM, VideoMix paper Appendix F, Fig. 3).

The last feature map before global average pooling, (C, T', H', W'), is multiplied with the
classifier weights of a class (C,) giving a (T', H', W') map per class; it is upsampled
(trilinear) to the clip and drawn over its frames, one row per class. As in the paper, the last
spatial stride is reduced from 2 to 1 (``--last-stride 1``, the default here; conv weights do
not depend on the stride, so the trained checkpoint loads as it is) for a finer map.

    python -m train.cam --checkpoint runs/x/checkpoint.pt --video A.webm \\
        [--video2 B.webm --mix spatial] [--classes move_left,move_up] --out cams/
    python -m train.cam --checkpoint none.pt spatial.pt --video A.webm B.webm --out grid.png

With several checkpoints or videos, one grid: per video its frames, then one row per checkpoint
with the CAM of the video's class (its folder name; else the checkpoint's top-1).
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

from .arguments import non_negative_int, positive_int
from .checkpoint import load_checkpoint
from .models import build_model, loader_frames

__all__ = ["cam_grid", "compute_cam", "render_cam_grid", "render_cam_png", "upsample_cam"]


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


def render_cam_grid(
    rows: list[tuple[str, np.ndarray, np.ndarray | None]],
    path: str | Path,
    *,
    title: str = "",
    max_frames: int = 8,
) -> Path:
    """Grid PNG, one row per ``(label, frames (T, H, W, 3) uint8, cam (T, H, W) in [0, 1] or
    None)``: the frames, with the CAM overlaid where given; columns: up to ``max_frames``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = rows[0][1].shape[0]
    cols = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int))
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(1.6 * len(cols), 1.7 * len(rows)), squeeze=False
    )
    for i, (label, frames, cam) in enumerate(rows):
        for j, ti in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(frames[ti])
            if cam is not None:
                ax.imshow(cam[ti], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            elif i == 0:
                ax.set_title(f"t={ti}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
    rows = [("input", frames, None)]
    rows += [(f"CAM: {name}", frames, cam) for name, cam in zip(class_names, cams, strict=True)]
    return render_cam_grid(rows, path, title=title, max_frames=max_frames)


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


def _load_model(path: str, last_stride: int) -> tuple[torch.nn.Module, dict, list[str]]:
    """(model, run config, class names) of a checkpoint of this app."""
    ckpt = load_checkpoint(path)
    cfg, classes = ckpt["config"], list(ckpt["classes"])
    model = build_model(cfg["model"], len(classes), width=cfg["width"], last_stride=last_stride)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg, classes


def _load_clips(videos: list[str], cfg: dict, model: torch.nn.Module):
    """The centre test view of each video, (N, C, T, H, W) normalized, and the loader's
    recipe (for the mean and std)."""
    r = load_recipe(cfg["recipe"])
    t, tau = loader_frames(
        model, cfg.get("num_frames") or r.num_frames, cfg.get("stride") or r.stride
    )
    loader = VideoLoader(
        [(v, 0) for v in videos],
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
    return x, loader.recipe


def cam_grid(
    checkpoints: list[str],
    videos: list[str],
    out: str | Path,
    *,
    last_stride: int = 1,
    max_frames: int = 8,
) -> Path:
    """One PNG: per video its frames, then per checkpoint the CAM of the video's class (the
    name of its folder if that is a class, else the checkpoint's top-1), labelled with the
    checkpoint's mix mode, the CAM's peak (each row is scaled to it), p(class) and the
    prediction."""
    models = [_load_model(c, last_stride) for c in checkpoints]
    x, recipe = _load_clips(videos, models[0][1], models[0][0])
    rows: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    for video, clip in zip(videos, x, strict=True):
        frames = _to_frames(clip, recipe.mean, recipe.std)
        folder = Path(video).parent
        rows.append((f"{folder.parent.name}/{folder.name}", frames, None))
        for model, cfg, classes in models:
            with torch.no_grad():
                probs = model(clip[None]).softmax(1)[0]
            pred = int(probs.argmax())
            k = classes.index(folder.name) if folder.name in classes else pred
            cam = compute_cam(model, clip, [k])
            up = upsample_cam(cam, tuple(clip.shape[1:]))[0]
            peak = float(cam.clamp(min=0).max())  # each row is scaled to its own peak
            label = (
                f"{cfg['mix']}: CAM {classes[k]}\npeak {peak:.1f}, p={float(probs[k]):.2f}\n"
                f"says {classes[pred]}"
            )
            rows.append((label, frames, up.numpy()))
    title = "ST-CAM of each video's class, per model"
    return render_cam_grid(rows, out, title=title, max_frames=max_frames)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.cam", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, nargs="+", help="one, or several for a grid")
    p.add_argument("--video", required=True, nargs="+", help="one, or several for a grid")
    p.add_argument("--video2", help="second video, mixed into the first with --mix")
    p.add_argument("--mix", default="spatial", choices=[m for m in MODES if m != "none"])
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the mixing box")
    p.add_argument("--classes", help="class names or ids, comma-separated (default: top-2)")
    p.add_argument("--last-stride", type=int, default=1, choices=[1, 2])
    p.add_argument("--frames", type=positive_int, default=8, help="columns: frames shown (at most)")
    p.add_argument("--out", default="cams", help="folder; a grid: the PNG's path")
    args = p.parse_args(argv)

    if len(args.checkpoint) > 1 or len(args.video) > 1:
        if args.video2 or args.classes:
            p.error(
                "argument --video2/--classes: a grid (several --checkpoint / --video) takes none"
            )
        png = cam_grid(
            args.checkpoint,
            args.video,
            args.out,
            last_stride=args.last_stride,
            max_frames=args.frames,
        )
        print(f"ST-CAM grid, {len(args.video)} videos x {len(args.checkpoint)} models: {png}")
        return 0
    [video] = args.video
    model, cfg, classes = _load_model(args.checkpoint[0], args.last_stride)
    x, recipe = _load_clips([video] + ([args.video2] if args.video2 else []), cfg, model)
    title = Path(video).name
    if args.video2:
        mix = VideoMix(args.mix, num_classes=len(classes), seed=args.seed, rank=0)
        x, y = mix(x, torch.tensor([0, 1]))
        lam = float(y[0, 0])  # share of the first video's voxels
        title = f"{args.mix} mix: {Path(video).name} ({lam:.2f}) + {Path(args.video2).name}"
    clip = x[0]
    with torch.no_grad():
        probs = model(clip[None]).softmax(1)[0]
    top = probs.topk(min(2, len(classes))).indices.tolist()
    ids = _class_ids(args.classes, classes, top)
    cam = compute_cam(model, clip, ids)
    up = upsample_cam(cam, tuple(clip.shape[1:]))
    frames = _to_frames(clip, recipe.mean, recipe.std)
    names = [f"{classes[i]} (p={float(probs[i]):.2f})" for i in ids]
    out = Path(args.out)
    stem = Path(video).stem + (f"+{Path(args.video2).stem}" if args.video2 else "")
    png = out / f"stcam_{stem}.png"
    render_cam_png(frames, up.numpy(), names, png, title=title, max_frames=args.frames)
    np.save(out / f"stcam_{stem}.npy", cam.numpy())
    print(f"ST-CAM {tuple(cam.shape)} (classes x T' x H' x W') for {', '.join(names)}: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
