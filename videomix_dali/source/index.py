"""Dataset index readers: a dataset's own annotation format -> a list of (path, label) entries.

Supported formats (``fmt``):

``folder``
    A directory with one sub-folder per class (sorted by name); every file with a video
    extension inside it, recursively, is a sample.
``file_list``
    DALI's ``file_list``: lines ``path label [start end]``, whitespace-separated. ``start`` and
    ``end`` are frame numbers, ``[start, end)`` (for DALI's video reader pass
    ``file_list_format="frames"`` and ``file_list_include_end=False``).
``kinetics_csv``
    The Kinetics CSV (``label,youtube_id,time_start,time_end[,split]``); videos at
    ``root/<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>``, the layout the Kinetics
    downloaders write (also with ``_`` for `` `` in ``<label>``, or flat), or in the same layout
    under ``root/<split>/``, where ``<split>`` is the row's ``split`` or the CSV's name
    (``train.csv``: ``train/``).
``ssv2_json``
    Something-Something-V2's ``train.json`` / ``validation.json`` plus ``labels.json`` beside it;
    videos at ``root/<id>.webm``.
``ucf101``
    UCF-101's ``trainlist0N.txt`` / ``testlist0N.txt`` plus ``classInd.txt`` beside them.
``hmdb51``
    HMDB-51's ``<class>_test_split<N>.txt`` files (one file, or the folder of them).
``pairs``
    A Python list of ``(path, label)`` pairs, label an int or a class name.

Every reader is strict: malformed rows, unknown classes and bad labels raise a ``ValueError``
naming the file and the 1-based line; files named by the index but absent on disk are collected
in :attr:`VideoIndex.missing` and reported with one warning, never dropped silently.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import shlex
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "FORMATS",
    "HMDB_SPLIT_ARG_RE",
    "HMDB_SPLIT_RE",
    "HMDB_TAGS",
    "VIDEO_EXTENSIONS",
    "VideoEntry",
    "VideoIndex",
    "detect_format",
    "read_index",
    "stratified_subset",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (".webm", ".mp4", ".mkv", ".avi", ".mov", ".m4v")

_UCF_LIST_RE = re.compile(r"^(train|test)list\d*\.txt$", re.IGNORECASE)
#: HMDB-51 split files (``<class>_test_split<n>.txt``), a ``split=`` argument for them, and the
#: tag of each part in those files.
HMDB_SPLIT_RE = re.compile(r"^(?P<cls>.+)_test_split(?P<num>[123])\.txt$")
HMDB_SPLIT_ARG_RE = re.compile(r"^(?P<part>train|test|unused)(?P<num>[123])?$")
HMDB_TAGS = {"train": "1", "test": "2", "unused": "0"}
_SSV2_BRACKETS_RE = re.compile(r"\[([^\]]*)\]")
_MAX_LISTED = 5
_INT_RE = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class VideoEntry:
    """One sample of an index.

    ``start``/``end`` are optional frame numbers (``[start, end)``) from a DALI ``file_list``.
    """

    path: Path
    label: int
    start: int | None = None
    end: int | None = None


@dataclass
class VideoIndex:
    """The result of :func:`read_index`.

    ``entries`` only holds files that exist; files the index names but that are absent on disk
    are in ``missing``. ``classes[i]`` is the name of class id ``i``.
    """

    entries: list[VideoEntry]
    classes: list[str]
    missing: list[Path] = field(default_factory=list)
    source: str = ""

    def class_to_id(self) -> dict[str, int]:
        """Map class name -> class id."""
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.entries)


def stratified_subset(index: VideoIndex, fraction: float, seed: int) -> VideoIndex:
    """``index`` with ``round(fraction * n)`` (at least 1) of the ``n`` videos of each class,
    drawn per class from ``SeedSequence([seed, class id])``, in the index's order; the class
    list is kept (a dataset-fraction experiment, the paper's Table 12)."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction={fraction!r} must be in (0, 1]")
    keep: set[int] = set()
    for label in range(len(index.classes)):
        members = [k for k, e in enumerate(index.entries) if e.label == label]
        if not members:
            continue
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, label])))
        count = max(1, round(fraction * len(members)))
        keep.update(members[k] for k in rng.permutation(len(members))[:count])
    entries = [e for k, e in enumerate(index.entries) if k in keep]
    return dataclasses.replace(index, entries=entries, source=f"{index.source} ({fraction:g})")


