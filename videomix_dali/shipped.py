"""The data folders the package ships: ``kernels/`` (CUDA C and the CPU plugin's C++) and
``pipelines/`` (the recipes).

A wheel installs them inside the package (``videomix_dali/kernels``, ``.../pipelines``, by
``package-dir`` in pyproject.toml); a source checkout has them at the repository's top level,
beside ``videomix_dali/``, which is where they are found when the checkout is imported through
``PYTHONPATH`` or an editable install without being built.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
NAMES = ("kernels", "pipelines")


def shipped_dir(name: str) -> Path:
    """The folder ``name`` (one of :data:`NAMES`): inside the installed package, else at the
    top level of the source checkout this package was imported from."""
    if name not in NAMES:
        raise ValueError(f"name={name!r} must be one of {', '.join(NAMES)}")
    for folder in (_PACKAGE / name, _PACKAGE.parent / name):
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"videomix_dali's {name}/ folder is neither in {_PACKAGE} (a wheel) nor beside it "
        f"(a source checkout at {_PACKAGE.parent}): reinstall the package"
    )
