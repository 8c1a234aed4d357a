"""The CPU graph's crop/flip/resize (+ paste, normalise): a DALI plugin (kernels/crop_resize.cc).

The plugin is compiled on first use with the machine's C++ compiler (``$CXX``, else ``g++``)
against the installed DALI's headers and CUDA's runtime headers (the ``nvidia-cuda-runtime``
wheel, ``$CUDA_HOME`` or ``/usr/local/cuda``), cached beside the probe cache under a name
keyed by the source, DALI's version and the flags (and used from there only where nobody else
can have written it: videomix_dali.cache), and loaded once per process. It samples
exactly as ``fn.resize(..., antialias=False)`` (the GPU graph's resize) and rounds within one
grey level of it, faster on the CPU (docs/benchmarks.md); it can also paste a mix's boxes and
normalise in the same pass. Where it cannot be built, the CPU graph uses ``fn.resize(...,
antialias=False)`` (and DALI's operators for the rest) and says why, once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import nvidia.dali as dali
import nvidia.dali.plugin_manager as plugin_manager
import nvidia.dali.sysconfig as sysconfig
from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode

from ..cache import cache_dir, open_cached, write_atomic
from ..shipped import shipped_dir
from . import ops

log = logging.getLogger(__name__)

_SOURCE = "crop_resize.cc"
_FLAGS = ("-std=c++20", "-O3", "-ffp-contract=off", "-fPIC", "-shared", "-w")


def crop_resize(
    video: DataNode,
    roi_start: DataNode,
    roi_end: DataNode,
    size: Sequence[int],
    device: str,
    plugin: bool,
    pastes: Sequence[DataNode] = (),
    normalize: tuple[Sequence[float], Sequence[float], types.DALIDataType] | None = None,
) -> DataNode:
    """(F, H, W, C) uint8 clips -> (F, size[0], size[1], C) uint8: the window from
    ``roi_start`` to ``roi_end`` ((2,) float32, (y, x) in input pixels; x reversed = flip),
    resized bilinearly without antialiasing: the plugin where ``plugin`` (loaded, see
    :func:`load_plugin`), else DALI's ``fn.resize`` on ``device``.

    ``pastes``: a paste mode's inputs from :func:`~videomix_dali.graph.ops.dali_inputs`
    (partners, anchors, shapes), to mix in the same pass: each box filled from the partner's
    window, as resizing and then pasting would (the plan's ``pastes_while_resizing``).
    ``normalize``: (mean, std, dtype) to return (C, F, size[0], size[1]) ``dtype`` values
    normalised as ``crop_mirror_normalize`` does (in the same pass with the plugin).
    """
    if plugin:
        mean, std, dtype = normalize or ((), (), types.UINT8)
        return fn.videomix_crop_resize(
            video, roi_start, roi_end, *pastes,
            size=list(size), dtype=dtype, mean=list(mean), std=list(std),
        )  # fmt: skip
    if pastes:
        raise ValueError("pasting while resizing needs the CPU plugin")
    video = fn.resize(
        video,
        device=device,
        roi_start=roi_start,
        roi_end=roi_end,
        roi_relative=False,
        size=list(size),
        antialias=False,
    )
    return video if normalize is None else ops.normalize(video, device, *normalize)


@cache
def load_plugin() -> str | None:
    """Build (once per machine) and load (once per process: DALI refuses an operator
    registered twice) the plugin: None when loaded, else why not (also logged, once)."""
    try:
        library = _build()
        plugin_manager.load_library(str(library))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        reason = f"the CPU crop/resize plugin is unavailable ({exc}); using fn.resize instead"
        log.warning(reason)
        return reason
    return None


def _cuda_include() -> Path:
    """A folder holding ``cuda_runtime.h``, which DALI's headers include."""
    spec = importlib.util.find_spec("nvidia.cu13")  # the nvidia-cuda-runtime wheel
    wheel = (spec.submodule_search_locations or []) if spec else []
    candidates = [Path(p) / "include" for p in wheel]
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env):
            candidates.append(Path(os.environ[env]) / "include")
    candidates.append(Path("/usr/local/cuda/include"))
    for folder in candidates:
        if (folder / "cuda_runtime.h").is_file():
            return folder
    raise RuntimeError(
        "no cuda_runtime.h found (pip install nvidia-cuda-runtime, or set CUDA_HOME)"
    )


def _build() -> Path:
    """The compiled plugin, from the cache (where it passes videomix_dali.cache's checks) or
    compiled now and written there (atomically, 0600)."""
    compiler = os.environ.get("CXX") or "g++"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (set CXX)")
    source = shipped_dir("kernels") / _SOURCE
    flags = [
        *_FLAGS,
        *sysconfig.get_compile_flags(),
        f"-I{_cuda_include()}",
        *sysconfig.get_link_flags(),
    ]
    key = hashlib.sha256(
        "\0".join([source.read_text(), dali.__version__, compiler, *flags]).encode()
    ).hexdigest()[:16]
    library = cache_dir() / f"crop_resize-{key}.so"
    if _trusted(library):
        return library
    log.info("compiling the CPU crop/resize plugin (%s, once per machine)", library.name)
    with tempfile.TemporaryDirectory(prefix="videomix_dali-") as build:
        out = Path(build) / library.name
        done = subprocess.run(
            [compiler, str(source), *flags, "-o", str(out)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip()[-2000:]}")
        if not write_atomic(library, lambda f: f.write(out.read_bytes())):
            raise RuntimeError(f"cannot write the compiled plugin to {library}")
    return library


def _trusted(library: Path) -> bool:
    """Whether ``library`` is there and nobody else can have written it (videomix_dali.cache);
    one that fails is compiled again and replaced."""
    try:
        open_cached(library).close()
    except OSError:
        return False
    return True
