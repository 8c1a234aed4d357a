"""Pre-extracted feature sequences for weakly-supervised temporal action localization.

Their format on disk, read into a :class:`FeatureDataset`, and how T positions are taken from
a sequence. The layout is the one the public WSTAL code bases (BaSNet, W-TALC, ...) use for
THUMOS'14:

* a features folder with one ``<video_id>.npy`` per video, a (T, D) float32 array: one row
  per 16-frame segment (I3D RGB + flow: D = 1024 + 1024 = 2048);
* a ground-truth JSON, ActivityNet style::

      {"database": {"video_validation_0000051": {
          "subset": "validation", "duration": 169.1, "fps": 25.0,
          "annotations": [{"segment": [44.0, 50.9], "label": "BaseballPitch"}]}}}

  (THUMOS'14 trains on its *validation* videos and tests on its *test* videos);
* the class list: a text file, one name per line (its order is the label order), or,
  without one, the sorted set of labels in the JSON.

Segment ``i`` of a video at ``fps`` covers ``[16 i / fps, 16 (i + 1) / fps)`` seconds
(:func:`segment_seconds`).

Fixed-length sampling (:func:`sample_positions`) follows BaSNet: a sequence of L >= T segments
is cut into T equal bins and one segment is taken per bin (the bin start for evaluation, a
uniformly random one in the bin for training); a shorter one is stretched to T by repeating
segments (nearest neighbour, position i reads segment ``floor(i L / T)``), so no padding value
ever reaches the model or the mixing, and the valid (original) length L travels with the batch:
position i of the T covers segments ``[i L / T, (i + 1) L / T)`` (:func:`positions_to_seconds`).

Targets are multi-hot rows normalised to sum 1 *per source video before mixing*
(:func:`normalize_targets`), as BaSNet normalises its targets; mixing then weights each
source's row by its exact segment share, so every mixed target still sums to 1 and
each source contributes exactly its share to it (a video with three classes does not
outweigh one with one class).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SEGMENT_FRAMES",
    "FeatureVideo",
    "FeatureDataset",
    "read_classes",
    "load_feature_dataset",
    "segment_seconds",
    "positions_to_seconds",
    "sample_positions",
    "normalize_targets",
]

SEGMENT_FRAMES = 16
SUBSETS = ("validation", "test")


def segment_seconds(i: Any, fps: float, segment_frames: int = SEGMENT_FRAMES) -> Any:
    """(start, end) seconds of segment ``i`` (int or array): ``[16 i / fps, 16 (i+1) / fps)``."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    i = np.asarray(i, dtype=np.float64)
    start, end = i * segment_frames / fps, (i + 1) * segment_frames / fps
    if start.ndim == 0:
        return float(start), float(end)
    return start, end


def positions_to_seconds(
    start: Any,
    end: Any,
    *,
    length: int,
    num_positions: int,
    fps: float,
    segment_frames: int = SEGMENT_FRAMES,
) -> tuple[Any, Any]:
    """Seconds of the half-open run of sampled positions ``[start, end)``.

    A video of ``length`` segments sampled to ``num_positions`` positions: position i
    covers segments ``[i L / T, (i + 1) L / T)``; with T = L this is the segment itself.
    """
    scale = float(length) / float(num_positions) * segment_frames / float(fps)
    return np.asarray(start, np.float64) * scale, np.asarray(end, np.float64) * scale


def sample_positions(
    length: int, num_positions: int, *, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(T,) int64 segment indices of a length-``length`` sequence sampled to T positions.

    Bins ``[floor(i L / T), floor((i + 1) L / T))``: ``rng=None`` (evaluation) takes each
    bin's first segment, so T = L gives ``arange(L)``; with ``rng`` (training) a uniformly
    random segment of the bin.  For L < T the bins are empty or single, giving
    ``floor(i L / T)``: segments repeated, never padded.
    """
    L, T = int(length), int(num_positions)
    if L < 1 or T < 1:
        raise ValueError(f"length and num_positions must be >= 1, got {length}, {num_positions}")
    lo = (np.arange(T, dtype=np.int64) * L) // T
    if rng is None or L <= T:
        return lo
    hi = (np.arange(1, T + 1, dtype=np.int64) * L) // T  # > lo for every bin when L >= T
    return lo + np.floor(rng.random(T) * (hi - lo)).astype(np.int64)


def normalize_targets(y: Any) -> np.ndarray:
    """Multi-hot (M, K) -> float32 rows summing to 1 (all-zero rows stay zero)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"targets must be (M, K), got shape {y.shape}")
    s = y.sum(axis=1, keepdims=True)
    return np.where(s > 0, y / np.where(s > 0, s, 1.0), 0.0).astype(np.float32)


# --------------------------------------------------------------------------- index


@dataclass(frozen=True)
class FeatureVideo:
    """One video: its feature file (``length`` x ``dim``) and its ground truth."""

    video_id: str
    path: Path
    subset: str
    duration: float
    fps: float
    length: int
    dim: int
    labels: tuple[int, ...]  # sorted class indices present in the video
    annotations: tuple[tuple[int, float, float], ...]  # (class index, start s, end s)


