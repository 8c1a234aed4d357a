"""``make gpu-check``: everything that needs a GPU, proven in one prepared device call.

Steps, each in its own process with its own time limit (a crash or a hang fails that step,
not the check):

- ``environment``: versions, the GPU, one CUDA major across torch, DALI and CuPy;
- ``nvdec-limits``: what this device's NVDEC reports (cuvidGetDecoderCaps) per codec;
- ``pytest-gpu``: every ``gpu``-marked test;
- ``cpu-gpu-equality``: one mixed batch from the same seed through the whole loader on the
  CPU and on the GPU (same VP9 files, 128x128 so NVDEC takes them);
- ``bench-gpu``: the GPU bench rows (ours with and without mixing, the PyAV baseline, DALI's
  reader) on a small Kinetics-shaped H.264 corpus and on the demo's H.264 copies, with
  ``--model slowonly50`` for ``gpu_fed``;
- ``train-gpu``: a 2-epoch training run and its evaluation on the H.264 copies.

Writes ``gpu-check.json`` and ``gpu-check.log`` (plus the bench JSONs) under ``$OUT`` when
set, else ``./gpu-check/``; exits 0 only if every step passed. ``--dry-run`` walks the same
steps without CUDA (CPU twins, tiny settings) and is part of the test suite.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT = "GPU-CHECK-RESULT "  # a step's last stdout line: this prefix + JSON details
# step name -> time limit in seconds on the GPU (the whole check stays under 8 minutes)
STEPS = {
    "environment": 30,
    "nvdec-limits": 30,
    "pytest-gpu": 150,
    "cpu-gpu-equality": 60,
    "bench-gpu": 150,
    "train-gpu": 60,
}
MEAN, STD = (114.75,) * 3, (57.375,) * 3  # the demo recipe's, in 0..255 units


# --------------------------------------------------------------------------- steps


def step_environment(ctx: dict[str, Any]) -> dict[str, Any]:
    """Versions and the device; fails if a piece is missing or CUDA majors differ."""
    import av
    import nvidia.dali as dali
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "dali": dali.__version__,
        "av": av.__version__,
    }
    if ctx["dry_run"]:
        return info
    import cupy

    info["cupy"] = cupy.__version__
    info["device"] = torch.cuda.get_device_name(0)
    info["driver"] = cupy.cuda.runtime.driverGetVersion()
    majors = {
        "torch": int(torch.version.cuda.split(".")[0]),
        "cupy": cupy.cuda.runtime.runtimeGetVersion() // 1000,
        "dali": _dali_cuda_major(),
    }
    info["cuda_majors"] = majors
    if len(set(majors.values())) != 1:
        raise RuntimeError(f"CUDA majors differ: {majors}")
    return info


def _dali_cuda_major() -> int:
    from importlib.metadata import distributions

    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("nvidia-dali-cuda"):
            return int(name.removeprefix("nvidia-dali-cuda")) // 10
    raise RuntimeError("no nvidia-dali-cudaXY0 distribution is installed")


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


def step_nvdec_limits(ctx: dict[str, Any]) -> dict[str, Any]:
    """NVDEC's own limits per codec and bit depth (4:2:0), as the driver reports them."""
    if ctx["dry_run"]:
        return {"skipped": "dry run: no driver to ask"}
    import torch

    torch.zeros(1, device="cuda")  # makes the primary context current on this thread
    lib = ctypes.CDLL("libnvcuvid.so.1")
    limits = {}
    for name, code in _CODECS.items():
        for depth in (8, 10):
            caps = _DecodeCaps(codec=code, chroma=1, bit_depth_minus8=depth - 8)
            status = lib.cuvidGetDecoderCaps(ctypes.byref(caps))
            key = f"{name}-{depth}bit"
            if status != 0:
                limits[key] = f"error {status}"
            elif not caps.supported:
                limits[key] = "not supported"
            else:
                limits[key] = (
                    f"{caps.min_width}x{caps.min_height} .. {caps.max_width}x{caps.max_height}"
                )
    return limits


