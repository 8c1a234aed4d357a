"""Pre-extracted feature sequences for weakly-supervised temporal action localization.

The layout is the one the public WSTAL code bases (BaSNet, W-TALC, ...) use for THUMOS'14:

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

The data path (:class:`FeatureLoader`) is one DALI graph::

    fn.readers.numpy(files=...)  ->  fn.python_function(batch_processing=True):
        gather T positions per video  ->  stack (N, T, D)  ->  VideoMix (temporal)
    ->  torch.from_dlpack(batch.as_tensor())          (no copy; dynamic executor)

with ``device="cpu"`` or ``device="gpu"`` (same graph; on GPU the step gets CuPy arrays
and the mix runs as a CuPy kernel).  Fixed-length sampling (:func:`sample_positions`)
follows BaSNet: a sequence of L >= T segments is cut into T equal bins and one segment is
taken per bin (the bin start for evaluation, a uniformly random one in the bin for
training); a shorter one is stretched to T by repeating segments (nearest neighbour,
position i reads segment ``floor(i L / T)``), so no padding value ever reaches the model
or the mixing, and the valid (original) length L travels with the batch: position i of
the T covers segments ``[i L / T, (i + 1) L / T)`` (:func:`positions_to_seconds`).

Targets are multi-hot rows normalised to sum 1 *per source video before mixing*
(:func:`normalize_targets`), as BaSNet normalises its targets; mixing then weights each
source's row by its exact segment share, so every mixed target still sums to 1 and
each source contributes exactly its share to it (a video with three classes does not
outweigh one with one class).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "SEGMENT_FRAMES",
    "FeatureVideo",
    "FeatureDataset",
    "FeatureBatch",
    "FeatureLoader",
    "read_classes",
    "load_feature_dataset",
    "segment_seconds",
    "positions_to_seconds",
    "sample_positions",
    "normalize_targets",
    "make_demo_features",
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


class FeatureBatch(NamedTuple):
    """One batch as torch tensors; ``features`` and ``target`` share DALI's memory."""

    features: Any  # (N, T, D) float32
    target: Any  # (N, K) float32: normalised multi-hot, mixed by exact segment share
    index: Any  # (N,) int64 dataset index of each (unmixed) sample
    length: Any  # (N,) int64 original number of segments (the valid length)


def _mix_step(mix: Any):
    """Batch function of the in-graph step: gather -> stack -> (mix) (NumPy or CuPy)."""

    def step(feats: list, positions: list, target: list, *rows: list) -> tuple[list, list]:
        from .mix import MixParams

        xp = np
        if not isinstance(feats[0], np.ndarray):
            import cupy as xp  # GPU graph only
        x = xp.stack([f[p] for f, p in zip(feats, positions)])
        y = xp.stack([xp.asarray(t) for t in target])
        if mix is not None:
            host = [[r if isinstance(r, np.ndarray) else r.get() for r in part] for part in rows]
            params = MixParams.unpack(*host, mode=mix.mode, shape=tuple(x.shape))
            x, y = mix.apply(x, y, params)
        return list(x), list(y)

    return step


