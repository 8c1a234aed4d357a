"""Probing many files, once: the cache of probe results and the ranks' split of the work.

The cache, ``$XDG_CACHE_HOME/videomix_dali/probe-v7.npz``, is keyed by path, size and mtime and
holds plain NumPy arrays (loaded without pickle), which stay fast to load at dataset scale
(docs/benchmarks.md, "Start-up"). Under ``torch.distributed`` the ranks split the probing of the
files not cached yet and share their results through per-rank files beside the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..cache import cache_dir, open_cached, write_atomic
from ..runtime import rank_and_world_size
from .cuts import CutIndex
from .probe import ProbeError, VideoInfo, cache_key, probe_video
from .table_store import TableRef

log = logging.getLogger(__name__)


#: The cache's layout (:func:`_encode`); bump it with any change to the arrays.
_CACHE_VERSION = 7
#: ``rows`` columns: num_frames, height, width, bit_depth, the number of cut points (-1: no
#: CutIndex, -2: a TableRef, the MP4 sample table kept beside the cache), the cuts' end, then
#: the cuts' three header byte ranges (EBML header, Info, Tracks).
_ROW = 12
#: ``codes`` columns are indices into ``strings`` (-1: None): these fields, then an error reason.
_STRINGS = ("codec", "pix_fmt", "chroma", "uncut_reason")
_TABLE = -2  # the cut-point count column's mark of a TableRef
_LAYOUT = {  # array name: (dtype, number of dimensions)
    "version": (np.int64, 1),
    "keys": (np.uint8, 1),
    "strings": (np.uint8, 1),
    "rows": (np.int64, 2),
    "codes": (np.int32, 2),
    "starts": (np.int64, 1),
    "frames": (np.int64, 1),
}


def cache_file() -> Path:
    """Where the probe cache lives (in :func:`~videomix_dali.cache.cache_dir`)."""
    return cache_dir() / f"probe-v{_CACHE_VERSION}.npz"


def _blob(strings: Iterable[str]) -> np.ndarray:
    """``strings``, each ended by NUL, as UTF-8 bytes (paths that are not UTF-8 included)."""
    text = "".join(f"{s}\0" for s in strings)
    return np.frombuffer(text.encode("utf-8", "surrogateescape"), np.uint8)


def _unblob(blob: np.ndarray) -> list[str]:
    return blob.tobytes().decode("utf-8", "surrogateescape").split("\0")[:-1]


def _encode(entries: Mapping[str, VideoInfo | str]) -> dict[str, np.ndarray]:
    """Column arrays of ``entries`` (cache key -> probe result or error reason)."""
    strings: dict[str, int] = {}

    def code(s: str | None) -> int:
        return -1 if s is None else strings.setdefault(s, len(strings))

    rows, codes, starts, frames = [], [], [], []
    for entry in entries.values():
        if isinstance(entry, str):
            rows.append([0] * _ROW)
            codes.append([-1] * len(_STRINGS) + [code(entry)])
            continue
        cuts = entry.cuts
        row = [entry.num_frames, entry.height, entry.width, entry.bit_depth, -1, 0] + [0] * 6
        if isinstance(cuts, TableRef):
            row[4] = _TABLE
        elif cuts is not None:
            row[4:] = [len(cuts.starts), cuts.end, *(x for r in cuts.header for x in r)]
            starts += cuts.starts
            frames += cuts.frames
        rows.append(row)
        codes.append([code(getattr(entry, name)) for name in _STRINGS] + [-1])
    return {
        "version": np.array([_CACHE_VERSION], np.int64),
        "keys": _blob(entries),
        "strings": _blob(strings),
        "rows": np.array(rows, np.int64).reshape(-1, _ROW),
        "codes": np.array(codes, np.int32).reshape(-1, len(_STRINGS) + 1),
        "starts": np.array(starts, np.int64),
        "frames": np.array(frames, np.int64),
    }


def _decode(arrays: Mapping[str, object]) -> dict[str, VideoInfo | str]:
    """The entries of :func:`_encode`'s arrays; ValueError saying what does not fit the layout."""
    for name, (dtype, ndim) in _LAYOUT.items():
        a = arrays.get(name)
        if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != ndim:
            raise ValueError(f"no {ndim}-d {np.dtype(dtype)} array {name!r}")
    if arrays["version"].tolist() != [_CACHE_VERSION]:
        raise ValueError(f"layout version {arrays['version'].tolist()}, not [{_CACHE_VERSION}]")
    keys, strings = _unblob(arrays["keys"]), _unblob(arrays["strings"])
    rows, codes, starts, frames = (arrays[k] for k in ("rows", "codes", "starts", "frames"))
    if rows.shape != (len(keys), _ROW) or codes.shape != (len(keys), len(_STRINGS) + 1):
        raise ValueError(f"{len(keys)} keys but rows {rows.shape} and codes {codes.shape}")
    if codes.size and not -1 <= codes.min() <= codes.max() < len(strings):
        raise ValueError(f"string codes outside [-1, {len(strings)})")
    info = codes[:, -1] < 0
    if (codes[info, :3] < 0).any() or (rows[info, 4] < _TABLE).any():
        raise ValueError("an entry without codec, pixel format or chroma, or a bad cut count")
    if np.maximum(rows[info, 4], 0).sum() != len(starts) or len(frames) != len(starts):
        raise ValueError("cut point counts do not match the cut point arrays")
    text = np.array([*strings, None], object)  # code -1 -> None
    codec, pix_fmt, chroma, uncut, error = (text[codes[:, j]].tolist() for j in range(5))
    ends = np.cumsum(np.maximum(rows[:, 4], 0) * info).tolist()
    starts, frames = starts.tolist(), frames.tolist()
    out: dict[str, VideoInfo | str] = {}
    for i, (key, row) in enumerate(zip(keys, rows.tolist())):
        if error[i] is not None:
            out[key] = error[i]
            continue
        n, h = row[4], row[6:]
        cuts = None
        if n == _TABLE:
            cuts = TableRef(Path(key.rsplit("|", 2)[0]), key)
        elif n >= 0:
            a, b = ends[i] - n, ends[i]
            header = ((h[0], h[1]), (h[2], h[3]), (h[4], h[5]))
            cuts = CutIndex(header, tuple(starts[a:b]), tuple(frames[a:b]), row[5])
        out[key] = VideoInfo(
            row[0], row[1], row[2], codec[i], pix_fmt[i], row[3], chroma[i], cuts, uncut[i]
        )
    return out


