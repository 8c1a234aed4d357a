"""``make gpu-check``: everything that needs a GPU, proven in one prepared device call.

Runs as the lent GPU machine runs it, with nothing installed: ``python3 tests/gpu_check.py``
from the repository root, DALI and PyAV from the carried bundle and this checkout on
``PYTHONPATH`` (docs/gpu-check.md). Steps, each in its own process group with its own time
limit (a crash or a hang fails that step and kills its children, not the check):

- ``data``: the demo set (128x128, NVDEC's VP9 minimum, with H.264 copies) and two small
  Kinetics-shaped corpora, 340x256 (coded 352x256) and 352x256 (coded = display size);
- ``environment``: versions, the GPU, libnvcuvid, one CUDA major across torch, DALI, CuPy;
- ``nvdec-limits``: NVDEC's own limits per codec (cuvidGetDecoderCaps) against the table the
  probe refuses files by (``probe.NVDEC_SIZE_LIMITS``);
- ``pytest-gpu``: every ``gpu``-marked test (JUnit XML beside the JSON);
- ``cpu-gpu-equality``: one mixed batch from the same seed through the whole loader on the
  CPU and on the GPU;
- ``bench-gpu``: the bench rows (PyAV, DALI's reader, ours with and without mixing, each
  feeding a SlowOnly-50) on the 340x256 H.264 corpus, with NVDEC utilisation;
- ``nvdec-scaling``: our loader's clips/s and NVDEC utilisation at 340x256 against 352x256,
  DALI threads 1/4/8/16, one against two pipelines;
- ``train-gpu``: a 2-epoch spatial-VideoMix training run and its evaluation.

Writes ``gpu-check.json`` after every step, ``gpu-check.log`` and the step files under
``$OUT`` when set, else ``./gpu-check/``; exits 0 only if every step passed. ``--dry-run``
walks the same steps without CUDA (CPU twins, tiny settings) and is part of the test suite.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, also where it is not installed

RESULT = "GPU-CHECK-RESULT "  # a step's last stdout line: this prefix + JSON details
# step name -> time limit in seconds on the GPU; their sum is the check's bound (6 minutes)
STEPS = {
    "data": 30,
    "environment": 10,
    "nvdec-limits": 10,
    "pytest-gpu": 90,
    "cpu-gpu-equality": 30,
    "bench-gpu": 90,
    "nvdec-scaling": 60,
    "train-gpu": 40,
}
DRY_RUN_SLACK = 4  # the CPU twins on a 2-core machine are slower than the GPU
STD = 57.375  # the demo recipe's std, in 0..255 units
NVDEC_STEPS = {"cpu-gpu-equality", "bench-gpu", "nvdec-scaling", "train-gpu"}


def data_paths(work: Path) -> dict[str, Path]:
    """Where the ``data`` step writes each data set."""
    return {
        "demo": work / "demo",
        "kinetics": work / "bench-340x256",
        "coded": work / "bench-352x256",
    }


# --------------------------------------------------------------------------- steps


def step_data(ctx: dict[str, Any]) -> dict[str, Any]:
    """The demo set and two Kinetics-shaped corpora (one keyframe every 150 frames)."""
    from videomix_dali.tools.bench.data import BenchData, make_bench_data
    from videomix_dali.tools.demo import make_demo_dataset

    dry, paths = ctx["dry_run"], data_paths(ctx["work"])
    make_demo_dataset(
        paths["demo"],
        videos_per_class=2 if dry else 6,
        test_per_class=1 if dry else 2,
        num_frames=24,
        size=(128, 128),
        h264=True,
        progress=False,
    )
    spec = BenchData(classes=2, videos_per_class=2 if dry else 4, long_per_class=0, h264=True)
    if dry:
        spec = replace(spec, frames=120, size=(192, 256), gop=60)
    make_bench_data(paths["kinetics"], spec, progress=False)
    height, width = spec.size
    make_bench_data(
        paths["coded"], replace(spec, size=(height, -(-width // 16) * 16)), progress=False
    )
    return {name: str(path) for name, path in paths.items()}


def _nvcuvid() -> str | None:
    """Where the driver's NVDEC library is, or None."""
    try:
        ctypes.CDLL("libnvcuvid.so.1")
    except OSError:
        return None
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    found = [ln.split("=>")[-1].strip() for ln in listing.splitlines() if "libnvcuvid.so.1" in ln]
    return found[0] if found else "libnvcuvid.so.1 (loadable, not in ldconfig's cache)"


