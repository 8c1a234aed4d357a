"""The WSTAL model of VideoMix Sec. 4.3 / App. D (BaSNet's base branch) and its training.

Two temporal convolutions (kernel 3, padding 1) with LeakyReLU, then a 1x1 convolution
giving the T-CAM: per position, logits of the K action classes and one background class
(BaSNet's base branch; every video is labelled "contains background", so the background
column learns where no action is and the per-position softmax gives the localizable
T-CAM).  Video-level logits are the top-k mean over time, k = max(1, T // 8).

Loss: soft-target cross-entropy on the video logits.  The target of a (mixed) sample is
its normalised multi-hot row ``y`` (sums to 1; mixed by exact segment share it still sums
to 1, each source contributing its share), extended as BaSNet does:
``q = [y, 1] / (sum(y) + 1) = [y / 2, 1 / 2]``, and ``loss = -sum(q * log_softmax(s))``.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from videomix_dali.loading.features import FeatureLoader
from videomix_dali.mix.hide import hide_segments, sample_hidden
from videomix_dali.source.features import FeatureDataset

__all__ = ["WSTALNet", "wstal_loss", "fit"]


class WSTALNet(nn.Module):
    """(N, T, D) features -> (video logits (N, K + 1), T-CAM logits (N, T, K + 1))."""

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        hidden: int = 2048,
        dropout: float = 0.7,
        background: bool = True,
    ) -> None:
        super().__init__()
        out = num_classes + int(background)
        self.num_classes = num_classes
        self.background = background
        self.body = nn.Sequential(
            nn.Conv1d(in_dim, hidden, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
        )
        self.cam = nn.Conv1d(hidden, out, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.cam(self.body(x.transpose(1, 2))).transpose(1, 2)  # (N, T, C)
        return topk_mean(cam), cam


def topk_mean(cam: torch.Tensor) -> torch.Tensor:
    """Mean of the k = max(1, T // 8) largest values over time: (N, T, C) -> (N, C)."""
    k = max(1, cam.shape[1] // 8)
    return cam.topk(k, dim=1).values.mean(dim=1)


def wstal_loss(video_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft-target CE; ``target`` (N, K) normalised (mixed) multi-hot.

    With a background column (logits have K + 1 columns) the target becomes
    ``[y, 1] / (sum(y) + 1)`` (BaSNet's base-branch label).
    """
    K = target.shape[1]
    if video_logits.shape[1] == K + 1:
        ones = torch.ones_like(target[:, :1])
        q = torch.cat([target, ones], dim=1)
        q = q / q.sum(dim=1, keepdim=True)
    elif video_logits.shape[1] == K:
        q = target / target.sum(dim=1, keepdim=True).clamp_min(1e-12)
    else:
        raise ValueError(f"logits have {video_logits.shape[1]} columns for {K} classes")
    return -(q * torch.log_softmax(video_logits, dim=1)).sum(dim=1).mean()


class HideAndSeek(NamedTuple):
    """Hide-and-Seek's settings: segment length (positions), probability, fill (D,)."""

    segment: int
    prob: float
    fill: np.ndarray


def fit(
    dataset: FeatureDataset,
    *,
    mix: Any = None,
    hide: HideAndSeek | None = None,
    epochs: int = 60,
    batch_size: int = 16,
    num_positions: int = 750,
    lr: float = 1e-4,
    weight_decay: float = 5e-4,
    hidden: int = 2048,
    dropout: float = 0.7,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    desc: str = "train",
) -> tuple[WSTALNet, dict[str, Any]]:
    """Train a :class:`WSTALNet` on ``dataset`` (video-level labels only); return it + stats.

    ``mix``: a ``VideoMix`` (temporal) applied inside the DALI graph, or None. ``hide``:
    Hide-and-Seek on every batch (positions drawn from ``SeedSequence([seed, epoch, step, 3])``,
    labels unchanged), or None. The model init and the loader's order/jitter come from
    ``seed``.
    """
    torch.manual_seed(seed)
    model = WSTALNet(
        dataset.dim, dataset.num_classes, hidden=hidden, dropout=dropout, background=True
    )
    tdev = torch.device("cuda" if device == "gpu" else "cpu")
    model.to(tdev)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loader = FeatureLoader(
        dataset,
        batch_size=batch_size,
        num_positions=num_positions,
        train=True,
        mix=mix,
        seed=seed,
        device=device,
    )
    losses = []
    t0 = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    fill = None if hide is None else torch.as_tensor(hide.fill, device=tdev)
    for epoch in bar:
        model.train()
        tot = 0.0
        for step, b in enumerate(loader):
            features = b.features
            if hide is not None:
                seeds = np.random.SeedSequence([seed, epoch, step, 3])
                rng = np.random.Generator(np.random.PCG64(seeds))
                n, t = features.shape[:2]
                hidden = sample_hidden(rng, n, t, hide.segment, hide.prob)
                features = hide_segments(features, torch.from_numpy(hidden).to(tdev), fill)
            video_logits, _ = model(features)
            loss = wstal_loss(video_logits, b.target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item()
        losses.append(tot / len(loader))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    stats = {"train_seconds": time.perf_counter() - t0, "losses": np.asarray(losses)}
    return model, stats
