"""`make gpu-check DRY=1`: the device script walks every step on the CPU, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gpu_check import STEPS

ROOT = Path(__file__).resolve().parents[1]


def test_make_target_runs_the_script_in_dry_run_mode():
    cmd = ["make", "-n", "--no-print-directory", "gpu-check", "DRY=1", f"PYTHON={sys.executable}"]
    dry = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert dry.strip() == f"{sys.executable} tests/gpu_check.py --dry-run"


def test_dry_run_walks_every_step_and_writes_json_and_log(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "tests/gpu_check.py", "--dry-run", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["dry_run"] is True and report["ok"] is True
    assert [s["step"] for s in report["steps"]] == list(STEPS)
    by_step = {s["step"]: s["details"] for s in report["steps"]}
    assert by_step["cpu-gpu-equality"]["targets_equal"] is True
    assert by_step["cpu-gpu-equality"]["max_abs_diff_levels"] == 0.0  # CPU vs CPU: identical
    for name in ("kinetics", "demo"):
        rows = by_step["bench-gpu"][name]["rows"]
        assert {r["loader"] for r in rows} == {"pyav", "dali-reader", "videomix-dali"}
    assert "skipped" in by_step["pytest-gpu"]["summary"]  # collected, skipped without CUDA
    log = (out / "gpu-check.log").read_text()
    assert all(f"===== {name} (exit 0" in log for name in STEPS)
    assert sorted(p.name for p in out.iterdir()) == [
        "bench-gpu-demo.json",
        "bench-gpu-kinetics.json",
        "gpu-check.json",
        "gpu-check.log",
    ]
