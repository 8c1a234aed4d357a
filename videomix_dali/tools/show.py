"""A PNG grid of a mixed batch: samples x frames, boxes outlined, label weights written.

Uses matplotlib's object API (no pyplot, no global backend state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..mix.arrays import is_cupy, unwrap_array
from ..mix.params import MixParams

__all__ = ["render_mix_grid", "grid_pixel_size"]

_CELL_W = 160  # pixels per frame column
_LABEL_H = 26  # pixels of the text strip above each row
_GAP = 4  # pixels between cells
_COLORS = ("#ff3b30", "#30d158", "#0a84ff", "#ffd60a", "#bf5af2", "#ff9f0a")


def _cell_h(H: int, W: int) -> int:
    return max(24, int(round(_CELL_W * H / W)))


def grid_pixel_size(n_rows: int, n_cols: int, H: int, W: int, *, dpi: int = 100) -> tuple[int, int]:
    """(width, height) in pixels of the PNG that :func:`render_mix_grid` writes.

    ``n_cols`` is the number of frames shown (``min(T, max_frames)``).
    """
    scale = dpi / 100.0
    w = n_cols * _CELL_W + (n_cols + 1) * _GAP
    h = n_rows * (_cell_h(H, W) + _LABEL_H + _GAP) + _GAP
    return int(round(w * scale)), int(round(h * scale))


def _to_ncthw(x: Any) -> np.ndarray:
    if isinstance(x, (list, tuple)):
        clips = [np.asarray(_host(f)) for f in x]
        return np.stack([c.transpose(3, 0, 1, 2) for c in clips])
    a = np.asarray(_host(x))
    if a.ndim != 5:
        raise ValueError(f"x must be (N, C, T, H, W) or a list of (T, H, W, C), got {a.shape}")
    return a


def _host(a: Any) -> Any:
    arr, _, _ = unwrap_array(a, "x")
    if is_cupy(arr):
        arr = arr.get()
    return arr


def _display(clip: np.ndarray) -> np.ndarray:
    """(C, T, H, W) -> (T, H, W, 3) float in [0, 1]."""
    v = clip.astype(np.float32)
    if clip.dtype == np.uint8:
        v = v / 255.0
    else:
        lo, hi = float(v.min()), float(v.max())
        v = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    C = v.shape[0]
    rgb = v[:3] if C >= 3 else np.repeat(v[:1], 3, axis=0)
    return np.clip(rgb.transpose(1, 2, 3, 0), 0.0, 1.0)


def _label_text(ys: np.ndarray, names: Any, max_terms: int) -> str:
    order = np.argsort(-ys, kind="stable")
    floor = float(ys.min()) if ys.size > 1 else 0.0
    terms = []
    for k in order[:max_terms]:
        v = float(ys[k])
        if v <= floor + 1e-6 and terms:
            break
        name = names[k] if names is not None and k < len(names) else f"class {k}"
        terms.append(f"{v:.2f} {name}")
    return " + ".join(terms)


def render_mix_grid(
    x: Any,
    params: MixParams,
    y_soft: Any,
    class_names: Any,
    path: str | Path,
    *,
    max_frames: int = 8,
    dpi: int = 100,
) -> Path:
    """Write a PNG grid of a mixed batch; returns the path.

    ``x``: the mixed batch, (N, C, T, H, W) uint8 (shown as is) or float (min-max
    scaled per sample), or a list of (T, H, W, C) clips.  One row per sample, up to
    ``max_frames`` evenly spaced frames per row; every pasted box that covers a frame
    is outlined (one colour per paste; dashed for cutout), and the row's title gives
    the soft label, e.g. ``0.73 move_right + 0.27 move_up``.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    clips = _to_ncthw(x)
    N, _, T, H, W = clips.shape
    if (N, T, H, W) != (params.batch_size, *params.dims):
        raise ValueError(f"x of shape {clips.shape} does not match params.shape {params.shape}")
    ys = None if y_soft is None else np.asarray(_host(y_soft), dtype=np.float64)
    F = int(min(T, max_frames))
    frames = np.unique(np.round(np.linspace(0, T - 1, F)).astype(int)) if F < T else np.arange(T)
    F = len(frames)
    ch = _cell_h(H, W)
    width_px, height_px = grid_pixel_size(N, F, H, W, dpi=100)
    fig = Figure(figsize=(width_px / 100.0, height_px / 100.0), dpi=100, facecolor="white")
    for n in range(N):
        shown = _display(clips[n])
        top = _GAP + n * (ch + _LABEL_H + _GAP)
        text = f"[{n}]"
        if params.applied[n] and params.num_pastes:
            src = [int(p) for p in params.partners[n] if p >= 0]
            verb = {"mixup": "blend", "cutout": "erase"}.get(params.mode, "paste")
            text += f" {verb}" + (" from " + ", ".join(f"#{p}" for p in src) if src else "")
        else:
            text += " not mixed"
        if ys is not None:
            text += ":  " + _label_text(ys[n], class_names, 1 + params.num_pastes)
        fig.text(
            _GAP / width_px,
            1.0 - (top + _LABEL_H / 2) / height_px,
            text,
            ha="left",
            va="center",
            fontsize=9,
            family="monospace",
        )
        for i, t in enumerate(frames):
            left = _GAP + i * (_CELL_W + _GAP)
            ax = fig.add_axes(
                (
                    left / width_px,
                    1.0 - (top + _LABEL_H + ch) / height_px,
                    _CELL_W / width_px,
                    ch / height_px,
                )
            )
            ax.imshow(shown[t], interpolation="nearest", aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(
                0.02,
                0.97,
                f"t={t}",
                transform=ax.transAxes,
                ha="left",
                va="top",
                fontsize=7,
                color="white",
                bbox=dict(facecolor="black", alpha=0.5, pad=1, lw=0),
            )
            if not params.applied[n] or params.mode in ("mixup", "none"):
                continue
            for j in range(params.num_pastes):
                b = params.boxes[n, j, t if params.mode == "perframe" else 0]
                t1, t2, h1, h2, w1, w2 = (int(v) for v in b)
                if not (t1 <= t < t2) or h2 <= h1 or w2 <= w1:
                    continue
                ax.add_patch(
                    Rectangle(
                        (w1 - 0.5, h1 - 0.5),
                        w2 - w1,
                        h2 - h1,
                        fill=False,
                        lw=2,
                        edgecolor=_COLORS[j % len(_COLORS)],
                        linestyle="--" if params.partners[n, j] < 0 else "-",
                    )
                )
    path = Path(path)
    fig.savefig(path, dpi=dpi, format="png")
    return path
