"""T-CAM -> temporal action proposals (VideoMix Sec. 4.3, after Hide-and-Seek / BaSNet).

Per class kept for a video, its T-CAM curve (softmax over the classes + background at
every position, i.e. values in [0, 1]) is thresholded at ``ratio`` (50 %) of its maximum
over the video; every maximal run of positions with ``cam >= threshold`` is one proposal
(so the maximum is always inside one).  A proposal's score is, with ``score="mean"``
(default), the mean CAM inside the run, or, with ``score="contrast"`` (BaSNet's
outer-inner contrast), the mean inside minus the mean over the flanks of ``len / 4``
positions (at least 1) on each side, clipped to the video.  Either can add
``video_weight`` times the video-level class probability (0 by default).

Classes kept for a video: those whose video-level probability (softmax over the K action
classes) is >= ``class_threshold``, and always the top-1 class.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from videomix_dali.loading.features import FeatureLoader
from videomix_dali.source.features import FeatureDataset, positions_to_seconds

__all__ = ["extract_proposals", "localize_video", "predict"]


def extract_proposals(
    cam: np.ndarray, *, ratio: float = 0.5, score: str = "mean"
) -> list[tuple[int, int, float]]:
    """Runs of ``cam`` (T,) >= ``ratio * cam.max()``: ``[(start, end, score)]``, end exclusive."""
    cam = np.asarray(cam, dtype=np.float64).reshape(-1)
    if score not in ("mean", "contrast"):
        raise ValueError(f"score must be 'mean' or 'contrast', got {score!r}")
    if cam.size == 0:
        return []
    above = cam >= ratio * cam.max()
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = []
    T = cam.size
    for s, e in zip(starts.tolist(), ends.tolist()):
        inner = float(cam[s:e].mean())
        if score == "contrast":
            pad = max(1, (e - s) // 4)
            outer = np.concatenate([cam[max(0, s - pad) : s], cam[e : min(T, e + pad)]])
            inner -= float(outer.mean()) if outer.size else 0.0
        out.append((s, e, inner))
    return out


def localize_video(
    cam_probs: np.ndarray,
    video_probs: np.ndarray,
    *,
    classes: list[str],
    video_id: str,
    length: int,
    fps: float,
    duration: float | None = None,
    class_threshold: float = 0.1,
    ratio: float = 0.5,
    score: str = "mean",
    video_weight: float = 0.0,
) -> list[tuple[str, str, float, float, float]]:
    """Proposals ``[(video_id, class, start s, end s, score)]`` of one video.

    ``cam_probs``: (T, >= K) T-CAM probabilities (a background column after the K is
    ignored); ``video_probs``: (K,) video-level class probabilities; ``length``: the
    video's original number of segments (T positions cover them evenly).
    """
    T = cam_probs.shape[0]
    keep = set(np.flatnonzero(video_probs >= class_threshold).tolist())
    keep.add(int(np.argmax(video_probs)))
    preds = []
    for c in sorted(keep):
        for s, e, sc in extract_proposals(cam_probs[:, c], ratio=ratio, score=score):
            t0, t1 = positions_to_seconds(s, e, length=length, num_positions=T, fps=fps)
            t0, t1 = float(t0), float(t1)
            if duration is not None:
                t1 = min(t1, float(duration))
            preds.append((video_id, classes[c], t0, t1, sc + video_weight * float(video_probs[c])))
    return preds


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: FeatureDataset,
    *,
    num_positions: int | None = None,
    device: str = "cpu",
    **kwargs,
) -> tuple[list[tuple[str, str, float, float, float]], np.ndarray]:
    """Run ``model`` over every video of ``dataset`` through the (unmixed) DALI loader.

    ``num_positions=None`` evaluates every video at its full length (batch 1).
    Returns (proposals, video-level class probabilities (M, K)); ``kwargs`` go to
    :func:`localize_video`.
    """
    model.eval()
    batch = 1 if num_positions is None else 16
    loader = FeatureLoader(
        dataset, batch_size=batch, num_positions=num_positions, train=False, device=device
    )
    K = dataset.num_classes
    probs = np.zeros((len(dataset), K), np.float32)
    preds: list = []
    for b in loader:
        video_logits, cam = model(b.features)
        vp = torch.softmax(video_logits[:, :K], dim=1).cpu().numpy()
        cp = torch.softmax(cam, dim=2).cpu().numpy()
        for n, i in enumerate(b.index.tolist()):
            v = dataset.videos[i]
            probs[i] = vp[n]
            preds += localize_video(
                cp[n],
                vp[n],
                classes=dataset.classes,
                video_id=v.video_id,
                length=v.length,
                fps=v.fps,
                duration=v.duration,
                **kwargs,
            )
    return preds, probs


def video_accuracy(probs: np.ndarray, dataset: FeatureDataset) -> float:
    """Fraction of videos whose top-1 class is one of their labels."""
    y = dataset.multi_hot()
    top = probs.argmax(axis=1)
    return float(np.mean(y[np.arange(len(top)), top] > 0))


def as_rows(preds: Iterable[tuple]) -> list[list]:
    return [[v, c, f"{s:.3f}", f"{e:.3f}", f"{sc:.6f}"] for v, c, s, e, sc in preds]
