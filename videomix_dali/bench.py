"""``videomix-dali bench``: loader throughput against the loaders people use today, side by side.

Every loader is fed the same files, the same clips (frame indices, crop window, flip: all taken
from this project's seeded ``ClipSampler``), the same normalisation and the same mixing, and is
measured the same way: a warm-up, then a fixed duration of batches pulled by a consumer that does
nothing else. Reported per loader: clips/s, decoded frames/s (clips x T), batch time p50/p95,
CPU utilisation of the process tree (this process plus its children, e.g. DataLoader workers,
read from ``/proc``), peak RSS of the process tree (sampled from ``/proc`` by a thread) and,
on a GPU, the peak device memory in use.

Loaders:

* ``videomix-dali``: this project's DALI pipeline (``VideoLoader``), mixing off and on;
* ``pyav``: the common baseline, a torch ``DataLoader`` (``num_workers`` = cores) whose Dataset
  decodes the clip's frames with PyAV and applies torch transforms (crop the same window, resize
  with ``interpolate(bilinear, antialias=True)``, flip, normalise, NCTHW); the batch is mixed in
  the training loop by :func:`timm_style_mix`, a small timm-style function written here;
* ``torchcodec`` (CPU), ``torchcodec-cuda`` and ``decord``: the same Dataset with another
  decoder, each only where the package imports (otherwise listed as skipped, with the reason).

``--op`` times the mixing op alone against a plain copy of the same bytes (the memory-bound lower
bound) on the CPU, and with CuPy on the GPU where there is one.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LOADERS",
    "PeerClipDataset",
    "ProcessTreeMonitor",
    "add_bench_parser",
    "machine_info",
    "run_bench",
    "run_op_bench",
    "timm_style_mix",
    "tiny3d_net",
]

BASELINE = "pyav"
OURS = "videomix-dali"
#: every loader ``--loaders`` accepts, in the order they run (fork-based DataLoaders first, so
#: their workers are forked before any DALI thread pool exists in this process)
LOADERS = ("pyav", "torchcodec", "torchcodec-cuda", "decord", OURS)
RESULT_FIELDS = (
    "loader",
    "device",
    "mix",
    "clips_per_s",
    "frames_per_s",
    "batch_ms_p50",
    "batch_ms_p95",
    "cpu_util",
    "peak_rss_mb",
    "gpu_mem_mb",
)


# --------------------------------------------------------------------------- /proc sampling

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (field 3 = ``[0]``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()


def process_tree(root: int | None = None) -> list[int]:
    """``root`` (default: this process) and all its live descendants, from ``/proc``."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(pids: Sequence[int] | None = None) -> float:
    """User + system CPU seconds of the process tree (live processes plus reaped children)."""
    total = 0
    for pid in process_tree() if pids is None else pids:
        fields = _stat_fields(pid)
        if fields is not None:  # utime, stime, cutime, cstime
            total += sum(int(v) for v in fields[11:15])
    return total / _CLK_TCK


def tree_memory_mb(pids: Sequence[int] | None = None) -> tuple[float, float]:
    """(RSS, PSS) of the process tree in MB. RSS sums pages shared by forked workers once per
    process; PSS (``/proc/<pid>/smaps_rollup``) splits them, so it is the fairer total."""
    rss = pss = 0
    for pid in process_tree() if pids is None else pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        rss += int(fields[21]) * _PAGE
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return rss / 2**20, pss / 2**20


def _gpu_used_mb() -> float | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        free, total = torch.cuda.mem_get_info()
        return (total - free) / 2**20
    except Exception:  # noqa: BLE001 - no CUDA, no figure
        return None


class ProcessTreeMonitor:
    """A thread sampling the process tree's RSS / PSS (and the GPU's used memory) every
    ``interval`` seconds; ``peak_*`` hold the maxima since ``start()``."""

    def __init__(self, interval: float = 0.1, gpu: bool = False) -> None:
        self.interval = interval
        self.gpu = gpu
        self.peak_rss_mb = 0.0
        self.peak_pss_mb = 0.0
        self.gpu_base_mb: float | None = None
        self.peak_gpu_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        rss, pss = tree_memory_mb()
        self.peak_rss_mb = max(self.peak_rss_mb, rss)
        self.peak_pss_mb = max(self.peak_pss_mb, pss)
        if self.gpu:
            used = _gpu_used_mb()
            if used is not None:
                self.peak_gpu_mb = max(self.peak_gpu_mb or 0.0, used)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> ProcessTreeMonitor:
        if self.gpu:
            self.gpu_base_mb = _gpu_used_mb()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    @property
    def gpu_mem_mb(self) -> float | None:
        """Peak device memory in use minus what was in use when the monitor started."""
        if self.peak_gpu_mb is None:
            return None
        return self.peak_gpu_mb - (self.gpu_base_mb or 0.0)


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - absent or broken: no version
        return None
    return str(getattr(mod, "__version__", "unknown"))