def _read_table(path: Path) -> dict[str, VideoInfo | str]:
    """The entries of a cache (or shard) file; {} where there is none, and where it is not
    the current layout (logged, naming the file; the next write replaces it)."""
    try:
        with open_cached(path) as f:
            if not zipfile.is_zipfile(f):
                raise ValueError("not an .npz archive")
            with np.load(f, allow_pickle=False) as loaded:
                return _decode({name: loaded[name] for name in loaded.files})
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        log.warning(
            "ignoring the probe cache %s, which it cannot use (%s); it is rebuilt", path, exc
        )
        return {}


def _write_table(path: Path, entries: Mapping[str, VideoInfo | str]) -> bool:
    """Write ``entries`` as a cache (or shard) file; False where it cannot."""
    return write_atomic(path, lambda f: np.savez(f, **_encode(entries)))


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def probe_videos(
    paths: Sequence[Path],
    *,
    progress: bool = True,
    num_workers: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    timeout: float = 1800.0,
) -> list[VideoInfo | ProbeError]:
    """Probe many files, reusing a cache keyed by path, size and mtime.

    Returns one ``VideoInfo`` or ``ProbeError`` per path, in order. With ``world_size`` > 1
    every rank calls this with the same ``paths``: rank ``r`` probes files ``r::world_size`` of
    those not cached, and the ranks exchange their results through files beside the cache,
    meeting at ``torch.distributed.barrier()`` where a process group of that size is
    initialised, else waiting up to ``timeout`` seconds for the other ranks' files (the files
    of a rank that never comes are probed here, with a warning).
    """
    cache_path = cache_file()
    cache = _read_table(cache_path)
    keys: list[str] = []
    results: list[VideoInfo | ProbeError | None] = []
    for path in paths:
        key, result = "", None
        try:
            key = cache_key(path)
        except ProbeError as exc:
            result = exc
        except OSError:
            result = ProbeError(path, "cannot stat file")
        cached = cache.get(key)  # the cache holds no errors: they are probed again
        keys.append(key)
        results.append(result or (cached if isinstance(cached, VideoInfo) else None))
    todo = [i for i, result in enumerate(results) if result is None]
    in_group = world_size > 1 and rank_and_world_size() == (rank, world_size)

    def probe(part: Sequence[int], desc: str) -> dict[str, VideoInfo | str]:
        found = _probe_all([paths[i] for i in part], desc, progress, num_workers)
        return dict(zip([keys[i] for i in part], found))

    found: dict[str, VideoInfo | str] = {}
    if world_size > 1 and (todo or in_group):  # a group's ranks all meet, cached or not
        found = _probe_shared(
            [keys[i] for i in todo],
            lambda part: probe([todo[i] for i in part], f"probing videos (rank {rank})"),
            rank,
            world_size,
            in_group,
            timeout,
        )
    rest = [i for i in todo if keys[i] not in found]
    if rest:
        if world_size > 1:
            log.warning("%d files were not probed by another rank: probing them here", len(rest))
        found.update(probe(rest, "probing videos"))
    for i in todo:
        result = found[keys[i]]
        results[i] = ProbeError(paths[i], result) if isinstance(result, str) else result
    if todo and (rank == 0 or rest):
        cache.update((k, v) for k, v in found.items() if isinstance(v, VideoInfo))
        _write_table(cache_path, cache)
    return results  # type: ignore[return-value]


