"""MP4 / MOV sample tables on disk: one small file per video beside the probe cache, read per
clip on demand.

A Kinetics-size MP4 dataset holds tens of millions of packets; the probe cache, which every
start loads whole, keeps only a :class:`TableRef` per video, and a clip loads its video's
:class:`~videomix_dali.source.remux.SampleTable` here (the last ``_IN_MEMORY`` tables stay in
memory).
A missing or unreadable table file is rebuilt from the video, unless the video changed since
it was probed (ValueError: the loader then names the file).
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..cache import cache_dir, file_key, open_cached, write_atomic
from .remux import SampleTable, sample_table

_FOLDER = "tables-v1"
_IN_MEMORY = 4096


@dataclass(frozen=True)
class TableRef:
    """Where the sample table of the video ``path`` lives: keyed by the probe's cache key
    (path, size, mtime), so a changed video never meets its old table."""

    path: Path
    key: str

    def file(self) -> Path:
        """The table's file in the cache folder."""
        digest = hashlib.sha1(self.key.encode("utf-8", "surrogateescape")).hexdigest()
        return cache_dir() / _FOLDER / digest[:2] / f"{digest}.npz"

    def load(self) -> SampleTable:
        """The table (from memory, its file, or demuxed again); ValueError where the video
        can no longer be wrapped."""
        return _load(self)


def save_table(path: Path, key: str, table: SampleTable) -> TableRef:
    """Write ``table`` of the video ``path`` (cache key ``key``) and return its reference
    (where the cache folder is not writable the table is demuxed again when a clip needs it)."""
    ref = TableRef(path, key)
    write_atomic(ref.file(), lambda f: np.savez(f, **table.to_arrays()))
    return ref


@lru_cache(maxsize=_IN_MEMORY)
def _load(ref: TableRef) -> SampleTable:
    try:
        with open_cached(ref.file()) as f, np.load(f, allow_pickle=False) as arrays:
            return SampleTable.from_arrays({name: arrays[name] for name in arrays.files})
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass
    try:
        current = file_key(ref.path, ref.path.stat())
    except OSError as exc:
        raise ValueError(f"{ref.path}: cannot be read ({exc.strerror or exc})") from exc
    if current != ref.key:  # its frame count and size were probed from other contents
        raise ValueError(f"{ref.path} changed on disk since it was probed")
    table = sample_table(ref.path)
    if isinstance(table, str):
        raise ValueError(f"{ref.path}: its sample table cannot be rebuilt ({table})")
    save_table(ref.path, ref.key, table)
    return table