def _loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews the figures."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, GPU and the versions that matter for the figures."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    from . import __version__

    return {
        "cpu": _cpu_model(),
        "cores": cpu_cores(),
        "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * _PAGE / 2**30, 1),
        "gpu": gpu,
        "platform": platform.platform(),
        "loadavg": _loadavg(),
        "versions": {
            "python": platform.python_version(),
            "videomix_dali": __version__,
            "torch": torch.__version__,
            "nvidia.dali": _version("nvidia.dali"),
            "numpy": np.__version__,
            "av": _version("av"),
            "cupy": _version("cupy"),
            "torchcodec": _version("torchcodec"),
            "decord": _version("decord"),
        },
    }


# --------------------------------------------------------------------------- peers: decode


def decode_pyav(path: str | Path, frames: Sequence[int]) -> np.ndarray:
    """Frames ``frames`` (indices in decode order) of ``path`` as (T, H, W, 3) uint8 RGB.

    Decodes from the start up to the last wanted frame, converting only the wanted ones (what a
    typical PyAV Dataset does for short clips); past the end the last frame repeats.
    """
    import av

    wanted = {int(i) for i in frames}
    last = max(wanted)
    got: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        frame = None
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
        if frame is None:
            raise RuntimeError(f"{path}: no video frame decoded")
        if len(got) < len(wanted):  # the file ends early: repeat its last frame
            tail = frame.to_ndarray(format="rgb24")
            got.update({i: tail for i in wanted if i not in got})
    return np.stack([got[int(i)] for i in frames])


def _decode_torchcodec(device: str) -> Callable[[str | Path, Sequence[int]], Any]:
    from torchcodec.decoders import VideoDecoder

    def decode(path, frames):
        decoder = VideoDecoder(str(path), device=device)
        n = len(decoder)
        idx = [min(int(i), n - 1) for i in frames]
        return decoder.get_frames_at(idx).data  # (T, C, H, W) uint8 torch

    return decode


def _decode_decord(path: str | Path, frames: Sequence[int]) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    idx = [min(int(i), len(reader) - 1) for i in frames]
    return reader.get_batch(idx).asnumpy()  # (T, H, W, C) uint8


def clip_transform(frames: Any, clip: Any, crop_size: int, mean: Any, std: Any) -> Any:
    """Torch transforms of the common baseline: (T, H, W, C) uint8 NumPy or (T, C, H, W) uint8
    torch frames -> (C, T, crop, crop) float32, normalised (0..255 mean / std).

    The window is the clip's ROI rounded to whole pixels (x reversed = flip), resized with
    ``interpolate(mode="bilinear", antialias=True)`` when it is not already ``crop_size``.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2) if isinstance(frames, np.ndarray) else frames
    (y0, x0), (y1, x1) = clip.roi_start.tolist(), clip.roi_end.tolist()
    flip = x1 < x0
    x0, x1 = min(x0, x1), max(x0, x1)
    top, left = int(round(y0)), int(round(x0))
    bottom, right = max(int(round(y1)), top + 1), max(int(round(x1)), left + 1)
    x = x[:, :, top:bottom, left:right].float()
    if x.shape[-2:] != (crop_size, crop_size):
        x = F.interpolate(
            x, size=(crop_size, crop_size), mode="bilinear", antialias=True, align_corners=False
        )
    if flip:
        x = x.flip(-1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    x = (x - mean_t) / std_t
    return x.permute(1, 0, 2, 3).contiguous()


class PeerClipDataset:
    """Map-style Dataset whose index is a ``Clip`` of the loader's own sampler: decodes
    ``entries[clip.item].path`` at ``clip.frames`` with ``decoder`` and applies
    :func:`clip_transform`. Returns (video (C, T, crop, crop) float32, label int)."""

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        decoder: Callable[[str | Path, Sequence[int]], Any],
        crop_size: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        self.paths = list(paths)
        self.labels = list(labels)
        self.decoder = decoder
        self.crop_size = crop_size
        self.mean = list(mean)
        self.std = list(std)

    @classmethod
    def from_loader(cls, loader: Any, decoder: Callable | None = None) -> PeerClipDataset:
        s = loader.settings
        return cls(
            [str(e.path) for e in loader.entries],
            [int(e.label) for e in loader.entries],
            decode_pyav if decoder is None else decoder,
            s["crop_size"],
            s["mean"],
            s["std"],
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, clip: Any) -> tuple[Any, int]:
        frames = self.decoder(self.paths[clip.item], clip.frames.tolist())
        video = clip_transform(frames, clip, self.crop_size, self.mean, self.std)
        return video, self.labels[clip.item]


class SamplerBatches:
    """``batch_sampler`` for torch's DataLoader: the ``ClipSampler``'s batches, epoch after
    epoch, forever (each index is a ``Clip``)."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[Any]]:
        epoch = 0
        while True:
            for step in range(self.sampler.num_batches):
                yield self.sampler.batch(epoch, step)
            epoch += 1