def step_pytest_gpu(ctx: dict[str, Any]) -> dict[str, Any]:
    """Every ``gpu``-marked test (in a dry run they are collected and skip cleanly)."""
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd + [str(ROOT / "tests")], cwd=ROOT, capture_output=True, text=True)
    print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n")
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or (not ctx["dry_run"] and "skipped" in summary):
        raise RuntimeError(f"pytest -m gpu: {summary or proc.returncode}")
    return {"summary": summary}


def step_cpu_gpu_equality(ctx: dict[str, Any]) -> dict[str, Any]:
    """One spatially mixed batch, same seed, whole loader: CPU vs GPU (CPU vs CPU dry)."""
    import numpy as np

    from videomix_dali import VideoLoader
    from videomix_dali.mix import VideoMix

    def first_batch(device: str) -> tuple[np.ndarray, np.ndarray]:
        loader = VideoLoader(
            ctx["data"] / "train",
            recipe="demo",
            device=device,
            batch_size=4,
            crop_size=112,
            seed=3,
            mix=VideoMix("spatial", seed=3),
            progress=False,
        )
        video, target = next(iter(loader))
        return video.cpu().numpy(), target.cpu().numpy()

    cpu_video, cpu_target = first_batch("cpu")
    video, target = first_batch("cpu" if ctx["dry_run"] else "gpu")
    levels = np.abs(video.astype(np.float64) - cpu_video) * STD[0]  # in 0..255 units
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


def step_bench_gpu(ctx: dict[str, Any]) -> dict[str, Any]:
    """The GPU bench rows (PyAV baseline, DALI's reader, ours with and without mixing, each
    feeding a SlowOnly-50) on a small Kinetics-shaped H.264 corpus and on the demo's H.264."""
    from videomix_dali.bench.data import BenchData, make_bench_data
    from videomix_dali.bench.run import run_bench

    dry = ctx["dry_run"]
    spec = (  # dry: tiny clips; GPU: 340x256, 300 frames, a keyframe every 150
        BenchData(
            classes=2, videos_per_class=2, frames=120, long_frames=120, size=(192, 256), gop=60
        )
        if dry
        else BenchData(classes=4, videos_per_class=4)
    )
    corpus = make_bench_data(ctx["work"] / "bench", replace(spec, h264=True), progress=False)
    runs = {
        "kinetics": (corpus / ("train" if dry else "h264/train"), "kinetics", 6.0),
        "demo": (ctx["data"] / ("train" if dry else "h264/train"), "demo", 3.0),
    }
    out: dict[str, Any] = {}
    for name, (data, recipe, duration) in runs.items():
        json_path = ctx["out"] / f"bench-gpu-{name}.json"
        report = run_bench(
            data,
            recipe=recipe,
            device="cpu" if dry else "gpu",
            batch_size=2 if dry else 8,
            crop=112 if dry else None,
            loaders="pyav,dali-reader,videomix-dali",
            duration=1.0 if dry else duration,
            warmup=0.5 if dry else 2.0,
            model=None if dry else "slowonly50",
            model_factory=_app_models(),  # loaded in the dry run too, used on the GPU only
            json_path=json_path,
            verbose=False,
        )
        out[name] = {"rows": report["results"], "summary": report["summary"]}
    return out


def _app_models() -> Any:
    """The training app's model factory (train/ is importable from the repository root)."""
    from videomix_dali.bench.cli import APP_MODEL_FACTORY, load_model_factory

    sys.path.insert(0, str(ROOT))
    factory = load_model_factory(APP_MODEL_FACTORY)
    if factory is None:
        raise RuntimeError(f"{APP_MODEL_FACTORY} is not importable from {ROOT}")
    return factory


