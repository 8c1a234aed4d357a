"""What the figures were measured on: CPU, cores, memory, GPU, load and library versions."""

from __future__ import annotations

import importlib
import os
import platform
from typing import Any

import numpy as np

from .procstats import PAGE_SIZE


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

    from ... import __version__

    return {
        "cpu": _cpu_model(),
        "cores": cpu_cores(),
        "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE / 2**30, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
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