# --------------------------------------------------------------------------------------------
# helpers


class _DirListing:
    """Lists each directory at most once, so that large indexes need no per-file ``stat``."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, bool]] = {}

    def _names(self, directory: str) -> dict[str, bool]:
        names = self._cache.get(directory)
        if names is None:
            names = {}
            try:
                with os.scandir(directory) as it:
                    for e in it:
                        try:  # a FIFO or a folder exists: the probe says why it is no video
                            names[e.name] = e.is_file() or os.path.exists(e.path)
                        except OSError:
                            names[e.name] = False
            except OSError:
                pass
            self._cache[directory] = names
        return names

    def exists(self, path: Path) -> bool:
        return self._names(os.path.dirname(path)).get(os.path.basename(path), False)

    def find_video(self, directory: Path, stem: str) -> Path | None:
        """The first ``directory/stem<ext>`` that exists, trying :data:`VIDEO_EXTENSIONS`."""
        names = self._names(str(directory))
        for ext in VIDEO_EXTENSIONS:
            if names.get(stem + ext, False):
                return directory / (stem + ext)
        return None


def _where(source: str, line: int | None, what: str = "line") -> str:
    return source if line is None else f"{source}, {what} {line}"


def _resolve(
    root: Path | None, rel: str, source: str, line: int | None, allow_outside: bool, what: str
) -> Path:
    """``root/rel`` made absolute (lexically: symlinks are kept), refusing to leave ``root``."""
    if not rel:
        raise ValueError(f"{_where(source, line, what)}: empty path")
    if root is None:
        return Path(os.path.abspath(rel))
    path = Path(os.path.abspath(os.path.join(root, rel)))
    if not allow_outside:
        root_abs = os.path.abspath(root)
        try:
            inside = os.path.commonpath([root_abs, str(path)]) == root_abs
        except ValueError:  # different drives on Windows
            inside = False
        if not inside:
            raise ValueError(
                f"{_where(source, line, what)}: path {rel!r} escapes the dataset root {root_abs} "
                "(pass allow_outside_root=True to allow it)"
            )
    return path


def _parse_label(token: str, source: str, line: int | None, what: str = "line") -> int:
    try:
        if not _INT_RE.fullmatch(token):
            raise ValueError(token)
        value = int(token)
    except ValueError:
        raise ValueError(
            f"{_where(source, line, what)}: label {token!r} is not an integer"
        ) from None
    if value < 0:
        raise ValueError(f"{_where(source, line, what)}: label {value} is negative")
    return value


def _parse_frame(token: str, name: str, source: str, line: int) -> int:
    try:
        if not _INT_RE.fullmatch(token):
            raise ValueError(token)
        value = int(token)
    except ValueError:
        raise ValueError(f"{source}, line {line}: {name} {token!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"{source}, line {line}: {name} {value} is negative")
    return value


def _check_classes(classes: Sequence[str] | None) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"classes must be a list of str, got {classes!r}")
    out = list(classes)
    if not out:
        raise ValueError("classes must not be empty")
    dup = sorted(c for c, n in Counter(out).items() if n > 1)
    if dup:
        raise ValueError(f"classes has duplicate names: {dup}")
    return out


def _class_id(
    name: str, lookup: dict[str, int], source: str, line: int | None, what: str = "line"
) -> int:
    try:
        return lookup[name]
    except KeyError:
        raise ValueError(f"{_where(source, line, what)}: unknown class {name!r}") from None


def _check_label_range(
    label: int, classes: Sequence[str] | None, source: str, line: int | None, what: str = "line"
) -> None:
    if classes is not None and label >= len(classes):
        raise ValueError(
            f"{_where(source, line, what)}: label {label} out of range for {len(classes)} classes"
        )


# A raw row: (where-line, path, label, start, end); `where` is the 1-based line (or entry).
_Row = tuple[int | None, Path, int, int | None, int | None]


def _finish(
    rows: Iterable[_Row],
    classes: list[str],
    source: str,
    exists: Callable[[Path], bool] | None,
    what: str = "line",
    hint: Callable[[Path], str] | None = None,
) -> VideoIndex:
    """Drop duplicates (warn), split off missing files (warn), refuse an empty result; the
    refusal ends with ``hint(first missing path)``, where given."""
    entries: list[VideoEntry] = []
    missing: list[Path] = []
    first_seen: dict[tuple[Path, int | None, int | None], int | None] = {}
    duplicates: list[str] = []
    for line, path, label, start, end in rows:
        key = (path, start, end)
        if key in first_seen:
            first = first_seen[key]
            at = f"{what} {line}: " if line is not None else ""
            was = f" (first at {what} {first})" if first is not None else ""
            duplicates.append(f"{at}{path}{was}")
            continue
        first_seen[key] = line
        if exists is not None and not exists(path):
            missing.append(path)
            continue
        entries.append(VideoEntry(path, label, start, end))
    if duplicates:
        more = len(duplicates) - _MAX_LISTED
        listed = "; ".join(duplicates[:_MAX_LISTED]) + (
            f"; ... and {more} more" if more > 0 else ""
        )
        warnings.warn(
            f"{source}: {len(duplicates)} duplicate entr{'y' if len(duplicates) == 1 else 'ies'} "
            f"ignored (the first one is kept): {listed}",
            stacklevel=5,  # read_index -> opener -> reader -> _finish
        )
    if not entries:
        raise ValueError(
            f"{source}: no usable entries ({len(missing)} named file(s) missing on disk"
            + (f", e.g. {missing[0]}" if missing else "")
            + ")"
            + (hint(missing[0]) if missing and hint is not None else "")
        )
    if missing:
        names = ", ".join(str(p) for p in missing[:_MAX_LISTED])
        more = len(missing) - _MAX_LISTED
        warnings.warn(
            f"{source}: {len(missing)} file(s) named by the index are missing on disk and were "
            f"left out: {names}" + (f", ... and {more} more" if more > 0 else ""),
            stacklevel=5,  # read_index -> opener -> reader -> _finish
        )
    return VideoIndex(entries=entries, classes=classes, missing=missing, source=source)


def _subfolders(directory: Path) -> list[Path]:
    """The visible sub-folders of ``directory``, sorted; none where it cannot be listed."""
    try:
        with os.scandir(directory) as it:
            names = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []
    return [directory / n for n in names]


def _locate(folder: Path, rel: str, any_ext: bool) -> Path | None:
    """``folder/rel`` if it is a file (``any_ext``: ``folder/rel<ext>`` for a video extension)."""
    for ext in VIDEO_EXTENSIONS if any_ext else ("",):
        path = folder / (rel + ext)
        if path.is_file():
            return path
    return None


def _root_hint(root: Path, rels: Sequence[str], *, any_ext: bool = False) -> str:
    """The end of a 'no usable entries' error: the ``root=`` to pass where one of ``rels`` (the
    first missing file, relative to ``root``) is under ``root``'s parent, a sub-folder or a
    sibling of it; otherwise the folder that ``root=`` must name."""
    if not rels or rels[0] == ".." or rels[0].startswith(".." + os.sep):
        return ""  # the index names a path outside root (allow_outside_root=True)
    near = [root.parent, *_subfolders(root), *_subfolders(root.parent)]
    for folder in dict.fromkeys(f for f in near if f != root):
        found = next((p for rel in rels if (p := _locate(folder, rel, any_ext))), None)
        if found is not None:
            return (
                f"; found {found}: pass root='{folder}' "
                f"(on the command line: --root {shlex.quote(str(folder))})"
            )
    ext = f"{VIDEO_EXTENSIONS[0]} (or {', '.join(VIDEO_EXTENSIONS[1:])})" if any_ext else ""
    return (
        f"; paths are resolved against {root}: pass root= (on the command line: --root) "
        f"the folder that holds {rels[0]}{ext}"
    )


def _relative_hint(root: Path) -> Callable[[Path], str]:
    """The hint of an index whose rows name paths relative to ``root``."""
    return lambda missing: _root_hint(root, [os.path.relpath(missing, root)])


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers."""
    with open(path, encoding="utf-8-sig") as f:
        return [(i, s.strip()) for i, s in enumerate(f, start=1) if s.strip()]