def _require_nvdec(ctx: dict[str, Any]) -> None:
    if not ctx["dry_run"] and _nvcuvid() is None:
        raise RuntimeError(
            "libnvcuvid.so.1 is not loadable: the driver's NVDEC library is missing in this "
            "machine (NVIDIA_DRIVER_CAPABILITIES lacks 'video'?), so no video decodes on the GPU"
        )


def step_environment(ctx: dict[str, Any]) -> dict[str, Any]:
    """Versions and the device; fails if a piece is missing or CUDA majors differ."""
    import av
    import nvidia.dali as dali
    import torch

    import videomix_dali

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "dali": dali.__version__,
        "av": av.__version__,
        "videomix_dali": str(Path(videomix_dali.__file__).parent),
    }
    if ctx["dry_run"]:
        return info
    import cupy

    info["cupy"] = cupy.__version__
    info["device"] = torch.cuda.get_device_name(0)
    info["driver"] = cupy.cuda.runtime.driverGetVersion()
    info["libnvcuvid"] = _nvcuvid()
    majors = {
        "torch": int(torch.version.cuda.split(".")[0]),
        "cupy": cupy.cuda.runtime.runtimeGetVersion() // 1000,
        "dali": _dali_cuda_major(),
    }
    info["cuda_majors"] = majors
    if len(set(majors.values())) != 1:
        raise RuntimeError(f"CUDA majors differ: {majors}")
    _require_nvdec(ctx)
    return info


def _dali_cuda_major() -> int:
    """The CUDA major of the DALI in use (its wheel's name, or its build information)."""
    from importlib.metadata import distributions

    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("nvidia-dali-cuda"):
            return int(name.removeprefix("nvidia-dali-cuda")) // 10
    raise RuntimeError("no nvidia-dali-cudaXY0 distribution found (dist-info not carried?)")


# cudaVideoCodec values and the CUVIDDECODECAPS layout of NVIDIA's Video Codec SDK
# (cuviddec.h); chroma 1 = 4:2:0.
_CODECS = {"mpeg4": 2, "h264": 4, "jpeg": 5, "hevc": 8, "vp8": 9, "vp9": 10, "av1": 11}


class _DecodeCaps(ctypes.Structure):
    _fields_ = [
        ("codec", ctypes.c_int),
        ("chroma", ctypes.c_int),
        ("bit_depth_minus8", ctypes.c_uint),
        ("reserved1", ctypes.c_uint * 3),
        ("supported", ctypes.c_ubyte),
        ("num_nvdecs", ctypes.c_ubyte),
        ("output_format_mask", ctypes.c_ushort),
        ("max_width", ctypes.c_uint),
        ("max_height", ctypes.c_uint),
        ("max_mb_count", ctypes.c_uint),
        ("min_width", ctypes.c_ushort),
        ("min_height", ctypes.c_ushort),
        ("histogram", ctypes.c_ubyte),
        ("counter_bit_depth", ctypes.c_ubyte),
        ("max_histogram_bins", ctypes.c_ushort),
        ("reserved3", ctypes.c_uint * 10),
    ]


def limit_mismatches(
    table: dict[str, tuple[int, int, int, int]], caps: dict[str, tuple[int, int, int, int] | None]
) -> list[str]:
    """Where ``table`` (our 8-bit 4:2:0 limits: min w, min h, max w, max h) admits a size the
    hardware's ``caps`` (None: codec not supported) refuses."""
    wrong = []
    for codec, (min_w, min_h, max_w, max_h) in table.items():
        hw = caps.get(codec)
        if hw is None:
            wrong.append(f"{codec}: the probe accepts it, this NVDEC does not decode it")
        elif min_w < hw[0] or min_h < hw[1] or max_w > hw[2] or max_h > hw[3]:
            wrong.append(f"{codec}: probe {min_w}x{min_h}..{max_w}x{max_h}, NVDEC {hw}")
    return wrong