def step_train_gpu(ctx: dict[str, Any]) -> dict[str, Any]:
    """A 2-epoch spatial-VideoMix training run with evaluation (1 epoch on the CPU, dry)."""
    dry = ctx["data"] if ctx["dry_run"] else ctx["data"] / "h264"
    run_dir = ctx["work"] / "train-run"
    cmd = [
        sys.executable, "-m", "train", "--recipe", "demo",
        "--data", str(dry / "train"), "--val", str(dry / "test_debiased"),
        "--mix", "spatial", "--epochs", "1" if ctx["dry_run"] else "2",
        "--batch-size", "4", "--device", "cpu" if ctx["dry_run"] else "gpu",
        "--out", str(run_dir), "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
    if proc.returncode != 0:
        raise RuntimeError(f"python -m train exited with {proc.returncode}")
    return {"run": str(run_dir), "last_lines": proc.stdout.strip().splitlines()[-3:]}


STEP_FUNCTIONS = {
    "environment": step_environment,
    "nvdec-limits": step_nvdec_limits,
    "pytest-gpu": step_pytest_gpu,
    "cpu-gpu-equality": step_cpu_gpu_equality,
    "bench-gpu": step_bench_gpu,
    "train-gpu": step_train_gpu,
}


# --------------------------------------------------------------------------- driver


def _make_data(work: Path, dry_run: bool) -> Path:
    """A small demo set, 128x128 (NVDEC's VP9 minimum), with H.264 copies."""
    from videomix_dali.demo import make_demo_dataset

    return make_demo_dataset(
        work / "demo",
        videos_per_class=2 if dry_run else 6,
        test_per_class=1 if dry_run else 2,
        num_frames=24,
        size=(128, 128),
        h264=True,
        progress=False,
    )


def run_step(name: str, ctx: dict[str, Any]) -> None:
    """Child process: run one step, print its details as the last line."""
    details = STEP_FUNCTIONS[name](ctx)
    print(RESULT + json.dumps(details, default=str), flush=True)


def run_all(out: Path, work: Path, dry_run: bool) -> int:
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    log_path = out / "gpu-check.log"
    results: list[dict[str, Any]] = []
    started = time.time()
    with log_path.open("w") as log:
        data = _make_data(work, dry_run)
        for name, limit in STEPS.items():
            t0 = time.time()
            cmd = [sys.executable, __file__, "--step", name, "--out", str(out)]
            cmd += ["--work", str(work), "--data", str(data)] + (["--dry-run"] if dry_run else [])
            try:
                proc = subprocess.run(
                    cmd,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=limit * (3 if dry_run else 1),
                )
                output, code = proc.stdout + proc.stderr, proc.returncode
            except subprocess.TimeoutExpired as exc:
                output = f"{exc.stdout or ''}{exc.stderr or ''}\ntimed out after {exc.timeout} s"
                code = None
            lines = [ln for ln in output.splitlines() if ln.startswith(RESULT)]
            ok = code == 0 and bool(lines)
            entry = {"step": name, "ok": ok, "seconds": round(time.time() - t0, 1)}
            if lines:
                entry["details"] = json.loads(lines[-1][len(RESULT) :])
            else:
                entry["error"] = output.strip().splitlines()[-1] if output.strip() else str(code)
            results.append(entry)
            log.write(f"===== {name} (exit {code}, {entry['seconds']} s)\n{output}\n")
            log.flush()
            shown = json.dumps(entry.get("details", entry.get("error")), default=str)
            print(
                f"{'PASS' if ok else 'FAIL'}  {name:18s} {entry['seconds']:6.1f} s  {shown[:300]}"
            )
    report = {
        "dry_run": dry_run,
        "machine": platform.node(),
        "seconds": round(time.time() - started, 1),
        "ok": all(r["ok"] for r in results),
        "steps": results,
    }
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    verdict = "all passed" if report["ok"] else "FAILED"
    print(f"gpu-check: {verdict} in {report['seconds']} s; {out / 'gpu-check.json'}")
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="walk every step without CUDA")
    p.add_argument("--out", help="results folder (default: $OUT, else ./gpu-check)")
    p.add_argument("--work", help="scratch folder for data and runs (default: OUT/../work)")
    p.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out or os.environ.get("OUT") or "gpu-check").resolve()
    work = Path(args.work or out.parent / f"{out.name}-work").resolve()
    if args.step:
        ctx = {"dry_run": args.dry_run, "out": out, "work": work, "data": Path(args.data)}
        run_step(args.step, ctx)
        return 0
    return run_all(out, work, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