class FeatureLoader:
    """Batches of fixed-length feature sequences from one DALI graph, handed to torch.

    Args:
        dataset: a :class:`FeatureDataset` (usually one subset).
        batch_size: N.
        num_positions: T, the fixed length (750 in the paper); None keeps every video's
            full length (needs ``batch_size=1``: the evaluation setting, bit-exact).
        train: random order per epoch, jittered bin sampling, last partial batch dropped;
            else file order, deterministic sampling, every video once.
        mix: a ``videomix_dali.mix.VideoMix`` (mode temporal / mixup / none) applied to
            (N, T, D) inside the graph, or None.
        seed: order and jitter come from ``SeedSequence([seed, epoch])``; the mix
            parameters from the mix's own seeded sampler at step ``epoch * len + b``.
        device: ``"cpu"`` or ``"gpu"`` (``device_id`` then defaults to 0).

    Each ``iter()`` is one epoch (one pipeline build); batches are :class:`FeatureBatch`.
    """

    def __init__(
        self,
        dataset: FeatureDataset,
        *,
        batch_size: int,
        num_positions: int | None = 750,
        train: bool = False,
        mix: Any = None,
        seed: int = 0,
        device: str = "cpu",
        device_id: int | None = None,
        num_threads: int = 2,
        prefetch: int = 2,
    ) -> None:
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if num_positions is None and batch_size != 1:
            raise ValueError("num_positions=None (full length) needs batch_size=1")
        if num_positions is not None and (not isinstance(num_positions, int) or num_positions < 1):
            raise ValueError(f"num_positions must be an int >= 1 or None, got {num_positions!r}")
        if len(dataset) == 0:
            raise ValueError("dataset has no videos")
        if train and len(dataset) < batch_size:
            raise ValueError(f"{len(dataset)} videos cannot fill one batch of {batch_size}")
        if mix is not None:
            from .mix import VideoMix

            if not isinstance(mix, VideoMix):
                raise ValueError(f"mix must be a videomix_dali.mix.VideoMix or None, got {mix!r}")
            if mix.num_classes not in (None, dataset.num_classes):
                raise ValueError(
                    f"mix has num_classes={mix.num_classes}, dataset has {dataset.num_classes}"
                )
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_positions = num_positions
        self.train = bool(train)
        self.mix = mix
        self.seed = int(seed)
        self.device = device
        self.device_id = device_id if device_id is not None or device == "cpu" else 0
        self.num_threads = num_threads
        self.prefetch = prefetch
        self.epoch = 0
        self._targets = normalize_targets(dataset.multi_hot())

    def __len__(self) -> int:
        M, N = len(self.dataset), self.batch_size
        return M // N if self.train else -(-M // N)

    def _plan(self, epoch: int) -> tuple[list[int], list[tuple]]:
        """(the epoch's video order, its per-batch external-source outputs)."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch])))
        M, N = len(self.dataset), self.batch_size
        if self.train:
            order = rng.permutation(M)[: len(self) * N].tolist()
        else:
            order = list(range(M)) + [M - 1] * (len(self) * N - M)  # pad: repeat the last
        batches = []
        for b in range(len(self)):
            items = order[b * N : (b + 1) * N]
            pos, tgt = [], []
            for i in items:
                L = self.dataset.videos[i].length
                T = L if self.num_positions is None else self.num_positions
                pos.append(sample_positions(L, T, rng=rng if self.train else None))
                tgt.append(self._targets[i])
            out: tuple = (pos, tgt)
            if self.mix is not None:
                T = self.num_positions or self.dataset.videos[items[0]].length
                shape = (N, T, self.dataset.dim)
                rows, coef = self.mix.sample(shape, step=epoch * len(self) + b).pack()
                out += (list(rows), list(coef))
            batches.append(out)
        return order, batches

    def _build(self, order: list[int], batches: list[tuple]):
        from nvidia.dali import fn, pipeline_def

        files = [str(self.dataset.videos[i].path) for i in order]
        fed = iter(batches)
        last = batches[-1]

        def source():
            return next(fed, last)  # prefetch may ask past the end: never consumed

        dev = self.device
        num_src = 2 + 2 * (self.mix is not None)

        @pipeline_def(
            batch_size=self.batch_size,
            num_threads=self.num_threads,
            device_id=self.device_id if dev == "gpu" else None,
            prefetch_queue_depth=self.prefetch,
            seed=self.seed,
            exec_dynamic=True,
        )
        def features_pipeline():
            feats = fn.readers.numpy(files=files, random_shuffle=False, device=dev, name="features")
            pos, tgt, *rows = fn.external_source(source=source, num_outputs=num_src, batch=True)
            if dev == "gpu":
                pos, tgt, rows = pos.gpu(), tgt.gpu(), [r.gpu() for r in rows]
            x, y = fn.python_function(
                feats,
                pos,
                tgt,
                *rows,
                function=_mix_step(self.mix),
                batch_processing=True,
                num_outputs=2,
                device=dev,
            )
            return x, y

        pipe = features_pipeline()
        pipe.build()
        return pipe

    def __iter__(self) -> Iterator[FeatureBatch]:
        import torch

        from .handoff import to_torch

        epoch = self.epoch
        self.epoch += 1
        order, batches = self._plan(epoch)
        pipe = self._build(order, batches)
        M, N = len(self.dataset), self.batch_size
        for b in range(len(self)):
            x, y = pipe.run()
            items = order[b * N : (b + 1) * N]
            lengths = [self.dataset.videos[i].length for i in items]
            keep = min(N, M - b * N) if not self.train else N
            batch = FeatureBatch(
                to_torch(x),
                to_torch(y),
                torch.tensor(items, dtype=torch.int64),
                torch.tensor(lengths, dtype=torch.int64),
            )
            if keep < N:  # evaluation's padded last batch
                batch = FeatureBatch(*(t[:keep] for t in batch))
            yield batch
        del pipe


# --------------------------------------------------------------------------- demo data


def make_demo_features(
    root: str | Path,
    *,
    seed: int = 0,
    num_classes: int = 8,
    dim: int = 64,
    train_videos: int = 160,
    test_videos: int = 80,
    min_length: int = 80,
    max_length: int = 240,
    fps: float = 25.0,
    noise: float = 1.0,
) -> Path:
    """Write a synthetic WSTAL feature dataset under ``root``; return ``root``.

    ``root/features/<video_id>.npy`` (L x ``dim`` float32, L uniform in
    [min_length, max_length]), ``root/annotations.json`` (ActivityNet style, train videos
    in subset ``"validation"``, test videos in ``"test"``) and ``root/classes.txt``.

    Every video has one or two classes and two to four action instances of 6 to 40
    segments each.  A segment's feature is ``noise * N(0, I)`` plus: inside an action of
    class c, ``a(t) * mu_c`` with a profile ``a`` that peaks at 3 in the middle of the
    instance and falls to 1 at its ends (a discriminative core and weaker borders); in the
    background, ``mu_bg`` plus, within 12 segments of an action of class c, a weak scene
    context ``0.8 * ctx_c`` (what makes weak supervision spill over the borders).  Class
    signatures are random directions of norm 1 (the noise has norm ~sqrt(dim)).
    Deterministic by ``seed``; about a second for the defaults.
    """
    root = Path(root)
    if num_classes < 2 or dim < 2 or min_length < 50 or max_length < min_length:
        raise ValueError(
            "need num_classes >= 2, dim >= 2, 50 <= min_length <= max_length; got "
            f"{num_classes}, {dim}, {min_length}, {max_length}"
        )
    rng = np.random.Generator(np.random.PCG64(seed))

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    mu, ctx, bg = unit(num_classes), unit(num_classes), unit(1)[0]
    classes = [f"Action{c:02d}" for c in range(num_classes)]
    feat_dir = root / "features"
    feat_dir.mkdir(parents=True, exist_ok=True)
    db: dict[str, Any] = {}
    for subset, count in (("validation", train_videos), ("test", test_videos)):
        for v in range(count):
            vid = f"video_{subset}_{v:07d}"
            L = int(rng.integers(min_length, max_length + 1))
            present = rng.choice(num_classes, size=int(rng.integers(1, 3)), replace=False)
            n_inst = int(rng.integers(2, 5))
            x = noise * rng.standard_normal((L, dim)) + bg
            taken = np.zeros(L, bool)
            anns = []
            for k in range(n_inst):
                c = int(present[k % len(present)])
                for _ in range(20):  # place without overlap (gap >= 2)
                    n = int(rng.integers(6, 41))
                    s = int(rng.integers(0, L - n + 1))
                    if not taken[max(0, s - 2) : s + n + 2].any():
                        break
                else:
                    continue
                taken[s : s + n] = True
                u = (np.arange(n) + 0.5) / n
                amp = 1.0 + 2.0 * np.sin(np.pi * u)
                x[s : s + n] += amp[:, None] * mu[c] - bg
                lo, hi = max(0, s - 12), min(L, s + n + 12)
                near = np.arange(lo, hi)
                near = near[(near < s) | (near >= s + n)]
                x[near] += 0.8 * ctx[c]
                anns.append(
                    {
                        "segment": [
                            round(s * SEGMENT_FRAMES / fps, 3),
                            round((s + n) * SEGMENT_FRAMES / fps, 3),
                        ],
                        "label": classes[c],
                    }
                )
            anns.sort(key=lambda a: a["segment"][0])
            np.save(feat_dir / f"{vid}.npy", x.astype(np.float32))
            db[vid] = {
                "subset": subset,
                "duration": round(L * SEGMENT_FRAMES / fps, 3),
                "fps": fps,
                "annotations": anns,
            }
    (root / "annotations.json").write_text(json.dumps({"database": db}, indent=1))
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root
