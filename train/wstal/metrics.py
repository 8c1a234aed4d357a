"""Temporal action detection mAP, by the THUMOS'14 / ActivityNet detection protocol.

Per class and IoU threshold: predictions sorted by score, descending (stable: equal
scores keep their input order); each one is a true positive when its highest-IoU
ground-truth segment *among the not yet matched ones of the same video* has IoU >= the
threshold (that segment is then matched), else a false positive -- so a second detection
of an already found action is a false positive.  Precision is made monotone (each value
replaced by the maximum to its right) and AP is the area under that interpolated
precision-recall curve, ``sum_i (r_i - r_{i-1}) * p_interp(r_i)``.  Classes without
ground truth are left out of the mean; a class with ground truth but no prediction has
AP 0.  Segments are ``[start, end]`` in seconds; IoU = overlap / union.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["IOU_THRESHOLDS", "detection_map", "average_precision", "segment_iou"]

IOU_THRESHOLDS = np.round(np.arange(1, 10) / 10.0, 1)  # 0.1, 0.2, ..., 0.9


def segment_iou(seg: Sequence[float], others: np.ndarray) -> np.ndarray:
    """IoU of ``seg`` = (start, end) with every row of ``others`` (M, 2)."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(seg[1], others[:, 1]) - np.maximum(seg[0], others[:, 0]), 0.0, None)
    union = (seg[1] - seg[0]) + (others[:, 1] - others[:, 0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def average_precision(
    gt: Sequence[tuple[str, float, float]],
    pred: Sequence[tuple[str, float, float, float]],
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
) -> np.ndarray:
    """AP of one class at each threshold: ``gt`` [(video, start, end)], ``pred`` + score."""
    thr = np.asarray(iou_thresholds, dtype=np.float64)
    ap = np.zeros(len(thr))
    if len(gt) == 0 or len(pred) == 0:
        return ap
    by_video: dict[str, list[int]] = defaultdict(list)
    for i, (v, _, _) in enumerate(gt):
        by_video[v].append(i)
    gt_seg = np.array([[s, e] for _, s, e in gt], dtype=np.float64)
    scores = np.array([p[3] for p in pred], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros((len(thr), len(pred)))
    matched = np.zeros((len(thr), len(gt)), dtype=bool)
    for rank, k in enumerate(order):
        v, s, e, _ = pred[k]
        cand = by_video.get(v)
        if not cand:
            continue
        ious = segment_iou((float(s), float(e)), gt_seg[cand])
        by_iou = np.argsort(-ious, kind="stable")
        for t in range(len(thr)):
            for j in by_iou:
                if ious[j] < thr[t]:
                    break
                if matched[t, cand[j]]:
                    continue
                matched[t, cand[j]] = True
                tp[t, rank] = 1.0
                break
    tp_c = np.cumsum(tp, axis=1)
    fp_c = np.cumsum(1.0 - tp, axis=1)
    recall = tp_c / len(gt)
    precision = tp_c / (tp_c + fp_c)
    for t in range(len(thr)):
        ap[t] = _interpolated_ap(precision[t], recall[t])
    return ap


def _interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]  # monotone envelope
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def detection_map(
    ground_truth: Iterable[tuple[str, str, float, float]],
    predictions: Iterable[tuple[str, str, float, float, float]],
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
) -> tuple[np.ndarray, float]:
    """(AP per IoU threshold, their mean): each AP is the mean over the classes with gt.

    ``ground_truth``: ``[(video_id, label, start, end)]``; ``predictions``:
    ``[(video_id, label, start, end, score)]``.  Predictions of classes without ground
    truth are ignored.  No ground truth at all raises ``ValueError``.
    """
    thr = np.asarray(iou_thresholds, dtype=np.float64)
    if thr.ndim != 1 or thr.size == 0 or np.any((thr <= 0) | (thr > 1)):
        raise ValueError(f"iou_thresholds must be values in (0, 1], got {iou_thresholds!r}")
    gt_by: dict[str, list] = defaultdict(list)
    for row in ground_truth:
        if len(row) != 4:
            raise ValueError(f"ground truth rows are (video, label, start, end), got {row!r}")
        v, c, s, e = row
        gt_by[c].append((v, float(s), float(e)))
    if not gt_by:
        raise ValueError("detection_map needs at least one ground-truth segment")
    pred_by: dict[str, list] = defaultdict(list)
    for row in predictions:
        if len(row) != 5:
            raise ValueError(f"prediction rows are (video, label, start, end, score), got {row!r}")
        v, c, s, e, sc = row
        pred_by[c].append((v, float(s), float(e), float(sc)))
    per_class = np.stack(
        [average_precision(gt_by[c], pred_by.get(c, []), thr) for c in sorted(gt_by)]
    )
    ap = per_class.mean(axis=0)
    return ap, float(ap.mean())