# --------------------------------------------------------------------------- timm-style mixing

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


# --------------------------------------------------------------------------- the runs


def _skip_reason(name: str, device: str) -> str | None:
    """Why peer ``name`` cannot run here (None: it can)."""
    import torch

    module = {"torchcodec": "torchcodec", "torchcodec-cuda": "torchcodec", "decord": "decord"}
    if name in module:
        try:
            importlib.import_module(module[name])
        except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
            return f"{module[name]} is not importable ({type(exc).__name__}: {exc})"
    if name == "torchcodec-cuda":
        if device != "gpu":
            return "CUDA decode needs --device gpu"
        if not torch.cuda.is_available():
            return "no CUDA device"
    return None


def _loader_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "recipe": cfg["recipe"],
        "device": cfg["device"],
        "batch_size": cfg["batch_size"],
        "num_frames": cfg["frames"],
        "stride": cfg["stride"],
        "crop_size": cfg["crop"],
        "seed": cfg["seed"],
        "train": True,
        "num_threads": cfg["threads"],
        "progress": False,
    }


def _dali_stream(loader: Any) -> Iterator[tuple[Any, Any]]:
    while True:
        yield from loader


def _peer_stream(
    name: str, loader: Any, cfg: dict[str, Any], mix_mode: str | None
) -> Iterator[tuple[Any, Any]]:
    """Batches of peer ``name`` (mixed in the training loop when ``mix_mode``)."""
    import torch
    from torch.utils.data import DataLoader

    from .mix import VideoMix

    device = cfg["device"]
    if name == "pyav":
        decoder, workers = decode_pyav, cfg["workers"]
    elif name == "torchcodec":
        decoder, workers = _decode_torchcodec("cpu"), cfg["workers"]
    elif name == "torchcodec-cuda":  # CUDA in the main process (forked workers cannot use it)
        decoder, workers = _decode_torchcodec("cuda"), 0
    elif name == "decord":
        decoder, workers = _decode_decord, cfg["workers"]
    else:
        raise ValueError(f"unknown loader {name!r}")
    dataset = PeerClipDataset.from_loader(loader, decoder)
    data = DataLoader(
        dataset,
        batch_sampler=SamplerBatches(loader.sampler),
        num_workers=workers,
        pin_memory=device == "gpu" and workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )
    rng = np.random.default_rng(cfg["seed"])
    library_mix = VideoMix(mix_mode, seed=cfg["seed"]) if mix_mode == "perframe" else None
    num_classes = loader.num_classes
    for video, label in data:
        if device == "gpu":
            video = video.to("cuda", non_blocking=True)
            label = label.to("cuda", non_blocking=True)
        if mix_mode is None:
            yield video, label
        elif library_mix is not None:  # perframe is not written timm-style: library op
            video, soft = library_mix(video, label.cpu().numpy())
            yield video, torch.as_tensor(soft)
        else:
            yield timm_style_mix(video, label, num_classes, mix_mode, rng=rng)


def _percentile_ms(times: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(times) * 1000.0, q)), 2)