# --------------------------------------------------------------------------------------------
# format readers


def _read_folder(directory: Path, classes: list[str] | None) -> VideoIndex:
    source = str(directory)
    sub = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    if not sub:
        raise ValueError(f"{source}: no class sub-folders (expected <root>/<class>/<video>)")
    if classes is None:
        classes = sub
    lookup = {c: i for i, c in enumerate(classes)}
    rows: list[_Row] = []
    for name in sub:
        label = _class_id(name, lookup, source, None)
        seen_dirs: set[str] = set()
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(directory / name, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen_dirs:  # symlink loop
                dirnames[:] = []
                continue
            seen_dirs.add(real)
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for fn in filenames:
                if not fn.startswith(".") and os.path.splitext(fn)[1].lower() in VIDEO_EXTENSIONS:
                    found.append(Path(os.path.abspath(os.path.join(dirpath, fn))))
        rows.extend((None, p, label, None, None) for p in sorted(found))
    if not rows:
        raise ValueError(
            f"{source}: no video in its class sub-folders (files ending in "
            f"{', '.join(VIDEO_EXTENSIONS)})"
        )
    return _finish(rows, classes, source, None)


def _read_file_list(
    path: Path, root: Path, classes: list[str] | None, allow_outside: bool
) -> VideoIndex:
    source = str(path)
    rows: list[_Row] = []
    for line, text in _read_lines(path):
        tok = text.split()
        if len(tok) not in (2, 4):
            raise ValueError(
                f"{source}, line {line}: expected 'path label [start end]', got {text!r}"
            )
        label = _parse_label(tok[1], source, line)
        _check_label_range(label, classes, source, line)
        start = end = None
        if len(tok) == 4:
            start = _parse_frame(tok[2], "start frame", source, line)
            end = _parse_frame(tok[3], "end frame", source, line)
            if end <= start:
                raise ValueError(
                    f"{source}, line {line}: end frame {end} must be greater than start {start}"
                )
        rows.append(
            (line, _resolve(root, tok[0], source, line, allow_outside, "line"), label, start, end)
        )
    if classes is None:
        k = 1 + max((r[2] for r in rows), default=-1)
        classes = [str(i) for i in range(k)]
    return _finish(rows, classes, source, _DirListing().exists, hint=_relative_hint(root))


def _parse_seconds(token: str, name: str, source: str, line: int) -> int:
    try:
        value = float(token)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(
            f"{source}, line {line}: {name} {token!r} is not a non-negative whole number"
        )
    return int(value)


def _read_kinetics(
    path: Path, root: Path, split: str | None, classes: list[str] | None, allow_outside: bool
) -> VideoIndex:
    source, csv_name = str(path), path.stem
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        need = {"youtube_id", "time_start", "time_end"}
        lacking = sorted(need - set(header))
        if lacking:
            raise ValueError(
                f"{source}, line 1: header lacks column(s) {lacking}; expected "
                "'label,youtube_id,time_start,time_end[,split]'"
            )
        if "label" not in header:
            raise ValueError(f"{source}: no 'label' column, labels are unavailable (test split?)")
        if split is not None and "split" not in header:
            raise ValueError(f"{source}: split={split!r} given but the CSV has no 'split' column")
        raw = []
        for row in reader:
            line = reader.line_num
            if None in row or any(row.get(h) is None for h in header):
                raise ValueError(
                    f"{source}, line {line}: expected {len(header)} columns ({','.join(header)})"
                )
            label = row["label"].strip()
            yid = row["youtube_id"].strip()
            if not label:
                raise ValueError(f"{source}, line {line}: empty label, labels are unavailable")
            if not yid:
                raise ValueError(f"{source}, line {line}: empty youtube_id")
            t0 = _parse_seconds(row["time_start"].strip(), "time_start", source, line)
            t1 = _parse_seconds(row["time_end"].strip(), "time_end", source, line)
            raw.append((line, label, yid, t0, t1, (row.get("split") or "").strip()))
    if classes is None:
        classes = sorted({r[1] for r in raw})
    lookup = {c: i for i, c in enumerate(classes)}
    listing = _DirListing()
    rows: list[_Row] = []
    present: set[Path] = set()
    for line, label, yid, t0, t1, row_split in raw:
        if split is not None and row_split != split:
            continue
        cid = _class_id(label, lookup, source, line)
        stem = f"{yid}_{t0:06d}_{t1:06d}"
        path = _resolve(root, os.path.join(label, stem), source, line, allow_outside, "line")
        for folder in _kinetics_folders(root, label, [row_split, csv_name]):
            found = listing.find_video(folder, stem)
            if found is not None:
                path = found
                present.add(found)
                break
        rows.append((line, path, cid, None, None))
    if split is not None and not rows:
        raise ValueError(f"{source}: no rows with split == {split!r}")

    def hint(missing: Path) -> str:
        label = os.path.relpath(missing.parent, root)
        rels = [
            os.path.join(label, missing.name),
            os.path.join(label.replace(" ", "_"), missing.name),
        ]
        return _root_hint(root, [*dict.fromkeys(rels), missing.name], any_ext=True)

    # a missing file keeps the stem path root/<label>/<stem> (no extension is known)
    return _finish(rows, classes, source, present.__contains__, hint=hint)


def _kinetics_folders(root: Path, label: str, splits: list[str]) -> list[Path]:
    """Where a Kinetics video may be, in order: the layouts of the Kinetics downloaders
    (``<label>/``, ``<label with '_' for ' '>/`` or flat) in ``root``, then in its sub-folders
    named by ``splits`` (the row's split, the CSV's name)."""
    names = [s for s in splits if s not in ("", ".", "..") and "/" not in s and os.sep not in s]
    under = (label, label.replace(" ", "_"), "")
    bases = [root, *(root / s for s in names)]
    return list(dict.fromkeys(Path(os.path.abspath(b / u)) for b in bases for u in under))


def _read_ssv2(
    path: Path, root: Path, classes: list[str] | None, allow_outside: bool
) -> VideoIndex:
    source = str(path)
    with open(path, encoding="utf-8-sig") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}, line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a JSON list of {{'id', 'template', ...}} objects")
    if classes is None:
        labels_path = path.parent / "labels.json"
        if not labels_path.is_file():
            raise ValueError(
                f"{source}: {labels_path} not found (Something-Something-V2 class names); "
                "pass classes= instead"
            )
        with open(labels_path, encoding="utf-8-sig") as f:
            mapping = json.load(f)
        if not isinstance(mapping, dict):
            raise ValueError(f"{labels_path}: expected a JSON object {{class name: id}}")
        by_id: dict[int, str] = {}
        for name, sid in mapping.items():
            cid = _parse_label(str(sid), str(labels_path), None)
            if cid in by_id:
                raise ValueError(f"{labels_path}: id {cid} used by {by_id[cid]!r} and {name!r}")
            by_id[cid] = name
        if sorted(by_id) != list(range(len(by_id))):
            raise ValueError(f"{labels_path}: class ids are not 0..{len(by_id) - 1}")
        classes = [by_id[i] for i in range(len(by_id))]
    lookup = {c: i for i, c in enumerate(classes)}
    listing = _DirListing()
    rows: list[_Row] = []
    present: set[Path] = set()
    for n, item in enumerate(data, start=1):
        if not isinstance(item, dict) or "id" not in item:
            raise ValueError(f"{source}, entry {n}: expected an object with an 'id'")
        if "template" not in item:
            raise ValueError(
                f"{source}, entry {n}: no 'template', labels are unavailable "
                "(the Something-Something-V2 test split has none)"
            )
        name = _SSV2_BRACKETS_RE.sub(r"\1", str(item["template"]))
        cid = _class_id(name, lookup, source, n, "entry")
        vid = str(item["id"])
        path = _resolve(root, vid + ".webm", source, n, allow_outside, "entry")
        found = listing.find_video(path.parent, vid)
        if found is not None:
            path = found
            present.add(found)
        rows.append((n, path, cid, None, None))

    def hint(missing: Path) -> str:
        return _root_hint(root, [os.path.relpath(missing, root)[: -len(".webm")]], any_ext=True)

    return _finish(rows, classes, source, present.__contains__, what="entry", hint=hint)


