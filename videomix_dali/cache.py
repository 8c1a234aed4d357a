"""The package's cache folder and how files are written into it.

``$XDG_CACHE_HOME/videomix_dali`` (default ``~/.cache/videomix_dali``) holds the probe cache,
the MP4 sample tables, the decode-check cache and the compiled CPU plugin.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def cache_dir() -> Path:
    """The package's cache folder (not created here)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "videomix_dali"


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> bool:
    """Write ``path`` through a temporary file, so that readers never see half a file; False
    where it cannot (a read-only cache folder only costs a re-probe next time)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
        tmp.replace(path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False
