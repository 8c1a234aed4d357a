"""VideoMix written the way timm-style training code mixes a batch: the baseline's mixing."""

from __future__ import annotations

from typing import Any

import numpy as np

_BOX_AXES = {"spatial": (3, 4), "temporal": (2,), "spatiotemporal": (2, 3, 4), "cutout": (2, 3, 4)}


def timm_style_mix(
    x: Any,
    y: Any,
    num_classes: int,
    mode: str = "spatial",
    *,
    alpha: float = 1.0,
    rng: np.random.Generator | None = None,
) -> tuple[Any, Any]:
    """VideoMix the way timm-style training code mixes a batch, in place on a torch ``x``
    (N, C, T, H, W): lam ~ Beta(alpha, alpha), one box for the batch (side ``L * (1 -
    lam) ** (1 / d)`` per cut axis, centre uniform, clipped), partner = the reversed batch
    (``x.flip(0)``), and the label weight recomputed from the clipped box. ``mixup`` blends,
    ``cutout`` erases (labels unchanged). Returns (x, soft targets (N, K) float32).

    Used by the baseline's training loop; ``perframe`` is not written here (the bench calls
    the library op for it).
    """
    import torch

    rng = np.random.default_rng() if rng is None else rng
    lam = float(rng.beta(alpha, alpha))
    target = torch.nn.functional.one_hot(y.long(), num_classes).float()
    if mode == "mixup":
        partner = x.flip(0)
        x.mul_(lam).add_(partner, alpha=1.0 - lam)
        return x, target * lam + target.flip(0) * (1.0 - lam)
    if mode not in _BOX_AXES:
        raise ValueError(f"mode={mode!r} is not written timm-style; use the library op")
    axes = _BOX_AXES[mode]
    index: list[Any] = [slice(None)] * 5
    inside = 1.0
    for axis in axes:
        length = x.shape[axis]
        side = int(length * (1.0 - lam) ** (1.0 / len(axes)))
        centre = int(rng.integers(0, length))
        lo, hi = np.clip([centre - side // 2, centre + side // 2], 0, length)
        index[axis] = slice(int(lo), int(hi))
        inside *= (hi - lo) / length
    box = tuple(index)
    if mode == "cutout":
        x[box] = 0
        return x, target
    x[box] = x.flip(0)[box]
    lam = 1.0 - inside  # the weight of the sample itself, from the clipped box
    return x, target * lam + target.flip(0) * (1.0 - lam)
