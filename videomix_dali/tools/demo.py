"""The built-in demo dataset: small, real, deterministic VP9 videos with a motion class and a
scene (background) shortcut.

Each video shows a bright disc moving in a class-specific direction (``move_right``,
``move_left``, ``move_down``, ``move_up``, then the diagonals) over a smooth, striped background
whose hue and stripe angle form a *scene*. In ``train/`` and ``test_biased/`` the scene agrees
with the class for a fraction ``scene_bias`` of the videos (exactly ``round(scene_bias * n)`` per
class); in ``test_debiased/`` every class sees every scene equally often (up to rounding), so a
model that learnt the background instead of the motion falls to chance there. VideoMix's claim
(paper, Sec. 4) is that mixing helps a model attend to the action rather than the scene.

Layout written under ``root``::

    train/<class>/<youtube_id>_000000_<end:06d>.webm     (also test_biased/, test_debiased/)
    <split>_file_list.txt      DALI file_list, paths relative to root
    <split>.csv                Kinetics-style CSV; read it with root=root/<split>
    classes.txt                class names in id order
    metadata.json              parameters, classes, per-video scene and trajectory
    h264/<split>/<class>/*.mp4, h264/<split>_file_list.txt    (only with h264=True)

The CPU backend of DALI decodes VP9 but not H.264, hence ``.webm``; the optional H.264 copies are
for GPU runs (NVDEC's VP9 minimum is 128x128; :func:`demo_split` picks them). Content is smooth
so that 4:2:0 chroma and different decoders' colour conversions agree within a few levels.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "DIRECTIONS",
    "SPLITS",
    "assign_scenes",
    "demo_split",
    "encode_frames",
    "ensure_demo_dataset",
    "make_demo_dataset",
    "render_frames",
    "video_spec",
]

#: class name -> (dx, dy) in image coordinates (y grows downwards). The first ``num_classes`` are
#: used; class ids follow their sorted names (4 classes: move_down, move_left, move_right, move_up)
DIRECTIONS: dict[str, tuple[int, int]] = {
    "move_right": (1, 0),
    "move_left": (-1, 0),
    "move_down": (0, 1),
    "move_up": (0, -1),
    "move_down_right": (1, 1),
    "move_up_left": (-1, -1),
    "move_down_left": (-1, 1),
    "move_up_right": (1, -1),
}
SPLITS: tuple[str, ...] = ("train", "test_biased", "test_debiased")

_GENERATOR = "videomix_dali.demo"  # the dataset format's name (its first module path)
_VERSION = 2  # bump whenever the content or encoding changes
_OBJECT_RGB = 236.0
_EDGE_PX = 2.5  # soft edge of the disc (VP9 4:2:0 blurs hard colour edges anyway)
# realtime mode without look-ahead: no hidden alt-ref frames, the plainest stream for every decoder
_VP9_OPTIONS = {
    "crf": "12",
    "b:v": "0",
    "deadline": "realtime",
    "cpu-used": "5",
    "lag-in-frames": "0",
    "auto-alt-ref": "0",
    "row-mt": "0",
}
_X264_OPTIONS = {"crf": "16", "preset": "veryfast"}


# --------------------------------------------------------------------------------------------
# content


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def assign_scenes(
    rng: np.random.Generator, num_classes: int, per_class: int, bias: float | None
) -> list[list[int]]:
    """Scene id of every video, ``[class][i]``.

    ``bias`` set: exactly ``round(bias * per_class)`` videos of class c get scene c, the others a
    uniformly drawn different scene. ``bias`` None (debiased): each class gets every scene
    ``per_class // K`` times, and the ``per_class % K`` extra ones go to the scenes used least so
    far, so class and scene are independent up to rounding and the scene totals balance.
    """
    k = num_classes
    out = []
    if bias is not None:
        n_off = per_class - round(bias * per_class)
        for c in range(k):
            scenes = [c] * per_class
            for i in rng.choice(per_class, size=n_off, replace=False):
                scenes[int(i)] = int((c + rng.integers(1, k)) % k)
            out.append(scenes)
        return out
    used = np.zeros(k)
    for _ in range(k):
        scenes = list(range(k)) * (per_class // k)
        extra = sorted(range(k), key=lambda s: (used[s], rng.random()))[: per_class % k]
        scenes += extra
        used[extra] += 1
        out.append([int(s) for s in rng.permutation(scenes)])
    return out


def video_spec(
    rng: np.random.Generator,
    cls: int,
    direction: tuple[int, int],
    scene: int,
    num_classes: int,
    size: tuple[int, int],
) -> dict:
    """All random draws of one video (JSON-serialisable, stored in metadata.json)."""
    h, w = size
    dx, dy = direction
    radius = float(0.11 * min(h, w) * rng.uniform(0.9, 1.1))

    def axis(d: int, length: int) -> tuple[float, float]:
        lo, hi = radius + 1.0, length - radius - 1.0
        span = hi - lo
        if d == 0:
            c = float(rng.uniform(lo + 0.15 * span, hi - 0.15 * span))
            return c, c
        travel = span * rng.uniform(0.5, 0.85)
        a = lo + rng.uniform(0.0, span - travel)
        return (float(a), float(a + travel)) if d > 0 else (float(a + travel), float(a))

    x0, x1 = axis(dx, w)
    y0, y1 = axis(dy, h)
    return {
        "label": cls,
        "scene": scene,
        "radius": radius,
        "start_xy": [x0, y0],
        "end_xy": [x1, y1],
        "hue": float((scene / num_classes + 0.08 + rng.uniform(-0.02, 0.02)) % 1.0),
        "value": float(0.55 * rng.uniform(0.92, 1.08)),
        "stripe_angle": float(math.pi * scene / num_classes),
        "stripe_phase": float(rng.uniform(0.0, 2.0 * math.pi)),
    }


def render_frames(spec: dict, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    """The frames of one video, (T, H, W, 3) uint8 RGB."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = max(h, w) / 2.5
    a = spec["stripe_angle"]
    stripes = np.sin(
        2 * np.pi * (xx * math.cos(a) + yy * math.sin(a)) / period + spec["stripe_phase"]
    )
    shade = (1.0 + 0.15 * stripes) * (0.88 + 0.22 * yy / max(h - 1, 1))
    colour = _hsv_to_rgb(spec["hue"], 0.55, spec["value"]) * 255.0
    background = shade[..., None] * colour.astype(np.float32)
    (x0, y0), (x1, y1) = spec["start_xy"], spec["end_xy"]
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    for t in range(num_frames):
        f = t / (num_frames - 1)
        cx, cy = x0 + (x1 - x0) * f, y0 + (y1 - y0) * f
        dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        alpha = np.clip((spec["radius"] - dist) / _EDGE_PX + 0.5, 0.0, 1.0)[..., None]
        frame = background * (1.0 - alpha) + _OBJECT_RGB * alpha
        frames[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    return frames


def _rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 (chroma: mean of each 2x2 block), as one (3H/2, W) plane
    stack in the layout of ``VideoFrame.from_ndarray(..., format="yuv420p")``.

    Done here rather than by swscale so that the pixels do not depend on the FFmpeg build.
    """
    h, w = rgb.shape[:2]
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).reshape(h // 4, w)

    planes = np.concatenate([y, sub(u), sub(v)], axis=0)
    return np.clip(np.floor(planes + 0.5), 0, 255).astype(np.uint8)


def encode_frames(
    path: Path, frames: np.ndarray, fps: int, codec: str, *, gop: int | None = None
) -> None:
    """Encode deterministically: one encoder thread, no muxer timestamps or random ids; the
    stream is tagged BT.601 limited range so that decoders need not guess the matrix.

    ``gop``: frames from one keyframe to the next (default ``fps``, one a second).
    """
    options = _VP9_OPTIONS if codec == "libvpx-vp9" else _X264_OPTIONS
    with av.open(str(path), "w", container_options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=fps, options=dict(options, g=str(gop or fps)))
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "yuv420p"
        ctx = stream.codec_context
        ctx.thread_count = 1
        ctx.colorspace = 6  # AVCOL_SPC_SMPTE170M (BT.601)
        ctx.color_primaries = 6  # AVCOL_PRI_SMPTE170M
        ctx.color_trc = 6  # AVCOL_TRC_SMPTE170M
        ctx.color_range = 1  # AVCOL_RANGE_MPEG (limited)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(_rgb_to_yuv420(rgb), format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


# --------------------------------------------------------------------------------------------
# dataset


def _check_args(seed, num_classes, videos_per_class, test_per_class, num_frames, size, fps, bias):
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(num_classes, int) or not 2 <= num_classes <= len(DIRECTIONS):
        raise ValueError(f"num_classes must be an int in [2, {len(DIRECTIONS)}], got {num_classes}")
    for name, value in (("videos_per_class", videos_per_class), ("test_per_class", test_per_class)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(num_frames, int) or num_frames < 2:
        raise ValueError(f"num_frames must be an int >= 2, got {num_frames!r}")
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, int) and s >= 32 and s % 4 == 0 for s in size)
    ):
        raise ValueError(f"size must be (height, width), multiples of 4 and >= 32, got {size!r}")
    if not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps must be a positive int, got {fps!r}")
    if not 0.0 <= bias <= 1.0:
        raise ValueError(f"scene_bias must be in [0, 1], got {bias!r}")


def _top_level(h264: bool) -> list[str]:
    """The names written directly under root."""
    names = [*SPLITS, "classes.txt", "metadata.json"]
    names += [f"{s}_file_list.txt" for s in SPLITS] + [f"{s}.csv" for s in SPLITS]
    return names + (["h264"] if h264 else [])


def _read_metadata(root: Path) -> dict | None:
    try:
        with open(root / "metadata.json", encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("generator") == _GENERATOR else None


def _is_complete(root: Path, meta: dict | None, params: dict) -> bool:
    if meta is None or meta.get("version") != _VERSION or meta.get("params") != params:
        return False
    files = meta.get("files", {})
    return bool(files) and all(
        (root / rel).is_file() and (root / rel).stat().st_size == size
        for rel, size in files.items()
    )


def make_demo_dataset(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    num_classes: int = 4,
    videos_per_class: int = 12,
    test_per_class: int = 6,
    num_frames: int = 48,
    size: tuple[int, int] = (96, 128),
    fps: int = 25,
    h264: bool = False,
    scene_bias: float = 0.9,
    progress: bool = True,
) -> Path:
    """Write the demo dataset under ``root`` (see the module docstring) and return ``root``.

    Deterministic: the same arguments give byte-identical files (one encoder thread, bit-exact
    muxing, per-video seeds derived from ``(seed, split, class, i)``). If ``root`` already
    holds a complete dataset made with the same arguments it is left as it is. A dataset made
    with other arguments is replaced; a non-empty ``root`` that is not a demo dataset but has
    entries of the same names is refused.

    Args:
        root: output folder.
        seed: seed of every random draw.
        num_classes: 2..8 motion directions (``move_right``, ``move_left``, ``move_down``, ...).
        videos_per_class: videos per class in ``train/``.
        test_per_class: videos per class in ``test_biased/`` and in ``test_debiased/``.
        num_frames: frames per video.
        size: ``(height, width)``, multiples of 4.
        fps: frame rate.
        h264: also write H.264 ``.mp4`` copies under ``root/h264/`` (for NVDEC runs).
        scene_bias: fraction of ``train``/``test_biased`` videos whose scene equals the class.
        progress: show a tqdm progress bar.
    """
    _check_args(
        seed, num_classes, videos_per_class, test_per_class, num_frames, size, fps, scene_bias
    )
    root = Path(root)
    params = {
        "seed": int(seed),
        "num_classes": num_classes,
        "videos_per_class": videos_per_class,
        "test_per_class": test_per_class,
        "num_frames": num_frames,
        "size": [int(size[0]), int(size[1])],
        "fps": fps,
        "h264": bool(h264),
        "scene_bias": float(scene_bias),
    }
    old = _read_metadata(root)
    if _is_complete(root, old, params):
        return root

    # ids follow the sorted names, as every folder-per-class reader numbers them
    classes = sorted(list(DIRECTIONS)[:num_classes])
    top_level = _top_level(h264)
    if root.is_dir() and old is None:
        clash = [n for n in top_level if (root / n).exists()]
        if clash:
            raise ValueError(
                f"{root} is not a demo dataset (no metadata.json of {_GENERATOR}) but has "
                f"{clash}; refusing to overwrite: pass another root"
            )
    root.mkdir(parents=True, exist_ok=True)

    per_split = {"train": videos_per_class, "test_biased": test_per_class}
    per_split["test_debiased"] = test_per_class
    duration = math.ceil(num_frames / fps)
    total = num_classes * sum(per_split.values()) * (2 if h264 else 1)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        meta_splits: dict[str, list[dict]] = {}
        number = 0
        with tqdm(total=total, desc="demo dataset", unit="video", disable=not progress) as bar:
            for s_idx, split in enumerate(SPLITS):
                n = per_split[split]
                bias = None if split == "test_debiased" else scene_bias
                scenes = assign_scenes(
                    np.random.default_rng([seed, 0, s_idx]), num_classes, n, bias
                )
                videos = []
                for c, name in enumerate(classes):
                    (staging / split / name).mkdir(parents=True)
                    if h264:
                        (staging / "h264" / split / name).mkdir(parents=True)
                    for i in range(n):
                        number += 1
                        rng = np.random.default_rng([seed, 1, s_idx, c, i])
                        spec = video_spec(
                            rng, c, DIRECTIONS[name], scenes[c][i], num_classes, (size[0], size[1])
                        )
                        frames = render_frames(spec, num_frames, (size[0], size[1]))
                        youtube_id = f"demo{number:04d}"
                        stem = f"{youtube_id}_{0:06d}_{duration:06d}"
                        rel = f"{split}/{name}/{stem}.webm"
                        encode_frames(staging / rel, frames, fps, "libvpx-vp9")
                        bar.update()
                        if h264:
                            mp4 = staging / "h264" / split / name / f"{stem}.mp4"
                            encode_frames(mp4, frames, fps, "libx264")
                            bar.update()
                        videos.append(
                            {"path": rel, "class": name, "youtube_id": youtube_id, **spec}
                        )
                meta_splits[split] = videos
        _write_indexes(staging, classes, meta_splits, duration, h264)
        files = {
            p.relative_to(staging).as_posix(): p.stat().st_size
            for p in sorted(staging.rglob("*"))
            if p.is_file()
        }
        meta = {
            "generator": _GENERATOR,
            "version": _VERSION,
            "params": params,
            "classes": classes,
            "num_scenes": num_classes,
            "encoder": {
                "webm": {"codec": "libvpx-vp9", **_VP9_OPTIONS, "g": str(fps)},
                "h264": {"codec": "libx264", **_X264_OPTIONS, "g": str(fps)} if h264 else None,
                "pyav": av.__version__,
            },
            "counts": {s: len(v) for s, v in meta_splits.items()},
            "splits": meta_splits,
            "files": files,
        }
        # swap in: drop the old marker first, so an interrupted swap is never taken as complete
        (root / "metadata.json").unlink(missing_ok=True)
        # entries of an older dataset that this one lacks (e.g. h264/); only names we write
        stale = set(old.get("top_level", [])) & set(_top_level(True)) if old else set()
        for name in sorted(stale | set(top_level)):
            target = root / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            if (staging / name).exists():
                os.replace(staging / name, target)
        meta["top_level"] = top_level
        tmp = root / f".metadata.json.{os.getpid()}"
        tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, root / "metadata.json")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _write_indexes(
    out: Path, classes: list[str], splits: dict[str, list[dict]], duration: int, h264: bool
) -> None:
    (out / "classes.txt").write_text("".join(c + "\n" for c in classes), encoding="utf-8")
    for split, videos in splits.items():
        lines = "".join(f"{v['path']} {v['label']}\n" for v in videos)
        (out / f"{split}_file_list.txt").write_text(lines, encoding="utf-8")
        if h264:
            lines = "".join(f"{v['path'][: -len('.webm')]}.mp4 {v['label']}\n" for v in videos)
            (out / "h264" / f"{split}_file_list.txt").write_text(lines, encoding="utf-8")
        with open(out / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for v in videos:
                writer.writerow([v["class"], v["youtube_id"], 0, duration, split])


def ensure_demo_dataset(root: str | os.PathLike = "data/demo", **kwargs) -> Path:
    """Return ``root``, first making the demo dataset there if it is absent or was made with
    other arguments (``kwargs`` are those of :func:`make_demo_dataset`)."""
    return make_demo_dataset(root, **kwargs)


def demo_split(
    root: str | os.PathLike = "data/demo", split: str = "train", device: str = "cpu", **kwargs
) -> Path:
    """The folder of demo ``split`` that a loader on ``device`` reads, making the dataset first.

    NVDEC cannot decode the VP9 videos (128x96; its VP9 minimum is 128x128), so ``device='gpu'``
    reads the H.264 copies under ``root/h264/`` and makes them if absent. ``'cpu'`` reads the
    VP9 files and keeps copies that are already there, so CPU and GPU runs sharing ``root`` do
    not remake it in turn. ``'auto'`` is ``'gpu'`` where torch sees CUDA. ``kwargs`` are those
    of :func:`make_demo_dataset` other than ``h264``.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} must be one of {SPLITS}")
    if device == "auto":
        import torch

        device = "gpu" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device={device!r} must be 'cpu', 'gpu' or 'auto'")
    meta = _read_metadata(Path(root)) or {}
    h264 = device == "gpu" or bool(meta.get("params", {}).get("h264"))
    root = make_demo_dataset(root, h264=h264, **kwargs)
    return root / "h264" / split if device == "gpu" else root / split
