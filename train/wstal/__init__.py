"""Weakly-supervised temporal action localization on pre-extracted features (VideoMix
Sec. 4.3, Table 8): Temporal VideoMix on (N, T, D) I3D feature sequences, inside the DALI
graph.  Run ``python -m train.wstal --help``; see docs/wstal.md.
"""

from __future__ import annotations

import time
from typing import Any

from videomix_dali.mix import VideoMix
from videomix_dali.source.features import FeatureDataset

from .localize import predict, video_accuracy
from .metrics import IOU_THRESHOLDS, detection_map
from .model import HideAndSeek, WSTALNet, fit, wstal_loss

#: Hide-and-Seek's segment, in feature positions (a 16-frame snippet each on THUMOS'14).
HIDE_SEGMENT = 4

__all__ = [
    "IOU_THRESHOLDS",
    "WSTALNet",
    "detection_map",
    "fit",
    "predict",
    "run_experiment",
    "wstal_loss",
]


def run_experiment(
    train: FeatureDataset,
    test: FeatureDataset,
    *,
    mix: str = "temporal",
    alpha: float = 1.0,
    seed: int = 0,
    eval_positions: int | None = None,
    localize: dict[str, Any] | None = None,
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Train with ``mix`` ("temporal", "mixup", "hide-and-seek" or "none"), localize on
    ``test``, score it. Hide-and-Seek (:mod:`videomix_dali.mix.hide`) hides segments of
    ``HIDE_SEGMENT`` positions with probability 0.5, filled with the training mean feature.

    Returns ``{"ap": AP per IoU, "map": mean, "predictions": [...], "accuracy": video
    top-1 accuracy, "train_seconds", "eval_seconds", "losses", "model"}``.
    """
    vm = hide = None
    if mix == "hide-and-seek":
        hide = HideAndSeek(HIDE_SEGMENT, 0.5, train.mean_feature())
    elif mix != "none":
        vm = VideoMix(mode=mix, alpha=alpha, num_classes=train.num_classes, seed=seed)
    model, stats = fit(train, mix=vm, hide=hide, seed=seed, desc=f"train[{mix}]", **fit_kwargs)
    t0 = time.perf_counter()
    preds, probs = predict(
        model,
        test,
        num_positions=eval_positions,
        device=fit_kwargs.get("device", "cpu"),
        **(localize or {}),
    )
    gt = test.ground_truth()
    ap, mean = detection_map(gt, preds)
    return {
        "ap": ap,
        "map": mean,
        "predictions": preds,
        "accuracy": video_accuracy(probs, test),
        "eval_seconds": time.perf_counter() - t0,
        "model": model,
        **stats,
    }