def step_nvdec_limits(ctx: dict[str, Any]) -> dict[str, Any]:
    """NVDEC's limits per codec and bit depth (4:2:0) as the driver reports them, and where
    the probe's table disagrees (it must never admit a size the hardware refuses)."""
    from videomix_dali.source.probe import NVDEC_SIZE_LIMITS

    if ctx["dry_run"]:
        return {"skipped": "dry run: no driver to ask"}
    _require_nvdec(ctx)
    import torch

    torch.zeros(1, device="cuda")  # makes the primary context current on this thread
    lib = ctypes.CDLL("libnvcuvid.so.1")
    limits: dict[str, str] = {}
    caps8: dict[str, tuple[int, int, int, int] | None] = {}
    engines = 0
    for name, code in _CODECS.items():
        for depth in (8, 10):
            caps = _DecodeCaps(codec=code, chroma=1, bit_depth_minus8=depth - 8)
            status = lib.cuvidGetDecoderCaps(ctypes.byref(caps))
            key = f"{name}-{depth}bit"
            sizes = (caps.min_width, caps.min_height, caps.max_width, caps.max_height)
            if status != 0:
                limits[key] = f"error {status}"
            elif not caps.supported:
                limits[key] = "not supported"
            else:
                limits[key] = f"{sizes[0]}x{sizes[1]} .. {sizes[2]}x{sizes[3]}"
                engines = max(engines, caps.num_nvdecs)
            if depth == 8:
                caps8[name] = sizes if status == 0 and caps.supported else None
    table = {c: v for c, v in NVDEC_SIZE_LIMITS.items() if c in caps8}
    out = {"limits": limits, "nvdec_engines": engines, "mismatches": limit_mismatches(table, caps8)}
    if out["mismatches"]:
        raise RuntimeError(f"probe.NVDEC_SIZE_LIMITS disagrees with this NVDEC: {out}")
    return out