def _read_ucf101(
    path: Path, root: Path, classes: list[str] | None, allow_outside: bool
) -> VideoIndex:
    source = str(path)
    if classes is None:
        ind = path.parent / "classInd.txt"
        if not ind.is_file():
            raise ValueError(f"{source}: {ind} not found (UCF-101 class names); pass classes=")
        by_id: dict[int, str] = {}
        for line, text in _read_lines(ind):
            tok = text.split()
            if len(tok) != 2:
                raise ValueError(f"{ind}, line {line}: expected 'id ClassName', got {text!r}")
            cid = _parse_label(tok[0], str(ind), line)
            if cid < 1 or cid in by_id:
                raise ValueError(f"{ind}, line {line}: bad or repeated class id {cid}")
            by_id[cid] = tok[1]
        if sorted(by_id) != list(range(1, len(by_id) + 1)):
            raise ValueError(f"{ind}: class ids are not 1..{len(by_id)}")
        classes = [by_id[i] for i in range(1, len(by_id) + 1)]
    lookup = {c: i for i, c in enumerate(classes)}
    lookup_lower = {c.lower(): i for i, c in enumerate(classes)}
    rows: list[_Row] = []
    for line, text in _read_lines(path):
        tok = text.split()
        if len(tok) not in (1, 2):
            raise ValueError(
                f"{source}, line {line}: expected 'Class/video.avi [label]', got {text!r}"
            )
        rel = tok[0].replace("\\", "/")
        folder = rel.split("/")[0] if "/" in rel else None
        from_folder = None
        if folder is not None:
            from_folder = lookup.get(folder, lookup_lower.get(folder.lower()))
        if len(tok) == 2:
            one_based = _parse_label(tok[1], source, line)
            if one_based < 1 or one_based > len(classes):
                raise ValueError(
                    f"{source}, line {line}: label {one_based} out of range 1..{len(classes)}"
                )
            label = one_based - 1
            if from_folder is not None and from_folder != label:
                raise ValueError(
                    f"{source}, line {line}: label {one_based} ({classes[label]}) disagrees "
                    f"with the folder {folder!r}"
                )
        else:
            if folder is None:
                raise ValueError(f"{source}, line {line}: no label and no class folder in {rel!r}")
            if from_folder is None:
                raise ValueError(f"{source}, line {line}: unknown class {folder!r}")
            label = from_folder
        rows.append(
            (line, _resolve(root, rel, source, line, allow_outside, "line"), label, None, None)
        )
    return _finish(rows, classes, source, _DirListing().exists, hint=_relative_hint(root))