@dataclass
class FeatureDataset:
    """Videos of one features folder + annotation file, with the class list."""

    classes: list[str]
    videos: list[FeatureVideo] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def dim(self) -> int:
        return self.videos[0].dim if self.videos else 0

    def subset(self, name: str) -> FeatureDataset:
        return FeatureDataset(list(self.classes), [v for v in self.videos if v.subset == name])

    def mean_feature(self) -> np.ndarray:
        """(D,) float32: the mean feature over every position of every video."""
        total, rows = np.zeros(self.dim, np.float64), 0
        for v in self.videos:
            features = np.load(v.path, mmap_mode="r", allow_pickle=False)
            total += features.sum(axis=0, dtype=np.float64)
            rows += len(features)
        return (total / max(rows, 1)).astype(np.float32)

    def multi_hot(self) -> np.ndarray:
        """(M, K) float32 video-level labels (1 for every class annotated in the video)."""
        y = np.zeros((len(self.videos), self.num_classes), np.float32)
        for i, v in enumerate(self.videos):
            y[i, list(v.labels)] = 1.0
        return y

    def ground_truth(self) -> list[tuple[str, str, float, float]]:
        """``[(video_id, class name, start s, end s)]`` for :func:`detection_map`."""
        return [
            (v.video_id, self.classes[c], s, e) for v in self.videos for c, s, e in v.annotations
        ]


def read_classes(path: str | Path) -> list[str]:
    """Class names, one per line (blank lines ignored); the line order is the label order."""
    path = Path(path)
    try:
        names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise ValueError(f"cannot read class list {path}: {exc.strerror or exc}") from exc
    if not names:
        raise ValueError(f"class list {path} is empty")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"class list {path} repeats {', '.join(dup)}")
    return names


def _check_features(path: Path) -> tuple[int, int]:
    """(T, D) of a feature file, read from its header only; ValueError naming the file."""
    if not path.is_file():
        raise ValueError(f"missing features: {path} does not exist")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read features {path}: {exc}") from exc
    if arr.dtype != np.float32:
        raise ValueError(f"features {path} have dtype {arr.dtype}; expected float32")
    if arr.ndim != 2:
        raise ValueError(f"features {path} have shape {arr.shape}; expected (T, D), ndim 2")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"features {path} are empty: shape {arr.shape}")
    return int(arr.shape[0]), int(arr.shape[1])


def load_feature_dataset(
    features: str | Path,
    annotations: str | Path,
    *,
    classes: str | Path | Sequence[str] | None = None,
    subset: str | None = None,
    missing: str = "error",
) -> FeatureDataset:
    """Index ``features/<video_id>.npy`` against an ActivityNet-style ground-truth JSON.

    ``classes``: a class-list file or a list of names; None derives the sorted label set
    from the JSON.  ``subset``: keep only ``"validation"`` (train) or ``"test"`` videos.
    ``missing``: ``"error"`` (default) raises for a video of the JSON without its .npy;
    ``"skip"`` leaves it out.  Every feature file is checked (float32, 2-D, one D) from
    its header, without reading the data.
    """
    features, annotations = Path(features), Path(annotations)
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    if not features.is_dir():
        raise ValueError(f"features folder {features} does not exist")
    try:
        db = json.loads(annotations.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read annotations {annotations}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"annotations {annotations} are not valid JSON: {exc}") from exc
    if not isinstance(db, dict) or not isinstance(db.get("database"), dict):
        raise ValueError(f'annotations {annotations} have no "database" object')
    db = db["database"]
    if classes is None:
        names = sorted(
            {str(a.get("label")) for v in db.values() for a in (v.get("annotations") or [])}
        )
    elif isinstance(classes, (str, Path)):
        names = read_classes(classes)
    else:
        names = [str(c) for c in classes]
    if not names:
        raise ValueError(f"no classes: {annotations} has no labelled segment and none given")
    cls = {n: i for i, n in enumerate(names)}
    videos: list[FeatureVideo] = []
    dim = None
    for vid in sorted(db):
        info = db[vid]
        where = f"{annotations}: video {vid!r}"
        sub = info.get("subset")
        if sub not in SUBSETS:
            raise ValueError(f"{where} has subset {sub!r}; expected one of {SUBSETS}")
        if subset is not None and sub != subset:
            continue
        try:
            fps = float(info.get("fps", 25.0))
            duration = float(info["duration"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where} needs a numeric duration (and fps)") from None
        if not fps > 0:
            raise ValueError(f"{where} has fps {fps}; must be > 0")
        anns = []
        for a in info.get("annotations") or []:
            label = a.get("label")
            if label not in cls:
                raise ValueError(f"{where} has unknown label {label!r} (not in the class list)")
            seg = a.get("segment")
            if not isinstance(seg, (list, tuple)) or len(seg) != 2:
                raise ValueError(f"{where} has a segment {seg!r}; expected [start_s, end_s]")
            s, e = float(seg[0]), float(seg[1])
            if not e >= s:
                raise ValueError(f"{where} has segment [{s}, {e}] ending before it starts")
            anns.append((cls[label], s, e))
        path = features / f"{vid}.npy"
        if not path.is_file() and missing == "skip":
            continue
        T, D = _check_features(path)
        if dim is None:
            dim = D
        elif D != dim:
            raise ValueError(f"features {path} have D={D}, but earlier files have D={dim}")
        labels = tuple(sorted({c for c, _, _ in anns}))
        videos.append(FeatureVideo(vid, path, sub, duration, fps, T, D, labels, tuple(anns)))
    return FeatureDataset(names, videos)


# --------------------------------------------------------------------------- DALI loader