def measure_stream(
    make_stream: Callable[[], Iterator[tuple[Any, Any]]],
    *,
    warmup: float,
    duration: float,
    num_frames: int,
    gpu: bool,
) -> dict[str, Any]:
    """Pull batches: ``warmup`` seconds (at least one batch), then ``duration`` seconds (at
    least two batches) measured. The monitor covers building the loader and the warm-up."""
    import torch

    cores = cpu_cores()
    monitor = ProcessTreeMonitor(gpu=gpu).start()
    stream = make_stream()
    try:
        sync = torch.cuda.synchronize if gpu else (lambda: None)
        t_warm = time.perf_counter()
        while True:
            next(stream)
            sync()
            if time.perf_counter() - t_warm >= warmup:
                break
        cpu0 = tree_cpu_seconds()
        t0 = last = time.perf_counter()
        times: list[float] = []
        clips = 0
        while True:
            video, _target = next(stream)
            sync()
            now = time.perf_counter()
            times.append(now - last)
            last = now
            clips += int(video.shape[0])
            if now - t0 >= duration and len(times) >= 2:
                break
        wall = last - t0
        cpu1 = tree_cpu_seconds()
        shape = tuple(video.shape)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        del stream
        gc.collect()
        monitor.stop()
    return {
        "clips_per_s": round(clips / wall, 2),
        "frames_per_s": round(clips * num_frames / wall, 1),
        "batch_ms_p50": _percentile_ms(times, 50),
        "batch_ms_p95": _percentile_ms(times, 95),
        "cpu_util": round((cpu1 - cpu0) / wall / cores, 3),
        "peak_rss_mb": round(monitor.peak_rss_mb, 1),
        "peak_pss_mb": round(monitor.peak_pss_mb, 1),
        "gpu_mem_mb": None if not gpu else _round(monitor.gpu_mem_mb),
        "batches": len(times),
        "clips": clips,
        "wall_s": round(wall, 3),
        "batch_shape": list(shape),
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- --model


def tiny3d_net(num_classes: int) -> Any:
    """A small 3-D conv net (torchvision-free) for ``--model tiny3d``."""
    from torch import nn

    return nn.Sequential(
        nn.Conv3d(3, 32, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
        nn.BatchNorm3d(32),
        nn.ReLU(inplace=True),
        nn.Conv3d(32, 64, 3, (1, 2, 2), 1, bias=False),
        nn.BatchNorm3d(64),
        nn.ReLU(inplace=True),
        nn.Conv3d(64, 128, 3, 2, 1, bias=False),
        nn.BatchNorm3d(128),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(128, num_classes),
    )


def build_bench_model(name: str, num_classes: int) -> Any:
    """``tiny3d`` (defined here) or a model of the training app (``train/models.py``:
    slowonly18/34/50/101, slowfast50), importable when run from the repository root."""
    if name == "tiny3d":
        return tiny3d_net(num_classes)
    try:
        from train.models import build_model  # the app, not an installed package
    except ImportError as exc:
        raise ValueError(
            f"--model {name!r}: train/models.py is not importable ({exc}); run from the "
            "repository root or use --model tiny3d"
        ) from exc
    try:
        return build_model(name, num_classes)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"--model {name!r}: {exc}") from exc


def time_model_steps(
    model: Any,
    batches: Iterator[tuple[Any, Any]] | None,
    *,
    device: str,
    duration: float,
    warmup: float,
    example: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Training steps/s with batches from ``batches`` (the loader) or, without it, the same
    ``example`` batch over and over (the model's own speed, an upper bound)."""
    import torch

    dev = torch.device("cuda" if device == "gpu" else "cpu")
    model = model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)

    def step(video, target):
        video, target = video.to(dev, non_blocking=True), target.to(dev, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(video), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def pull():
        return next(batches) if batches is not None else example

    t_warm = time.perf_counter()
    while True:
        step(*pull())
        sync()
        if time.perf_counter() - t_warm >= warmup:
            break
    clips, steps = 0, 0
    t0 = time.perf_counter()
    while True:
        video, target = pull()
        step(video, target)
        sync()
        clips += int(video.shape[0])
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= duration and steps >= 2:
            break
    return {"steps_per_s": round(steps / elapsed, 3), "clips_per_s": round(clips / elapsed, 2)}


# --------------------------------------------------------------------------- run_bench


def _parse_loaders(loaders: str | Sequence[str] | None) -> list[str]:
    if loaders is None:
        return list(LOADERS)
    names = [n.strip() for n in loaders.split(",")] if isinstance(loaders, str) else loaders
    names = [n for n in names if n]
    unknown = [n for n in names if n not in LOADERS]
    if unknown or not names:
        raise ValueError(f"loaders={','.join(names)!r}: each must be one of {', '.join(LOADERS)}")
    return [n for n in LOADERS if n in names]


def run_bench(
    data: str | Path | None = None,
    *,
    recipe: str = "demo",
    device: str = "cpu",
    batch_size: int | None = None,
    frames: int | None = None,
    stride: int | None = None,
    crop: int | None = None,
    mix: str = "spatial",
    duration: float = 20.0,
    warmup: float = 5.0,
    loaders: str | Sequence[str] | None = None,
    workers: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    model: str | None = None,
    json_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    demo_root: str | Path = "data/demo",
    verbose: bool = True,
) -> dict[str, Any]:
    """Run every loader in ``loaders`` (default: all of :data:`LOADERS`) with mixing off and
    with ``mix`` (skip the mixed rows with ``mix="none"``); return the report (the JSON).

    ``workers`` (DataLoader workers of the peers) and ``threads`` (DALI threads) default to
    the number of cores. ``model`` (GPU only) also times training steps fed by each loader.
    """
    import torch

    from .loader import VideoLoader
    from .mix import MODES, VideoMix

    if device not in ("cpu", "gpu"):
        raise ValueError(f"device={device!r} must be 'cpu' or 'gpu'")
    if device == "gpu" and not torch.cuda.is_available():
        raise ValueError("device='gpu' but no CUDA device is visible; use --device cpu")
    if mix not in MODES:
        raise ValueError(f"mix={mix!r} must be one of {', '.join(MODES)}")
    for name, value in (("duration", duration), ("warmup", warmup)):
        if not value >= 0 or not math.isfinite(value):
            raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    if duration <= 0:
        raise ValueError(f"duration={duration!r} must be > 0")
    if model is not None and device != "gpu":
        raise ValueError("--model times training steps on the GPU; it needs --device gpu")
    names = _parse_loaders(loaders)
    cores = cpu_cores()
    if data is None:
        from .demo import ensure_demo_dataset

        data = ensure_demo_dataset(demo_root) / "train"
    cfg: dict[str, Any] = {
        "data": str(data),
        "recipe": recipe,
        "device": device,
        "batch_size": batch_size,
        "frames": frames,
        "stride": stride,
        "crop": crop,
        "seed": seed,
        "workers": workers or cores,
        "threads": threads or cores,
    }
    probe = VideoLoader(data, **_loader_kwargs(cfg))
    s = probe.settings
    cfg.update(
        batch_size=s["batch_size"],
        frames=s["num_frames"],
        stride=s["stride"],
        crop=s["crop_size"],
        mean=list(s["mean"]),
        std=list(s["std"]),
        mix=mix,
        duration_s=duration,
        warmup_s=warmup,
        loaders=names,
        videos=len(probe.entries),
        classes=probe.num_classes,
        model=model,
        baseline_mix=(
            "none"
            if mix == "none"
            else "library op (perframe)"
            if mix == "perframe"
            else "timm_style_mix in the training loop"
        ),
    )
    del probe
    mixes = [None] if mix == "none" else [None, mix]
    report: dict[str, Any] = {
        "machine": machine_info(),
        "config": cfg,
        "results": [],
        "skipped": [],
    }
    gpu = device == "gpu"
    for name in names:
        reason = _skip_reason(name, device)
        if reason is not None:
            report["skipped"].append({"loader": name, "reason": reason})
            if verbose:
                print(f"skip {name}: {reason}", flush=True)
            continue
        for mode in mixes:
            if verbose:
                print(f"bench {name} mix={mode or 'none'} ...", flush=True)

            def make(name=name, mode=mode):
                if name == OURS:
                    obj = VideoMix(mode, seed=seed) if mode is not None else None
                    return _dali_stream(VideoLoader(data, mix=obj, **_loader_kwargs(cfg)))
                return _peer_stream(name, VideoLoader(data, **_loader_kwargs(cfg)), cfg, mode)

            row = {"loader": name, "device": device, "mix": mode or "none"}
            row.update(
                measure_stream(
                    make, warmup=warmup, duration=duration, num_frames=cfg["frames"], gpu=gpu
                )
            )
            if model is not None:
                row.update(_model_rows(model, make, cfg, warmup, duration))
            report["results"].append(row)
            gc.collect()
    _add_ratios(report)
    if verbose:
        print(format_table(report), flush=True)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=1) + "\n")
    if plot_path is not None:
        plot_report(report, plot_path)
    return report


def _model_rows(model_name, make, cfg, warmup, duration) -> dict[str, Any]:
    """Training clips/s fed by the loader vs the model alone on one repeated batch."""
    import torch

    stream = make()
    first = next(stream)
    num_classes = cfg["classes"]
    net = build_bench_model(model_name, num_classes)
    alone = time_model_steps(
        net,
        None,
        device=cfg["device"],
        duration=duration,
        warmup=warmup,
        example=(first[0].clone(), first[1].clone()),
    )
    net = build_bench_model(model_name, num_classes)
    fed = time_model_steps(net, stream, device=cfg["device"], duration=duration, warmup=warmup)
    stream.close()
    del stream, net
    torch.cuda.empty_cache()
    return {
        "model": model_name,
        "train_clips_per_s": fed["clips_per_s"],
        "model_only_clips_per_s": alone["clips_per_s"],
        "gpu_fed": round(fed["clips_per_s"] / alone["clips_per_s"], 3),
    }


def _add_ratios(report: dict[str, Any]) -> None:
    """``ratio_to_baseline`` per row (same mix setting) and the target figures in ``summary``."""
    rows = report["results"]
    base = {r["mix"]: r["clips_per_s"] for r in rows if r["loader"] == BASELINE}
    for r in rows:
        b = base.get(r["mix"])
        r["ratio_to_baseline"] = round(r["clips_per_s"] / b, 3) if b else None
    ours = {r["mix"]: r["clips_per_s"] for r in rows if r["loader"] == OURS}
    peers = [r["clips_per_s"] for r in rows if r["loader"] != OURS and r["mix"] == "none"]
    summary: dict[str, Any] = {}
    if "none" in ours and peers:
        summary["ours_vs_best_peer"] = round(ours["none"] / max(peers), 3)
    mixed = [m for m in ours if m != "none"]
    if "none" in ours and mixed:
        summary["mix_cost"] = round(1.0 - ours[mixed[0]] / ours["none"], 3)
    report["summary"] = summary


# --------------------------------------------------------------------------- output


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: dict[str, Any]) -> str:
    """The results as a fixed-width table with ratios to the baseline, plus skipped peers."""
    head = (
        f"{'loader':<16}{'dev':<5}{'mix':<15}{'clips/s':>9}{'x base':>8}{'frames/s':>10}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'CPU %':>7}{'RSS MB':>9}{'PSS MB':>9}{'GPU MB':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        util = None if r["cpu_util"] is None else 100 * r["cpu_util"]
        lines.append(
            f"{r['loader']:<16}{r['device']:<5}{r['mix']:<15}{r['clips_per_s']:>9.1f}"
            f"{_fmt(r.get('ratio_to_baseline'), '.2f'):>8}{r['frames_per_s']:>10.0f}"
            f"{r['batch_ms_p50']:>9.1f}{r['batch_ms_p95']:>9.1f}{_fmt(util, '.0f'):>7}"
            f"{r['peak_rss_mb']:>9.0f}{_fmt(r.get('peak_pss_mb'), '.0f'):>9}"
            f"{_fmt(r['gpu_mem_mb'], '.0f'):>8}"
        )
        if "train_clips_per_s" in r:
            lines.append(
                f"{'':<21}{r['model']}: {r['train_clips_per_s']:.1f} clips/s fed by the loader, "
                f"{r['model_only_clips_per_s']:.1f} alone (GPU fed {100 * r['gpu_fed']:.0f} %)"
            )
    for s in report["skipped"]:
        lines.append(f"{s['loader']:<16}skipped: {s['reason']}")
    load = report["machine"].get("loadavg")
    if load and load[0] > 0.5:
        lines.append(
            f"note: load average {load[0]:.2f} at the start on {report['machine']['cores']} "
            "cores; other processes compete for the CPU"
        )
    summary = report.get("summary", {})
    if "ours_vs_best_peer" in summary:
        lines.append(f"videomix-dali vs best peer (mix none): {summary['ours_vs_best_peer']:.2f}x")
    if "mix_cost" in summary:
        lines.append(f"cost of mixing in videomix-dali: {100 * summary['mix_cost']:.1f} %")
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """A PNG: clips/s (with the ratio to the baseline), CPU utilisation and peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    labels = [f"{r['loader']}\nmix={r['mix']}" for r in rows]
    colors = ["tab:blue" if r["loader"] == OURS else "tab:gray" for r in rows]
    hatches = ["" if r["mix"] == "none" else "//" for r in rows]
    y = np.arange(len(rows))
    panels = [
        ("clips/s (higher is better)", [r["clips_per_s"] for r in rows]),
        ("CPU utilisation, % of all cores", [100 * r["cpu_util"] for r in rows]),
        ("peak memory of the process tree, MB (PSS)", [r.get("peak_pss_mb") or 0 for r in rows]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 1.6 + 0.7 * max(len(rows), 1)), sharey=True)
    for ax, (title, values) in zip(axes, panels):
        bars = ax.barh(y, values, color=colors, edgecolor="black")
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, max(values + [1]) * 1.3)
    for bar, r in zip(axes[0].patches, rows):
        ratio = r.get("ratio_to_baseline")
        text = f"{r['clips_per_s']:.0f}" + (f"  ({ratio:.2f}x)" if ratio is not None else "")
        axes[0].text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + text, va="center")
    axes[0].set_yticks(y, labels, fontsize=9)
    axes[0].invert_yaxis()
    m, c = report["machine"], report["config"]
    fig.suptitle(
        f"{c['batch_size']} x {c['frames']} frames (stride {c['stride']}) x {c['crop']}^2, "
        f"device {c['device']}; {m['cpu']}, {m['cores']} cores"
        + (f", {m['gpu']}" if m["gpu"] else ", no GPU"),
        fontsize=10,
    )
    skipped = ", ".join(s["loader"] for s in report["skipped"])
    if skipped:
        fig.text(0.01, 0.01, f"skipped (not importable / not applicable): {skipped}", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- --op


def _time_cpu(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000.0


def _time_gpu(fn: Callable[[], Any], repeats: int) -> float:
    import cupy

    fn()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return float(np.median(times))


def _gpu_skip_reason() -> str | None:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as exc:  # noqa: BLE001 - no CuPy or no driver: no GPU figures
        return f"no CUDA device for CuPy ({type(exc).__name__})"
    return None


def run_op_bench(
    shape: Sequence[int] = (8, 3, 8, 112, 112),
    *,
    mode: str = "spatial",
    repeats: int = 20,
    seed: int = 0,
    mean: Sequence[float] = (114.75, 114.75, 114.75),
    std: Sequence[float] = (57.375, 57.375, 57.375),
    gpu: bool | None = None,
    json_path: str | Path | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Time the mix op against a plain copy of the same bytes, per backend (median ms):

    * ``copy``: ``np.copyto`` of the (N, C, T, H, W) float32 batch (the lower bound);
    * ``apply_mix``: ``videomix_dali.mix.apply_mix`` on that batch (returns a new array);
    * ``mix_normalize``: the pipeline's fused ``mix_normalize_batch(frames, params, mean,
      std)`` on the N (T, H, W, C) uint8 clips, into a preallocated output;
    * ``normalize``: a plain normalise + transpose of the same uint8 clips into the same
      output (what the pipeline's step would cost without the paste).

    ``gpu``: None = where CuPy sees a device; the GPU figures use CUDA events.
    """
    from .mix import MODES, VideoMix, apply_mix, mix_normalize_batch

    if len(shape) != 5 or min(shape) < 1:
        raise ValueError(f"shape={tuple(shape)!r} must be 5 positive sizes (N, C, T, H, W)")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be one of {', '.join(MODES)}")
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    N, C, T, H, W = (int(v) for v in shape)
    rng = np.random.default_rng(seed)
    x = rng.random((N, C, T, H, W), dtype=np.float32)
    frames = [rng.integers(0, 256, (T, H, W, C), dtype=np.uint8) for _ in range(N)]
    params = VideoMix(mode, seed=seed).sample((N, C, T, H, W), step=0)
    m32 = np.asarray(mean, np.float32).reshape(C, 1, 1, 1)
    inv32 = (1.0 / np.asarray(std, np.float32)).reshape(C, 1, 1, 1)
    out = np.empty((N, C, T, H, W), np.float32)
    dst = np.empty_like(x)

    def plain_normalize(xp, frames, out, m, inv):
        for n, f in enumerate(frames):
            xp.subtract(f.transpose(3, 0, 1, 2), m, out=out[n], dtype=xp.float32)
            xp.multiply(out[n], inv, out=out[n])
        return out

    report: dict[str, Any] = {
        "shape": [N, C, T, H, W],
        "mode": mode,
        "repeats": repeats,
        "batch_mb": round(x.nbytes / 2**20, 2),
    }
    cpu = {
        "copy_ms": _time_cpu(lambda: np.copyto(dst, x), repeats),
        "copy_new_ms": _time_cpu(lambda: x.copy(), repeats),
        "apply_mix_ms": _time_cpu(lambda: apply_mix(x, params), repeats),
        "mix_normalize_ms": _time_cpu(
            lambda: mix_normalize_batch(frames, params, mean, std, out=out), repeats
        ),
        "normalize_ms": _time_cpu(lambda: plain_normalize(np, frames, out, m32, inv32), repeats),
    }
    report["cpu"] = _op_ratios(cpu)
    reason = _gpu_skip_reason() if gpu is not False else "not requested"
    if gpu and reason is not None:
        raise ValueError(f"gpu=True but {reason}")
    if reason is None:
        import cupy

        xg, dg = cupy.asarray(x), cupy.empty_like(cupy.asarray(x))
        fg = [cupy.asarray(f) for f in frames]
        og = cupy.empty((N, C, T, H, W), cupy.float32)
        mg, ig = cupy.asarray(m32), cupy.asarray(inv32)
        gpu_times = {
            "copy_ms": _time_gpu(lambda: cupy.copyto(dg, xg), repeats),
            "copy_new_ms": _time_gpu(lambda: xg.copy(), repeats),
            "apply_mix_ms": _time_gpu(lambda: apply_mix(xg, params), repeats),
            "mix_normalize_ms": _time_gpu(
                lambda: mix_normalize_batch(fg, params, mean, std, out=og), repeats
            ),
            "normalize_ms": _time_gpu(lambda: plain_normalize(cupy, fg, og, mg, ig), repeats),
        }
        report["gpu"] = _op_ratios(gpu_times)
    else:
        report["gpu"] = None
        report["gpu_skipped"] = reason
    if verbose:
        print(format_op_table(report), flush=True)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=1) + "\n")
    return report