def _read_hmdb51(
    source_path: Path,
    root: Path,
    split: str | None,
    classes: list[str] | None,
    allow_outside: bool,
) -> VideoIndex:
    part = num = None
    if split is not None:
        m = HMDB_SPLIT_ARG_RE.match(split)
        if m is None:
            raise ValueError(
                f"split={split!r} is not valid for hmdb51: use 'train', 'test' or 'unused', "
                "optionally with the split number ('train1', 'test2', ...)"
            )
        part, num = m.group("part"), m.group("num")
    if source_path.is_dir():
        want = num or "1"
        files = sorted(
            source_path / n
            for n in os.listdir(source_path)
            if (m := HMDB_SPLIT_RE.match(n)) and m.group("num") == want
        )
        if not files:
            raise ValueError(f"{source_path}: no HMDB-51 split files *_test_split{want}.txt")
    else:
        m = HMDB_SPLIT_RE.match(source_path.name)
        if m is None:
            raise ValueError(
                f"{source_path}: not an HMDB-51 split file name (<class>_test_split<N>.txt)"
            )
        if num is not None and m.group("num") != num:
            raise ValueError(f"split={split!r} asks for split {num} but {source_path} is another")
        files = [source_path]
    names = [HMDB_SPLIT_RE.match(f.name).group("cls") for f in files]  # type: ignore[union-attr]
    if classes is None:
        classes = sorted(set(names))
    lookup = {c: i for i, c in enumerate(classes)}
    tag = HMDB_TAGS[part] if part is not None else None
    rows: list[_Row] = []
    for f, name in zip(files, names, strict=True):
        fsrc = str(f)
        cid = _class_id(name, lookup, fsrc, None)
        for line, text in _read_lines(f):
            tok = text.split()
            if len(tok) != 2 or tok[1] not in ("0", "1", "2"):
                raise ValueError(f"{fsrc}, line {line}: expected 'video.avi 0|1|2', got {text!r}")
            if tag is not None and tok[1] != tag:
                continue
            path = _resolve(root, os.path.join(name, tok[0]), fsrc, line, allow_outside, "line")
            rows.append((line, path, cid, None, None))
    return _finish(rows, classes, str(source_path), _DirListing().exists, hint=_relative_hint(root))