def _probe_all(
    paths: Sequence[Path], desc: str, progress: bool, num_workers: int | None
) -> list[VideoInfo | str]:
    """``probe_video`` of each path, or why it failed (whatever the exception: one file never
    stops a dataset), in threads, with a progress bar."""

    def run(path: Path) -> VideoInfo | str:
        try:
            return probe_video(path)
        except ProbeError as exc:
            return exc.reason
        except OSError as exc:
            return str(exc.strerror or exc)
        except Exception as exc:  # noqa: BLE001 - one file never stops a dataset: its reason
            return f"cannot be probed ({type(exc).__name__}: {exc})"

    workers = num_workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers, thread_name_prefix=desc) as pool:
        bar = tqdm(
            pool.map(run, paths),
            total=len(paths),
            desc=desc,
            unit="file",
            disable=not progress or len(paths) < 64,
        )
        return list(bar)


def _probe_shared(
    keys: list[str],
    probe: Callable[[range], dict[str, VideoInfo | str]],
    rank: int,
    world_size: int,
    in_group: bool,
    timeout: float,
) -> dict[str, VideoInfo | str]:
    """Probe this rank's part of the uncached files (``keys``), write it to a shard file and read
    the other ranks' shards: the results that came, by key.

    The shards are named by the files (so every rank of one start finds the same names). In a
    process group the ranks meet at barriers and each removes its own shard once all have read
    them; without one, each waits for the others' shards and marks when it has read them, and
    the last to do so removes them all.
    """
    files = "\n".join([str(world_size), *keys]).encode("utf-8", "surrogateescape")
    stem = f"probe-v{_CACHE_VERSION}.{hashlib.sha1(files).hexdigest()[:16]}"
    folder = cache_file().parent

    def shard(r: int, kind: str = "npz") -> Path:
        return folder / f"{stem}.rank{r}of{world_size}.{kind}"

    _remove([shard(rank, "done")])  # left by a start that stopped half-way
    found = probe(range(rank, len(keys), world_size))
    shared = _write_table(shard(rank), found)
    others = [shard(r) for r in range(world_size) if r != rank]
    if in_group:
        torch.distributed.barrier()
    elif shared:
        _wait_for(others, timeout)
    for path in others:
        found.update(_read_table(path))
    if in_group:
        torch.distributed.barrier()
        _remove([shard(rank)])
    elif shared:
        with contextlib.suppress(OSError):
            shard(rank, "done").touch()
        done = [shard(r, "done") for r in range(world_size)]
        if all(p.exists() for p in done):
            _remove(done + [shard(r) for r in range(world_size)])
    return found


def _wait_for(paths: list[Path], timeout: float) -> None:
    """Wait until every one of ``paths`` exists, up to ``timeout`` seconds (then log which not)."""
    deadline = time.monotonic() + timeout
    while paths := [p for p in paths if not p.exists()]:
        if time.monotonic() > deadline:
            log.warning(
                "waited %.0f s for the probe results of other ranks, which did not come: %s",
                timeout,
                ", ".join(map(str, paths)),
            )
            return
        time.sleep(0.1)