def _op_ratios(t: dict[str, float]) -> dict[str, float]:
    t = {k: round(v, 4) for k, v in t.items()}
    t["apply_mix_vs_copy"] = round(t["apply_mix_ms"] / t["copy_ms"], 3)
    t["apply_mix_vs_copy_new"] = round(t["apply_mix_ms"] / t["copy_new_ms"], 3)
    t["mix_normalize_vs_normalize"] = round(t["mix_normalize_ms"] / t["normalize_ms"], 3)
    return t


def format_op_table(report: dict[str, Any]) -> str:
    lines = [
        f"mix op {report['mode']!r} on {tuple(report['shape'])} float32 "
        f"({report['batch_mb']} MB), median of {report['repeats']}",
        f"{'backend':<8}{'copy':>9}{'copy(new)':>11}{'apply_mix':>11}{'x copy':>8}"
        f"{'mix+norm':>10}{'norm':>9}{'x norm':>8}   (ms)",
    ]
    for backend in ("cpu", "gpu"):
        t = report.get(backend)
        if t is None:
            lines.append(f"{backend:<8}skipped: {report.get('gpu_skipped')}")
            continue
        lines.append(
            f"{backend:<8}{t['copy_ms']:>9.3f}{t['copy_new_ms']:>11.3f}{t['apply_mix_ms']:>11.3f}"
            f"{t['apply_mix_vs_copy']:>8.2f}{t['mix_normalize_ms']:>10.3f}"
            f"{t['normalize_ms']:>9.3f}{t['mix_normalize_vs_normalize']:>8.2f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="folder or index file (default: the demo train split)")
    p.add_argument("--demo-root", default="data/demo", help="where the demo dataset lives")
    p.add_argument("--recipe", default="demo")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--batch-size", type=_positive_int, help="default: the recipe's")
    p.add_argument("--frames", type=_positive_int, help="frames per clip T (recipe's)")
    p.add_argument("--stride", type=_positive_int, help="frame stride tau (recipe's)")
    p.add_argument("--crop", type=_positive_int, help="output size (recipe's crop_size)")
    p.add_argument("--mix", default="spatial", help="mode of the mixed rows ('none': no rows)")
    p.add_argument("--duration", type=_seconds, default=20.0, help="measured seconds per row")
    p.add_argument("--warmup", type=_seconds, default=5.0, help="warm-up seconds per row")
    p.add_argument(
        "--loaders",
        default=",".join(LOADERS),
        help=f"comma-separated subset of {','.join(LOADERS)} (default: all)",
    )
    p.add_argument("--workers", type=_positive_int, help="DataLoader workers (default: cores)")
    p.add_argument("--threads", type=_positive_int, help="DALI threads (default: cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="GPU only: also time training steps (tiny3d, slowonly50, ...)")
    p.add_argument("--json", dest="json_path", help="write the report as JSON here")
    p.add_argument("--plot", dest="plot_path", help="write a PNG bar chart here")
    p.add_argument("--op", action="store_true", help="micro-benchmark the mix op instead")
    p.add_argument("--op-repeats", type=_positive_int, default=20)


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    if args.op:
        from .recipes import load_recipe

        s = load_recipe(args.recipe)
        shape = (
            args.batch_size or s["batch_size"],
            3,
            args.frames or s["num_frames"],
            args.crop or s["crop_size"],
            args.crop or s["crop_size"],
        )
        return run_op_bench(
            shape,
            mode=args.mix if args.mix != "none" else "spatial",
            repeats=args.op_repeats,
            seed=args.seed,
            mean=s["mean"],
            std=s["std"],
            gpu=True if args.device == "gpu" else None,
            json_path=args.json_path,
        )
    return run_bench(
        args.data,
        recipe=args.recipe,
        device=args.device,
        batch_size=args.batch_size,
        frames=args.frames,
        stride=args.stride,
        crop=args.crop,
        mix=args.mix,
        duration=args.duration,
        warmup=args.warmup,
        loaders=args.loaders,
        workers=args.workers,
        threads=args.threads,
        seed=args.seed,
        model=args.model,
        json_path=args.json_path,
        plot_path=args.plot_path,
        demo_root=args.demo_root,
    )


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to an argparse ``subparsers`` object (its ``func`` runs the bench)."""
    p = subparsers.add_parser(
        "bench",
        help="loader throughput vs PyAV/torchcodec/decord baselines (or --op: the mix op)",
        description=__doc__.split("\n\n")[0],
    )
    _add_arguments(p)
    p.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m videomix_dali.bench", description=__doc__)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cmd_bench(args)
    except ValueError as exc:
        raise SystemExit(f"videomix-dali bench: error: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