def _read_pairs(
    pairs: Sequence, root: Path | None, classes: list[str] | None, allow_outside: bool
) -> VideoIndex:
    source = "pairs"
    items = list(pairs)
    kinds = set()
    for n, item in enumerate(items, start=1):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"pairs, entry {n}: expected a (path, label) pair, got {item!r}")
        lab = item[1]
        if isinstance(lab, bool) or not isinstance(lab, (int, str)):
            raise ValueError(f"pairs, entry {n}: label must be an int or a class name, got {lab!r}")
        kinds.add(type(lab))
    if classes is None:
        if kinds == {str}:
            classes = sorted({item[1] for item in items})
        elif kinds == {int}:
            k = 1 + max((item[1] for item in items), default=-1)
            classes = [str(i) for i in range(max(k, 0))]
        elif kinds:
            raise ValueError("pairs mix int labels and class names; pass classes= to map them")
    lookup = {c: i for i, c in enumerate(classes or [])}
    rows: list[_Row] = []
    for n, (p, lab) in enumerate(items, start=1):
        if isinstance(lab, str):
            label = _class_id(lab, lookup, source, n, "entry")
        else:
            if lab < 0:
                raise ValueError(f"pairs, entry {n}: label {lab} is negative")
            _check_label_range(lab, classes, source, n, "entry")
            label = lab
        rows.append(
            (n, _resolve(root, os.fspath(p), source, n, allow_outside, "entry"), label, None, None)
        )
    return _finish(rows, classes or [], source, _DirListing().exists, what="entry")