def step_pytest_gpu(ctx: dict[str, Any]) -> dict[str, Any]:
    """Every ``gpu``-marked test (in a dry run they are collected and skip cleanly)."""
    xml = ctx["out"] / "pytest-gpu.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfEs", "-p", "no:cacheprovider"]
    cmd += [f"--junitxml={xml}", str(ROOT / "tests")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace")
    print(proc.stdout[-20000:], proc.stderr[-4000:], sep="\n", flush=True)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    out = {"summary": summary, "failures": junit_failures(xml)}
    if proc.returncode != 0 or (not ctx["dry_run"] and "skipped" in summary):
        raise RuntimeError(f"pytest -m gpu: {json.dumps(out)[:3000]}")
    return out


def junit_failures(xml: Path) -> dict[str, str]:
    """Test id -> the first lines of its failure or error, from a JUnit XML report."""
    if not xml.is_file():
        return {}
    failures = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        for bad in [*case.findall("failure"), *case.findall("error")]:
            text = (bad.get("message") or "") + "\n" + (bad.text or "")
            failures[f"{case.get('classname')}::{case.get('name')}"] = text.strip()[:1500]
    return failures


def step_cpu_gpu_equality(ctx: dict[str, Any]) -> dict[str, Any]:
    """One spatially mixed batch, same seed, whole loader: CPU vs GPU (CPU vs CPU dry)."""
    import numpy as np

    from videomix_dali import VideoLoader
    from videomix_dali.mix import VideoMix

    _require_nvdec(ctx)
    demo = data_paths(ctx["work"])["demo"]

    def first_batch(device: str) -> tuple[np.ndarray, np.ndarray]:
        loader = VideoLoader(
            demo / "train",
            recipe="demo",
            device=device,
            batch_size=4,
            crop_size=112,
            seed=3,
            mix=VideoMix("spatial", seed=3),
            progress=False,
        )
        video, target = next(iter(loader))
        if device == "gpu" and not (video.is_cuda and target.is_cuda):
            raise RuntimeError(
                f"GPU loader gave video on {video.device}, target on {target.device}"
            )
        return video.cpu().numpy(), target.cpu().numpy()

    cpu_video, cpu_target = first_batch("cpu")
    video, target = first_batch("cpu" if ctx["dry_run"] else "gpu")
    levels = np.abs(video.astype(np.float64) - cpu_video) * STD  # in 0..255 units
    out = {
        "targets_equal": bool(np.array_equal(target, cpu_target)),
        "mean_abs_diff_levels": round(float(levels.mean()), 4),
        "p999_abs_diff_levels": round(float(np.quantile(levels, 0.999)), 4),
        "max_abs_diff_levels": round(float(levels.max()), 4),
    }
    # The soft targets come from the same host params: exactly equal. Frames differ only
    # by the backends' colour conversion and resampling, a few levels; a misplaced box
    # would copy another video and show as a large difference.
    if (
        not out["targets_equal"]
        or out["mean_abs_diff_levels"] > 2
        or out["p999_abs_diff_levels"] > 24
    ):
        raise RuntimeError(f"CPU and GPU batches differ: {out}")
    return out


class DecoderUtilisation:
    """NVDEC utilisation (%, all engines together) sampled by ``nvidia-smi`` every 200 ms
    while in a ``with`` block; ``summary()`` gives the mean and peak (None without a GPU)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.samples = enabled, []
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> DecoderUtilisation:
        if self.enabled:
            self._proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.decoder", "--format=csv,noheader,nounits",
                 "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._proc.stdout:
            if line.strip().isdigit():
                self.samples.append(int(line))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
            self._reader.join(5)

    def summary(self) -> dict[str, float | None]:
        if not self.samples:
            return {"nvdec_util_mean": None, "nvdec_util_max": None}
        mean = sum(self.samples) / len(self.samples)
        return {"nvdec_util_mean": round(mean, 1), "nvdec_util_max": max(self.samples)}


def step_bench_gpu(ctx: dict[str, Any]) -> dict[str, Any]:
    """The GPU bench rows (PyAV, DALI's reader, ours with and without mixing, each feeding a
    SlowOnly-50) on the 340x256 H.264 corpus; fails where a row measured nothing."""
    from videomix_dali.tools.bench.run import run_bench

    dry = ctx["dry_run"]
    _require_nvdec(ctx)
    corpus = data_paths(ctx["work"])["kinetics"]
    with DecoderUtilisation(not dry) as util:
        report = run_bench(
            corpus / ("train" if dry else "h264/train"),
            recipe="kinetics",
            device="cpu" if dry else "gpu",
            batch_size=2 if dry else 8,
            crop=112 if dry else None,
            loaders="pyav,dali-reader,videomix-dali",
            duration=1.0 if dry else 2.0,
            warmup=0.5 if dry else 1.0,
            model=None if dry else "slowonly50",
            model_factory=_app_models(),  # loaded in the dry run too, used on the GPU only
            json_path=ctx["out"] / "bench-gpu.json",
            verbose=False,
        )
    rows = report["results"]
    keep = ("loader", "mix", "clips_per_s", "gpu_mem_mb", "gpu_fed", "model_clips_per_s")
    out = {"rows": [{k: r.get(k) for k in keep} for r in rows], **util.summary()}
    ours = [r for r in rows if r["loader"] == "videomix-dali"]
    empty = [r["loader"] for r in rows if not r.get("clips_per_s", 0) > 0]
    if len(ours) != 2 or empty:
        raise RuntimeError(
            f"bench rows missing or empty (ours: {len(ours)}, empty: {empty}): {out}"
        )
    return out


def _app_models() -> Any:
    """The training app's model factory (train/ is importable from the repository root)."""
    from videomix_dali.tools.bench.cli import APP_MODEL_FACTORY, load_model_factory

    factory = load_model_factory(APP_MODEL_FACTORY)
    if factory is None:
        raise RuntimeError(f"{APP_MODEL_FACTORY} is not importable from {ROOT}")
    return factory


def _loader_clips_per_s(
    folder: Path, device: str, threads: int, pipelines: int, seconds: float, batch_size: int
) -> float:
    """Clips/s of ``pipelines`` loaders (shards of ``folder``, ``threads`` DALI threads each)
    pulled together from as many Python threads, after a one-batch warm-up each."""
    import torch

    from videomix_dali import VideoLoader

    loaders = [
        VideoLoader(
            folder,
            recipe="kinetics",
            device=device,
            batch_size=batch_size,
            num_threads=threads,
            shard_id=k,
            num_shards=pipelines,
            progress=False,
        )
        for k in range(pipelines)
    ]
    counts = [0] * pipelines
    errors: list[BaseException] = []
    stop = threading.Event()
    started = threading.Barrier(pipelines + 1, timeout=120)

    def pull(k: int) -> None:
        try:
            batches = iter(_endless(loaders[k]))
            next(batches)
            started.wait()
            while not stop.is_set():
                counts[k] += int(next(batches)[0].shape[0])
            if device == "gpu":
                torch.cuda.synchronize()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            started.abort()

    workers = [threading.Thread(target=pull, args=(k,)) for k in range(pipelines)]
    for w in workers:
        w.start()
    try:
        started.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    if not errors:
        time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    if errors:
        raise RuntimeError(f"a loader thread failed: {errors[0]!r}") from errors[0]
    return sum(counts) / (time.perf_counter() - t0)


def _endless(loader: Any) -> Any:
    while True:
        yield from loader


def step_nvdec_scaling(ctx: dict[str, Any]) -> dict[str, Any]:
    """Our loader's clips/s and NVDEC utilisation: 340x256 (coded 352x256: NVDEC's decoder
    cache misses) against 352x256, DALI threads, one against two pipelines."""
    dry = ctx["dry_run"]
    _require_nvdec(ctx)
    paths = data_paths(ctx["work"])
    sub = "train" if dry else "h264/train"
    device, seconds, batch = ("cpu", 0.5, 2) if dry else ("gpu", 2.0, 4)
    configs = [("kinetics", t, 1) for t in ((1, 2) if dry else (1, 4, 8, 16))]
    configs += [("coded", t, 1) for t in ((2,) if dry else (4, 16))]
    configs += [(size, 2 if dry else 8, 2) for size in ("kinetics", "coded")]
    rows = []
    for size, threads, pipelines in configs:
        with DecoderUtilisation(not dry) as util:
            folder = paths[size] / sub
            rate = _loader_clips_per_s(folder, device, threads, pipelines, seconds, batch)
        rows.append(
            {
                "size": "340x256" if size == "kinetics" else "352x256",
                "threads": threads,
                "pipelines": pipelines,
                "clips_per_s": round(rate, 1),
                **util.summary(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if not all(r["clips_per_s"] > 0 for r in rows):
        raise RuntimeError(f"a configuration delivered no clips: {rows}")
    return {"rows": rows}


def step_train_gpu(ctx: dict[str, Any]) -> dict[str, Any]:
    """A 2-epoch spatial-VideoMix training run with evaluation (1 epoch on the CPU, dry):
    every epoch's loss finite, the evaluation scored, one prediction per test video."""
    _require_nvdec(ctx)
    demo = data_paths(ctx["work"])["demo"]
    data = demo if ctx["dry_run"] else demo / "h264"
    run_dir = ctx["work"] / "train-run"
    epochs = 1 if ctx["dry_run"] else 2
    cmd = [
        sys.executable, "-m", "train", "--recipe", "demo",
        "--data", str(data / "train"), "--val", str(data / "test_debiased"),
        "--mix", "spatial", "--epochs", str(epochs), "--batch-size", "4",
        "--device", "cpu" if ctx["dry_run"] else "gpu", "--out", str(run_dir), "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace")
    print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"python -m train exited with {proc.returncode}")
    records = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs_done = [r for r in records if "train_loss" in r]
    final = records[-1]
    predictions = (run_dir / "predictions_test_debiased.csv").read_text().splitlines()
    videos = sum(1 for p in (data / "test_debiased").rglob("*") if p.is_file())
    out = {
        "losses": [r["train_loss"] for r in epochs_done],
        "clips_per_s": [r.get("clips_per_s") for r in epochs_done],
        "test_debiased_top1": final.get("test_debiased/top1"),
        "predictions": len(predictions) - 1,
    }
    if (
        len(epochs_done) != epochs
        or not all(math.isfinite(x) for x in out["losses"])
        or not final.get("final")
        or out["test_debiased_top1"] is None
        or out["predictions"] != videos
    ):
        raise RuntimeError(f"the training run is incomplete: {out} ({videos} test videos)")
    return out


STEP_FUNCTIONS = {
    "data": step_data,
    "environment": step_environment,
    "nvdec-limits": step_nvdec_limits,
    "pytest-gpu": step_pytest_gpu,
    "cpu-gpu-equality": step_cpu_gpu_equality,
    "bench-gpu": step_bench_gpu,
    "nvdec-scaling": step_nvdec_scaling,
    "train-gpu": step_train_gpu,
}


# --------------------------------------------------------------------------- driver


def run_step(name: str, ctx: dict[str, Any]) -> None:
    """Child process: run one step, print its details as the last line."""
    details = STEP_FUNCTIONS[name](ctx)
    print(RESULT + json.dumps(details, default=str), flush=True)


def run_in_group(cmd: list[str], limit: float) -> tuple[str, int | None]:
    """(output, exit code or None when killed at ``limit`` seconds) of ``cmd`` run in a new
    process group, the whole group killed at the limit (pytest's and train's children too)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=limit)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        output, _ = proc.communicate()
        output += f"\ntimed out after {limit:.0f} s: process group killed".encode()
        code = None
    _kill_group(proc.pid)  # what a finished step left running
    return output.decode("utf-8", "replace"), code


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_all(out: Path, work: Path, dry_run: bool) -> int:
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "dry_run": dry_run,
        "machine": platform.node(),
        "limit_s": sum(STEPS.values()) * (DRY_RUN_SLACK if dry_run else 1),
        "steps": [],
    }
    started = time.time()
    with (out / "gpu-check.log").open("w") as log:
        for name, limit in STEPS.items():
            t0 = time.time()
            cmd = [sys.executable, __file__, "--step", name, "--out", str(out), "--work", str(work)]
            limit_s = limit * (DRY_RUN_SLACK if dry_run else 1)
            output, code = run_in_group(cmd + (["--dry-run"] if dry_run else []), limit_s)
            lines = [ln for ln in output.splitlines() if ln.startswith(RESULT)]
            ok = code == 0 and bool(lines)
            entry: dict[str, Any] = {"step": name, "ok": ok, "seconds": round(time.time() - t0, 1)}
            if lines:
                entry["details"] = json.loads(lines[-1][len(RESULT) :])
            else:
                entry["error"] = _first_error(output) or f"exit {code}"
            report["steps"].append(entry)
            report.update(seconds=round(time.time() - started, 1), ok=None)
            _write_json(out / "gpu-check.json", report)
            log.write(f"===== {name} (exit {code}, {entry['seconds']} s)\n{output}\n")
            log.flush()
            shown = json.dumps(entry.get("details", entry.get("error")), default=str)
            print(
                f"{'PASS' if ok else 'FAIL'}  {name:18s} {entry['seconds']:6.1f} s  {shown[:400]}"
            )
            sys.stdout.flush()
    report.update(seconds=round(time.time() - started, 1), ok=all(s["ok"] for s in report["steps"]))
    _write_json(out / "gpu-check.json", report)
    verdict = "all passed" if report["ok"] else "FAILED"
    print(f"gpu-check: {verdict} in {report['seconds']} s; {out / 'gpu-check.json'}")
    return 0 if report["ok"] else 1


def _first_error(output: str) -> str:
    """The first traceback's last line (its exception), else the output's last line."""
    lines = output.strip().splitlines()
    if "Traceback (most recent call last):" in lines:
        start = lines.index("Traceback (most recent call last):")
        for line in lines[start + 1 :]:
            if line and not line.startswith((" ", "Traceback")):
                return line[:2000]
    return lines[-1][:2000] if lines else ""


def _write_json(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="walk every step without CUDA")
    p.add_argument("--out", help="results folder (default: $OUT, else ./gpu-check)")
    p.add_argument("--work", help="scratch folder for data and runs (default: OUT-work)")
    p.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out or os.environ.get("OUT") or "gpu-check").resolve()
    work = Path(args.work or out.parent / f"{out.name}-work").resolve()
    if args.step:
        run_step(args.step, {"dry_run": args.dry_run, "out": out, "work": work})
        return 0
    return run_all(out, work, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
