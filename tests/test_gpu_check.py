"""`make gpu-check DRY=1`: the device script walks every step on the CPU, started the way the
lent machine starts it (a copy of the checkout on PYTHONPATH, nothing installed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gpu_check import STEPS, limit_mismatches, run_in_group

ROOT = Path(__file__).resolve().parents[1]


def test_make_target_never_sets_up_or_installs():
    cmd = ["make", "-n", "--no-print-directory", "gpu-check", "DRY=1", "PYTHON=/opt/py3"]
    dry = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert dry.split() == [
        f'PYTHONPATH="{ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"',
        "PYTHONUNBUFFERED=1",
        "\\",
        "/opt/py3",
        "tests/gpu_check.py",
        "--dry-run",
    ]


def test_step_limits_fit_six_minutes_of_device_time():
    assert sum(STEPS.values()) <= 360 and list(STEPS)[0] == "data"


def test_a_step_past_its_limit_is_killed_with_its_children():
    start = time.monotonic()
    output, code = run_in_group(["bash", "-c", "echo started; sleep 60 & sleep 60"], 1.0)
    assert code is None and time.monotonic() - start < 10
    assert output.startswith("started\n") and "process group killed" in output
    for _ in range(50):  # killed; an orphan is gone once init has reaped it
        left = subprocess.run(["pgrep", "-f", "^sleep 60$"], capture_output=True, text=True)
        if left.stdout == "":
            break
        time.sleep(0.1)
    assert left.stdout == ""


def test_probe_limits_that_admit_what_nvdec_refuses_are_named():
    table = {"h264": (48, 16, 4096, 4096), "vp9": (128, 128, 8192, 8192), "av1": (128, 128, 1, 1)}
    caps = {"h264": (48, 16, 4096, 4096), "vp9": (144, 128, 8192, 8192), "av1": None}
    assert limit_mismatches(table, caps) == [
        "vp9: probe 128x128..8192x8192, NVDEC (144, 128, 8192, 8192)",
        "av1: the probe accepts it, this NVDEC does not decode it",
    ]


def _checkout_copy(dest: Path) -> Path:
    """The files a device call carries: tracked and untracked-not-ignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


def test_dry_run_from_an_uninstalled_copy_walks_every_step(tmp_path):
    copy = _checkout_copy(tmp_path / "repo")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(copy)}
    proc = subprocess.run(
        [sys.executable, "tests/gpu_check.py", "--dry-run", "--out", str(out)],
        cwd=copy, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["dry_run"] is True and report["ok"] is True
    assert [s["step"] for s in report["steps"]] == list(STEPS)
    by_step = {s["step"]: s["details"] for s in report["steps"]}
    assert by_step["environment"]["videomix_dali"] == str(copy / "videomix_dali")
    assert by_step["cpu-gpu-equality"]["targets_equal"] is True
    assert by_step["cpu-gpu-equality"]["max_abs_diff_levels"] == 0.0  # CPU vs CPU: identical
    loaders = {r["loader"] for r in by_step["bench-gpu"]["rows"]}
    assert loaders == {"pyav", "dali-reader", "videomix-dali"}
    scaling = by_step["nvdec-scaling"]["rows"]
    assert {(r["size"], r["pipelines"]) for r in scaling} >= {("340x256", 1), ("340x256", 2)}
    assert "skipped" in by_step["pytest-gpu"]["summary"]  # collected, skipped without CUDA
    train = by_step["train-gpu"]
    assert len(train["losses"]) == 1 and train["predictions"] > 0
    log = (out / "gpu-check.log").read_text()
    assert all(f"===== {name} (exit 0" in log for name in STEPS)
    assert sorted(p.name for p in out.iterdir()) == [
        "bench-gpu.json",
        "gpu-check.json",
        "gpu-check.log",
        "pytest-gpu.xml",
    ]