# --------------------------------------------------------------------------------------------
# the registry: format name -> reader(path, root, split, classes, allow_outside_root)

_Root = str | os.PathLike | None
_Reader = Callable[[Path | Sequence, _Root, str | None, list[str] | None, bool], VideoIndex]


def _open_pairs(
    pairs: Sequence, root: _Root, split: str | None, classes: list[str] | None, allow_outside: bool
) -> VideoIndex:
    if split is not None:
        raise ValueError("split is not used with a list of pairs")
    base = Path(os.path.abspath(root)) if root is not None else None
    return _read_pairs(pairs, base, classes, allow_outside or base is None)


def _open_folder(
    path: Path, root: _Root, split: str | None, classes: list[str] | None, allow_outside: bool
) -> VideoIndex:
    if not path.is_dir():
        raise ValueError(f"fmt='folder' needs a directory, got the file {path}")
    if root is not None:
        raise ValueError("root is not used with fmt='folder' (the source is the root)")
    if split is not None:
        path = path / split
        if not path.is_dir():
            raise ValueError(f"split={split!r}: {path} is not a directory")
    return _read_folder(path, classes)


def _open_hmdb51(
    path: Path, root: _Root, split: str | None, classes: list[str] | None, allow_outside: bool
) -> VideoIndex:
    if root is not None:
        base = Path(os.path.abspath(root))
    else:
        base = path if path.is_dir() else path.parent
    return _read_hmdb51(path, base, split, classes, allow_outside)


def _index_file_root(path: Path, kind: str, root: _Root) -> Path:
    """The root of an index file's relative paths; ValueError if ``path`` is a directory."""
    if path.is_dir():
        raise ValueError(f"fmt={kind!r} needs an index file, got the directory {path}")
    return Path(os.path.abspath(root)) if root is not None else path.parent


def _open_kinetics(
    path: Path, root: _Root, split: str | None, classes: list[str] | None, allow_outside: bool
) -> VideoIndex:
    base = _index_file_root(path, "kinetics_csv", root)
    return _read_kinetics(path, base, split, classes, allow_outside)


def _one_split_file(kind: str, read: Callable[..., VideoIndex]) -> _Reader:
    """The reader of format ``kind``, whose index file is one split (``split`` is unused)."""

    def open_(
        path: Path, root: _Root, split: str | None, classes: list[str] | None, allow_outside: bool
    ) -> VideoIndex:
        base = _index_file_root(path, kind, root)
        if split is not None:
            raise ValueError(f"split is not used with fmt={kind!r} (the file is the split)")
        return read(path, base, classes, allow_outside)

    return open_


_READERS: dict[str, _Reader] = {
    "folder": _open_folder,
    "file_list": _one_split_file("file_list", _read_file_list),
    "kinetics_csv": _open_kinetics,
    "ssv2_json": _one_split_file("ssv2_json", _read_ssv2),
    "ucf101": _one_split_file("ucf101", _read_ucf101),
    "hmdb51": _open_hmdb51,
    "pairs": _open_pairs,  # a list of (path, label), not a path
}
#: every ``fmt`` :func:`read_index` accepts
FORMATS: tuple[str, ...] = tuple(_READERS)


# --------------------------------------------------------------------------------------------
# entry point


def detect_format(path: Path) -> str:
    """The index format of ``path``, as ``read_index`` detects it (see its ``fmt``)."""
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "kinetics_csv"
    if suffix == ".json":
        return "ssv2_json"
    if suffix == ".txt":
        if _UCF_LIST_RE.match(path.name):
            return "ucf101"
        if HMDB_SPLIT_RE.match(path.name):
            return "hmdb51"
        return "file_list"
    raise ValueError(
        f"cannot detect the index format of {path}; pass fmt= (one of {', '.join(FORMATS)})"
    )


def read_index(
    source: str | os.PathLike | Sequence[tuple[str | os.PathLike, int | str]],
    *,
    fmt: str | None = None,
    root: str | os.PathLike | None = None,
    split: str | None = None,
    classes: Sequence[str] | None = None,
    allow_outside_root: bool = False,
) -> VideoIndex:
    """Read a dataset index into a :class:`VideoIndex`.

    Args:
        source: a directory (folder-per-class), an index file, a list of ``(path, label)``
            pairs (label: int class id, or class name), or a :class:`VideoIndex` (returned
            as it is).
        fmt: force the format, one of :data:`FORMATS`; by default it is detected: directory ->
            ``folder``, ``.csv`` -> ``kinetics_csv``, ``.json`` -> ``ssv2_json``, ``.txt`` ->
            ``ucf101`` (``trainlist*``/``testlist*``), ``hmdb51`` (``*_split[123].txt``) or
            ``file_list``; a list or tuple -> ``pairs``.
        root: folder that relative paths are resolved against (default: the index file's folder;
            the current directory for ``pairs``, where no root check is made unless given).
            Not used by ``folder``. Where no file of the index is found, the error names the
            ``root=`` under which the first one is (a folder beside or inside ``root``), or the
            relative path that ``root=`` must hold.
        split: ``folder``: a sub-folder of ``source`` to read (e.g. ``"train"``);
            ``kinetics_csv``: keep rows whose ``split`` column equals it; ``hmdb51``: ``"train"``,
            ``"test"`` or ``"unused"``, optionally with the split number (``"test2"``).
        classes: class names in id order, to fix the id mapping (e.g. across splits); names not
            in it are an error.
        allow_outside_root: accept index paths that lead outside ``root`` (``../``, absolute).

    Returns:
        The index: existing files in ``entries``, absent ones in ``missing`` (also warned about).

    Raises:
        ValueError: unknown ``fmt``; malformed rows, unknown class names and bad labels (naming
            the file and 1-based line); paths escaping ``root``; an index without usable entries.
    """
    if isinstance(source, VideoIndex):  # read already (e.g. a stratified_subset)
        return source
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is not a known index format; use one of {FORMATS}")
    cls = _check_classes(classes)
    if isinstance(source, (list, tuple)):
        if fmt not in (None, "pairs"):
            raise ValueError(f"fmt={fmt!r} needs a file or directory source, got a {type(source)}")
        return _READERS["pairs"](source, root, split, cls, allow_outside_root)
    if fmt == "pairs":
        raise ValueError(f"fmt='pairs' needs a list of (path, label) pairs, got {source!r}")
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"source must be a path or a list of (path, label) pairs, got {source!r}")
    path = Path(os.path.abspath(source))
    if not path.exists():
        raise ValueError(f"source {path} does not exist")
    return _READERS[fmt or detect_format(path)](path, root, split, cls, allow_outside_root)
