"""``videomix-dali prepare``: re-encode a dataset into the layout the loader decodes fastest.

Every video of a dataset (folder-per-class or any index
:func:`~videomix_dali.source.index.read_index` reads) is decoded and re-encoded, video only
(audio is dropped):

- scaled so that its short side is ``short_side`` pixels (aspect kept, even sizes);
- as VP9 in ``.webm`` (DALI's CPU backend) or 8-bit 4:2:0 H.264 in ``.mkv`` (NVDEC), or both
  (two trees, ``DST/vp9`` and ``DST/h264``);
- with a keyframe at least every ``gop`` frames, in a Matroska container whose clusters begin
  at keyframes, so the loader decodes a clip from the keyframe at or before it
  (:mod:`videomix_dali.source.cuts`); every output is probed and refused unless it can be cut;
- keeping every frame (same frame count, so index sub-ranges keep their frame numbers).

``codec="copy"`` re-encodes nothing: the video stream's packets are remuxed as they are into
Matroska (``.mkv``, clusters at keyframes; milliseconds per file), keeping size, codec and
keyframes; ``short_side`` and ``gop`` do not apply. MP4 needs no preparation (its clips are cut
from the sample table, :mod:`videomix_dali.source.remux`); copy is for those who want files cut at
clusters on disk.

Files are encoded in a process pool, each to a temporary ``.<name>.part`` beside its output;
the main process records a finished file in ``DST/prepare-manifest.jsonl`` and then renames it
into place, so a rerun skips what is done and no file under a final name is ever partial.
Inputs that fail (unreadable, empty, truncated, no video, a frame count that changed, a full
disk) are skipped and listed in ``DST/prepare-failures.jsonl``: JSON lines, one object per
failure, ``{"source": path, "codec": "vp9" | "h264", "reason": text}``, written at the end
through a temporary file (an earlier list survives a failed write; no list when nothing
failed). Each tree gets an index of the source's format that names the prepared files with the
source's labels.

What ``prepare`` never does:

- write into its source: an output folder that is, holds or lies inside the source, its root
  or a folder of its videos (symlinks resolved) is refused before any work
  (:class:`PathOverlapError`);
- overwrite or delete a file it did not write (one the manifest does not list with its size):
  such a file where an output goes, or one that a folder-per-class output would read as a
  video or a class, is refused before any work (``ValueError`` naming it);
- keep stale outputs: after a complete run the output holds exactly the source's current
  videos; files an earlier run wrote for videos since moved, deleted or failed are removed
  (one changed since it was written is kept, with a warning naming it);
- go on after SIGINT: pending files are cancelled, running workers stopped, finished files
  recorded, temporary files removed, and :class:`PrepareInterrupted` is raised (the failures
  list and the indexes stay as the last complete run left them). Workers also end on their
  own when the main process dies.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import multiprocessing
import os
import queue
import signal
import threading
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path, PurePosixPath

import av
from tqdm import tqdm

from ..source.index import (
    HMDB_SPLIT_ARG_RE,
    HMDB_SPLIT_RE,
    HMDB_TAGS,
    VIDEO_EXTENSIONS,
    VideoEntry,
    VideoIndex,
    detect_format,
    read_index,
)
from ..source.probe import ProbeError, probe_video

__all__ = [
    "CODECS",
    "DEFAULT_GOP",
    "DEFAULT_SHORT_SIDE",
    "FAILURES",
    "MANIFEST",
    "PathOverlapError",
    "PrepareInterrupted",
    "PrepareResult",
    "prepare",
]

#: ``codec=`` choices: one tree, or ``both`` (``DST/vp9`` and ``DST/h264``)
CODECS: tuple[str, ...] = ("vp9", "h264", "both", "copy")
#: short side of the output in pixels
DEFAULT_SHORT_SIDE = 256
#: frames between keyframes; chosen by measurement (README, "Preparing a dataset")
DEFAULT_GOP = 64
#: in DST: one JSON object per file prepare wrote (``out`` relative to DST, ``size`` in bytes)
MANIFEST = "prepare-manifest.jsonl"
#: in DST: one JSON object per failure: ``source``, ``codec``, ``reason``
FAILURES = "prepare-failures.jsonl"
_PART = ".part"  # temporary output: ".<name>.part" beside the output
_POLL_S = 0.2  # how often the main process looks for SIGINT while the pool runs
# Matroska's DASH mode starts a cluster at every video keyframe and only there; by default the
# muxer does so only past 4 KiB of cluster, so small GOPs would lose their cut points.
_MUXER = {"dash": "1"}

Failure = tuple[Path, str, str]  # (source, codec, reason)
Rows = list[tuple[VideoEntry, PurePosixPath]]  # index entries and their output paths


class PathOverlapError(ValueError):
    """The output folder is, holds or lies inside the source (the CLI exits with status 2)."""


class PrepareInterrupted(KeyboardInterrupt):
    """SIGINT stopped :func:`prepare`; what finished is in the manifest (CLI: status 130)."""


@dataclass(frozen=True)
class _Encoding:
    """How one output codec is written."""

    encoder: str  # FFmpeg encoder
    suffix: str  # output file extension
    container: str  # FFmpeg muxer
    options: dict[str, str]


# VP9 without alt-ref frames: one packet per shown frame, the plainest stream for DALI.
_ENCODINGS: dict[str, _Encoding] = {
    "vp9": _Encoding(
        "libvpx-vp9",
        ".webm",
        "webm",
        {
            "crf": "32",
            "b:v": "0",
            "deadline": "good",
            "cpu-used": "5",
            "lag-in-frames": "0",
            "auto-alt-ref": "0",
        },
    ),
    "h264": _Encoding("libx264", ".mkv", "matroska", {"crf": "20", "preset": "fast"}),
    "copy": _Encoding("", ".mkv", "matroska", {}),  # the packets as they are
}


@dataclass(frozen=True)
class _Job:
    """One file to encode: ``source`` -> ``out`` (absolute paths)."""

    source: Path
    out: Path
    codec: str
    short_side: int
    gop: int


@dataclass
class PrepareResult:
    """What :func:`prepare` did.

    ``indexes``: per output codec, what to pass to ``read_index`` / ``VideoLoader`` (with
    ``fmt`` = the source's format, which ``read_index`` detects except for an HMDB-51 folder);
    ``encoded``: files encoded by this run; ``reused``: files a previous run had finished;
    ``failures``: (source path, codec, reason); ``removed``: stale files of earlier runs
    deleted (their videos were moved, deleted or failed this time).
    """

    fmt: str
    indexes: dict[str, Path]
    encoded: int = 0
    reused: int = 0
    failures: list[Failure] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    @property
    def prepared(self) -> int:
        """Output files that are ready (this run's and earlier runs')."""
        return self.encoded + self.reused


def output_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) in pixels with the short side ``short_side``, aspect kept, both even."""
    scale = short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def _temp(path: Path) -> Path:
    """The temporary name ``path`` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}{_PART}")


def _rel(path: Path, dst: Path) -> str:
    """``path`` as the manifest names it."""
    return path.relative_to(dst).as_posix()


def _is_temp(name: str) -> bool:
    """``name`` is that of a temporary file of prepare's."""
    return name.startswith(".") and name.endswith(_PART)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` through its temporary file and a rename: an old ``path`` survives errors.

    Raises ``OSError`` naming ``path``.
    """
    tmp = _temp(path)
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# one file, in a worker


def _remux(job: _Job, tmp: Path) -> int:
    """Copy ``job.source``'s video packets into the Matroska file ``tmp``; return how many."""
    with (
        av.open(str(job.source), metadata_errors="replace") as src,
        av.open(str(tmp), "w", format="matroska", options=_MUXER) as dst,
    ):
        stream_in = src.streams.video[0]
        stream = dst.add_stream_from_template(stream_in)
        count = 0
        for packet in src.demux(stream_in):
            if packet.size:  # not the demuxer's end-of-stream packet
                packet.stream = stream
                dst.mux(packet)
                count += 1
    return count


def _transcode(job: _Job, tmp: Path, height: int, width: int) -> int:
    """Decode ``job.source`` and write it re-encoded to ``tmp``; return the frames written."""
    if job.codec == "copy":
        return _remux(job, tmp)
    enc = _ENCODINGS[job.codec]
    with (
        av.open(str(job.source)) as src,
        av.open(str(tmp), "w", format=enc.container, options=_MUXER) as dst,
    ):
        stream_in = src.streams.video[0]
        stream_in.codec_context.thread_count = 1
        rate = stream_in.average_rate or stream_in.guessed_rate or Fraction(30)
        stream = dst.add_stream(enc.encoder, rate=rate, options=enc.options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = job.gop
        stream.codec_context.thread_count = 1
        count = 0
        for frame in src.decode(stream_in):
            out = frame.reformat(width, height, "yuv420p", interpolation="AREA")
            out.pts, out.time_base = count, 1 / Fraction(rate)
            dst.mux(stream.encode(out))
            count += 1
        dst.mux(stream.encode(None))
    return count


def _encode(job: _Job) -> None:
    """Re-encode ``job`` to its temporary file and check it; the main process renames it.

    Raises ``ProbeError`` (the input or the output is unusable), ``av.error.FFmpegError`` or
    ``OSError``, having removed the temporary file.
    """
    info = probe_video(job.source)
    height, width = output_size(info.height, info.width, job.short_side)
    tmp = _temp(job.out)
    job.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        count = _transcode(job, tmp, height, width)
        made = probe_video(tmp)
        if made.num_frames != info.num_frames or count != info.num_frames:
            raise ProbeError(
                job.source,
                f"frame count changed: the input has {info.num_frames} frames, "
                f"{count} written, the output has {made.num_frames}",
            )
        if made.cuts is None:
            raise ProbeError(job.source, f"output cannot be cut at keyframes: {made.uncut_reason}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _run(job: _Job) -> tuple[_Job, str | None]:
    """(job, None) when its temporary file is ready, else (job, why it failed); never raises."""
    try:
        _encode(job)
    except ProbeError as exc:
        return job, exc.reason
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return job, f"{type(exc).__name__}: {exc}"
    return job, None


def _start_worker(lifeline: Connection) -> None:
    """Pool initializer: leave SIGINT to the main process; exit when the main process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_on_eof, args=(lifeline,), daemon=True).start()


def _exit_on_eof(lifeline: Connection) -> None:
    """Return never: exit the worker once the main process closed its end of ``lifeline``.

    Only the main process holds the write end, and the kernel closes it when that process
    dies however it dies (a forkserver worker's parent is the forkserver, so
    ``PR_SET_PDEATHSIG`` or ``os.getppid()`` would watch the wrong process).
    """
    lifeline.poll(None)
    os._exit(1)


@contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool, shut down after the block; its workers are stopped at once (mid-file)
    when the block raises, and end by themselves if this process dies."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])  # workers fork from a process that imported us
    lifeline, hold = ctx.Pipe(duplex=False)
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_start_worker, initargs=(lifeline,)
    )
    try:
        yield pool
    except BaseException:
        hold.close()  # every worker exits now
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        hold.close()
        lifeline.close()


@contextmanager
def _sigint_as_flag() -> Iterator[threading.Event]:
    """While the block runs, SIGINT sets a flag instead of raising ``KeyboardInterrupt``.

    So the main loop stops between two files, never halfway through recording one. A handler
    the caller installed (or SIG_IGN) is left alone, and so is a thread other than the main one.
    """
    flag = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield flag
        return
    signal.signal(signal.SIGINT, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# --------------------------------------------------------------------------------------------
# the manifest: what prepare wrote, for resuming and for knowing its own files


def _manifest_record(job: _Job, dst: Path, made: Path) -> dict:
    """What the manifest keeps of ``job`` whose output is the file ``made`` (the output or its
    temporary file; sizes in bytes); OSError if a file is gone."""
    src = job.source.stat()
    return {
        "out": _rel(job.out, dst),
        "source": str(job.source),
        "source_size": src.st_size,
        "source_mtime_ns": src.st_mtime_ns,
        "size": made.stat().st_size,
        "settings": [job.short_side, job.gop],
    }


def _is_record(record: object) -> bool:
    """A manifest line names a file inside DST by a plain relative path, with its size."""
    if not isinstance(record, dict) or not isinstance(record.get("size"), int):
        return False
    out = record.get("out")
    return isinstance(out, str) and out not in ("", ".") and not _escapes(PurePosixPath(out))


def _escapes(path: PurePosixPath) -> bool:
    """``path`` would lead out of the folder it is relative to."""
    return path.is_absolute() or ".." in path.parts


def _read_manifest(dst: Path) -> dict[str, dict]:
    """Output path (relative to ``dst``) -> its last record; unusable lines are ignored."""
    records: dict[str, dict] = {}
    try:
        with open(dst / MANIFEST, encoding="utf-8") as f:
            for line in f:
                with suppress(ValueError):
                    record = json.loads(line)
                    if _is_record(record):
                        records[record["out"]] = record
    except FileNotFoundError:
        pass
    return records


def _append(manifest: io.RawIOBase, record: dict) -> None:
    """Append ``record`` as one line; on failure (a full disk) leave no part of it behind."""
    data = (json.dumps(record) + "\n").encode("utf-8")
    start = manifest.seek(0, os.SEEK_END)
    try:
        if manifest.write(data) != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a short write: disk full
    except OSError:
        manifest.truncate(start)
        raise


def _owned(path: Path, dst: Path, manifest: dict[str, dict]) -> bool:
    """``path`` is a file prepare wrote: the manifest lists it with its current size."""
    record = manifest.get(_rel(path, dst))
    return (
        record is not None
        and not path.is_symlink()
        and path.is_file()
        and path.stat().st_size == record["size"]
    )


def _is_done(job: _Job, dst: Path, manifest: dict[str, dict]) -> bool:
    """The manifest records ``job`` as it is now: same source, settings and output size."""
    try:
        return manifest.get(_rel(job.out, dst)) == _manifest_record(job, dst, job.out)
    except OSError:  # the source or the output is gone
        return False


# --------------------------------------------------------------------------------------------
# index writers: one per format of videomix_dali.source.index, each the inverse of its reader


def _source_root(fmt: str, path: Path, root: str | os.PathLike | None, split: str | None) -> Path:
    """The folder the source index's video paths are relative to (as ``read_index`` uses it)."""
    if fmt == "folder":
        return path / split if split else path
    if root is not None:
        return Path(os.path.abspath(root))
    return path if path.is_dir() else path.parent


def _file_list_text(rows: Rows) -> str:
    lines = []
    for entry, rel in rows:
        frames = "" if entry.start is None else f" {entry.start} {entry.end}"
        lines.append(f"{rel} {entry.label}{frames}\n")
    return "".join(lines)


def _kinetics_text(rows: Rows, classes: list[str], split: str | None) -> str:
    """Kinetics CSV; youtube_id and times come from the file name ``<id>_<start>_<end>``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["label", "youtube_id", "time_start", "time_end"]
    writer.writerow(header + (["split"] if split else []))
    for entry, rel in rows:
        yid, t0, t1 = rel.stem.rsplit("_", 2)
        row = [classes[entry.label], yid, int(t0), int(t1)]
        writer.writerow(row + ([split] if split else []))
    return out.getvalue()


def _ssv2_texts(out: Path, rows: Rows, classes: list[str]) -> dict[Path, str]:
    """SSv2 JSON (``id``, ``template`` = class name) and ``labels.json`` beside it."""
    items = [{"id": rel.stem, "template": classes[entry.label]} for entry, rel in rows]
    labels = {name: str(i) for i, name in enumerate(classes)}
    return {
        out: json.dumps(items, indent=1) + "\n",
        out.parent / "labels.json": json.dumps(labels, indent=1) + "\n",
    }


def _ucf101_texts(out: Path, rows: Rows, classes: list[str]) -> dict[Path, str]:
    """UCF-101 list (``Class/video label``, 1-based labels) and ``classInd.txt`` beside it."""
    ind = "".join(f"{i} {name}\n" for i, name in enumerate(classes, start=1))
    return {
        out: "".join(f"{rel} {entry.label + 1}\n" for entry, rel in rows),
        out.parent / "classInd.txt": ind,
    }


def _hmdb_tags(
    src: Path, root: str | os.PathLike | None, split: str | None
) -> tuple[str, dict[Path, str]]:
    """(split number, video path -> tag 0/1/2) of an HMDB-51 source: one read per part."""
    asked = HMDB_SPLIT_ARG_RE.match(split) if split else None  # read_index checked it
    if src.is_dir():
        number = (asked and asked.group("num")) or "1"
    else:
        number = HMDB_SPLIT_RE.match(src.name).group("num")  # type: ignore[union-attr]
    parts = [asked.group("part")] if asked else list(HMDB_TAGS)
    tags: dict[Path, str] = {}
    for part in parts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing files: the first read warned already
            try:
                index = read_index(src, fmt="hmdb51", root=root, split=part + number)
            except ValueError:  # no video of this part
                continue
        tags.update((e.path, HMDB_TAGS[part]) for e in index.entries)
    return number, tags


def _hmdb51_texts(
    tree: Path, rows: Rows, classes: list[str], number: str, tags: dict[Path, str]
) -> dict[Path, str]:
    """One ``<class>_test_split<N>.txt`` per class with videos (``video tag`` lines)."""
    lines: dict[str, list[str]] = {name: [] for name in classes}
    for entry, rel in rows:
        lines[classes[entry.label]].append(f"{rel.name} {tags[entry.path]}\n")
    return {
        tree / f"{name}_test_split{number}.txt": "".join(text)
        for name, text in lines.items()
        if text
    }


@dataclass(frozen=True)
class _Source:
    """The dataset being prepared, as the index writers need it."""

    fmt: str
    index: VideoIndex
    path: Path  # the folder or the index file
    split: str | None
    hmdb: tuple[str, dict[Path, str]] | None  # (split number, tags) of an HMDB-51 source


def _index_texts(source: _Source, tree: Path, rows: Rows) -> dict[Path, str]:
    """The index files of one output tree (path -> text); none for folder-per-class."""
    fmt, classes, out = source.fmt, source.index.classes, tree / source.path.name
    if fmt == "file_list":
        return {out: _file_list_text(rows)}
    if fmt == "kinetics_csv":
        return {out: _kinetics_text(rows, classes, source.split)}
    if fmt == "ssv2_json":
        return _ssv2_texts(out, rows, classes)
    if fmt == "ucf101":
        return _ucf101_texts(out, rows, classes)
    if fmt == "hmdb51":
        return _hmdb51_texts(tree, rows, classes, *source.hmdb)  # type: ignore[misc]
    return {}


def _index_target(source: _Source, tree: Path) -> Path:
    """What to pass to ``read_index`` for one output tree."""
    if source.fmt == "folder" or (source.fmt == "hmdb51" and source.path.is_dir()):
        return tree
    return tree / source.path.name


def _all_index_texts(
    source: _Source, trees: dict[str, Path], jobs: Iterable[_Job]
) -> dict[Path, str]:
    """Every index file of the output trees that names the outputs of ``jobs``."""
    ready: dict[str, dict[Path, PurePosixPath]] = {codec: {} for codec in trees}
    for job in jobs:
        ready[job.codec][job.source] = PurePosixPath(job.out.relative_to(trees[job.codec]))
    texts: dict[Path, str] = {}
    for codec, tree in trees.items():
        rows = [(e, ready[codec][e.path]) for e in source.index.entries if e.path in ready[codec]]
        texts.update(_index_texts(source, tree, rows))
    return texts


# --------------------------------------------------------------------------------------------
# refusing what would write into the source or over the user's files


def _check_apart(dst: Path, places: dict[Path, str]) -> None:
    """Refuse an output folder that is, holds or lies inside one of ``places`` (path ->
    what it is), symlinks resolved."""
    out = dst.resolve()
    for place, what in places.items():
        real = place.resolve()
        if out == real:
            relation = "is"
        elif real in out.parents:
            relation = "is inside"
        elif out in real.parents:
            relation = "contains"
        else:
            continue
        resolved = f" (resolved: {out} and {real})" if (out, real) != (dst, place) else ""
        raise PathOverlapError(
            f"the output folder {dst} {relation} {what} {place}{resolved}: prepare would write "
            "into its own input; choose an output folder outside the dataset"
        )


def _source_places(src: Path, src_root: Path, index: VideoIndex) -> dict[Path, str]:
    """The source, its root and every folder holding a source video (path -> what it is)."""
    places = {src: "the source"}
    places.setdefault(src_root, "the dataset root")
    folders = {e.path.parent for e in index.entries}
    folders |= {e.path.resolve().parent for e in index.entries if e.path.is_symlink()}
    for folder in sorted(folders):
        places.setdefault(folder, "the source video folder")
    return places


def _read_as_video(name: str) -> bool:
    """``read_index`` lists a file of this name found in a class folder."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def _strays(tree: Path, classes: list[str], dst: Path, manifest: dict[str, dict]) -> list[Path]:
    """Files prepare did not write that a folder-per-class output ``tree`` would misread:
    videos (read as samples) and anything in a folder that is not a class (read as one)."""
    found: list[Path] = []
    if not tree.is_dir():
        return found
    for folder in sorted(tree.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        is_class = folder.name in classes
        for dirpath, dirnames, filenames in os.walk(folder):
            if is_class:  # read_index skips hidden folders and files
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in sorted(filenames):
                path = Path(dirpath, name)
                misread = _read_as_video(name) if is_class else not _is_temp(name)
                if misread and not _owned(path, dst, manifest):
                    found.append(path)
    return found


def _strays_of(
    trees: dict[str, Path], classes: list[str], dst: Path, manifest: dict[str, dict]
) -> list[Path]:
    """``_strays`` of every output tree."""
    return [path for tree in trees.values() for path in _strays(tree, classes, dst, manifest)]


def _check_free(
    dst: Path,
    manifest: dict[str, dict],
    outputs: Iterable[Path],
    strays: list[Path],
) -> None:
    """Refuse a run that would overwrite, or be misread because of, files prepare did not
    write: user files at output paths (``outputs``) and ``strays``."""
    taken = [p for p in outputs if os.path.lexists(p) and not _owned(p, dst, manifest)]
    found = list(dict.fromkeys(taken + strays))
    if found:
        shown = ", ".join(str(p) for p in found[:3]) + (", ..." if len(found) > 3 else "")
        raise ValueError(
            f"{len(found)} file(s) in {dst} that prepare did not write (or that changed since; "
            f"see {MANIFEST}) would be overwritten or read as part of its output: {shown}; move "
            "them away or choose another output folder (prepare never replaces or deletes them)"
        )


# --------------------------------------------------------------------------------------------
# the command


def _check_args(codec: str, short_side: int, gop: int, workers: int | None) -> None:
    if codec not in CODECS:
        raise ValueError(f"codec={codec!r} must be one of {', '.join(CODECS)}")
    for name, value in (("short_side", short_side), ("gop", gop)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int")
    if short_side % 2:
        raise ValueError(f"short_side={short_side} must be even (4:2:0 video)")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers={workers!r} must be a positive int")


def _plan(
    index: VideoIndex, src_root: Path, trees: dict[str, Path], short_side: int, gop: int
) -> tuple[list[_Job], list[Failure]]:
    """One job per (distinct source file, codec); two sources with one output name fail."""
    jobs, failures = [], []
    owner: dict[Path, Path] = {}
    for path in dict.fromkeys(e.path for e in index.entries):
        for codec, tree in trees.items():
            out = tree / path.relative_to(src_root).with_suffix(_ENCODINGS[codec].suffix)
            if owner.setdefault(out, path) != path:
                failures.append((path, codec, f"its output {out} is also {owner[out]}'s"))
                continue
            jobs.append(_Job(path, out, codec, short_side, gop))
    return jobs, failures


def _install(job: _Job, dst: Path, manifest: io.RawIOBase) -> str | None:
    """Record ``job``'s checked temporary file in the manifest, then rename it into place.

    Returns why that failed (the temporary file is removed then), or None.
    """
    tmp = _temp(job.out)
    try:
        record = _manifest_record(job, dst, tmp)
        _append(manifest, record)
        os.replace(tmp, job.out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        return f"cannot record or place the output {job.out}: {type(exc).__name__}: {exc}"
    return None


def _outcome(future: Future, job: _Job, dst: Path, manifest: io.RawIOBase) -> str | None:
    """Why ``job`` (its finished ``future``) failed, or None once its output is in place."""
    try:
        _, reason = future.result()
    except Exception as exc:  # a worker that died (crashed, killed) breaks the whole pool
        return f"its worker stopped: {type(exc).__name__}: {exc}"
    return reason or _install(job, dst, manifest)


def _run_pool(
    jobs: list[_Job],
    dst: Path,
    workers: int,
    progress: bool,
    done: dict[_Job, dict],
    failures: list[Failure],
) -> None:
    """Encode ``jobs``, filling ``done`` (job -> manifest record) and ``failures``.

    Raises ``PrepareInterrupted`` at SIGINT once every finished file is recorded.
    """
    finished: queue.SimpleQueue[Future] = queue.SimpleQueue()  # filled by the pool's thread
    with (
        _sigint_as_flag() as interrupted,
        _pool(workers) as pool,
        open(dst / MANIFEST, "ab", buffering=0) as manifest,
        tqdm(total=len(jobs), desc="preparing videos", unit="file", disable=not progress) as bar,
    ):
        pending: dict[Future, _Job] = {}
        for job in jobs:
            future = pool.submit(_run, job)
            pending[future] = job
            future.add_done_callback(finished.put)
        while pending:
            try:
                future = finished.get(timeout=0 if interrupted.is_set() else _POLL_S)
            except queue.Empty:
                if interrupted.is_set():
                    raise PrepareInterrupted(
                        f"interrupted: {len(done)} file(s) encoded by this run are recorded in "
                        f"{dst / MANIFEST}; {len(pending)} were not finished: run the same "
                        "command again to do them"
                    ) from None
                continue
            job = pending.pop(future)
            reason = _outcome(future, job, dst, manifest)
            if reason is None:
                done[job] = _manifest_record(job, dst, job.out)
            else:
                failures.append((job.source, job.codec, reason))
            bar.update()


def _encode_all(
    jobs: list[_Job], dst: Path, workers: int, progress: bool
) -> tuple[dict[_Job, dict], list[Failure]]:
    """Run ``jobs`` in a process pool, each success recorded in the manifest as it finishes.

    Whatever stops the run (SIGINT, an error), the workers are stopped and no temporary file
    of an unfinished job is left.
    """
    done: dict[_Job, dict] = {}
    failures: list[Failure] = []
    if not jobs:
        return done, failures
    try:
        _run_pool(jobs, dst, workers, progress, done, failures)
    except BaseException:
        for job in jobs:
            if job not in done:
                _temp(job.out).unlink(missing_ok=True)
        raise
    return done, failures


def _remove_empty_dirs(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents below ``stop`` while they are empty."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty
            return
        folder = folder.parent


def _remove_stale(dst: Path, manifest: dict[str, dict], keep: set[str]) -> list[Path]:
    """Delete the files earlier runs wrote that the output no longer holds; return them.

    A file changed since prepare wrote it is not prepare's any more: it is kept, with a warning.
    """
    removed = []
    for rel in sorted(set(manifest) - keep):
        path = dst / rel
        if not os.path.lexists(path):
            continue
        if not _owned(path, dst, manifest):
            warnings.warn(
                f"{path}: an earlier prepare wrote it, but it has changed since; it is no "
                "longer part of the output and is left in place (delete it yourself)",
                stacklevel=4,  # prepare's caller
            )
            continue
        path.unlink()
        removed.append(path)
        _remove_empty_dirs(path.parent, dst)
    return removed


def _prune_non_classes(tree: Path, classes: list[str]) -> None:
    """Remove what prepare left in the folders of a folder-per-class output that are no longer
    classes (temporary files, empty folders); only those are left there (see ``_strays``)."""
    for folder in tree.iterdir():
        if not folder.is_dir() or folder.name.startswith(".") or folder.name in classes:
            continue
        for dirpath, _, filenames in os.walk(folder, topdown=False):
            for name in filenames:
                if _is_temp(name):
                    Path(dirpath, name).unlink()
            with suppress(OSError):
                os.rmdir(dirpath)


def _finish(
    source: _Source,
    dst: Path,
    trees: dict[str, Path],
    manifest: dict[str, dict],
    kept: dict[_Job, dict],
    failures: list[Failure],
) -> tuple[dict[str, Path], list[Path]]:
    """After a complete run: remove stale files, write the indexes, the manifest (``kept``: the
    jobs whose output is ready -> their records) and the failures.

    Returns (what to read per codec, the files removed).
    """
    texts = _all_index_texts(source, trees, kept)
    records = {record["out"]: record for record in kept.values()}
    removed = _remove_stale(dst, manifest, set(records) | {_rel(p, dst) for p in texts})
    for tree in trees.values():
        if source.fmt == "folder":  # the layout is the index: keep classes that lost every video
            _prune_non_classes(tree, source.index.classes)
            for name in source.index.classes:
                (tree / name).mkdir(parents=True, exist_ok=True)
    for path, text in texts.items():
        _write_atomic(path, text)
        records[_rel(path, dst)] = {"out": _rel(path, dst), "size": path.stat().st_size}
    _write_atomic(dst / MANIFEST, "".join(json.dumps(r) + "\n" for r in records.values()))
    _write_failures(dst, failures)
    return {codec: _index_target(source, tree) for codec, tree in trees.items()}, removed


def _write_failures(dst: Path, failures: Iterable[Failure]) -> None:
    """``DST/prepare-failures.jsonl`` (see the module docstring); removed if none."""
    text = "".join(
        json.dumps({"source": str(p), "codec": c, "reason": r}) + "\n" for p, c, r in failures
    )
    if text:
        _write_atomic(dst / FAILURES, text)
    else:
        (dst / FAILURES).unlink(missing_ok=True)


def prepare(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    codec: str = "vp9",
    short_side: int = DEFAULT_SHORT_SIDE,
    gop: int = DEFAULT_GOP,
    workers: int | None = None,
    fmt: str | None = None,
    root: str | os.PathLike | None = None,
    split: str | None = None,
    progress: bool = True,
) -> PrepareResult:
    """Re-encode the dataset ``src`` into ``dst`` (see the module docstring).

    Args:
        src: a folder-per-class directory or an index file (``fmt``, ``root``, ``split`` as in
            ``read_index``).
        dst: output root, outside the dataset. Videos keep their paths relative to the source's
            root with a new extension; the index is written beside them under the source
            index's name.
        codec: ``"vp9"`` (``.webm``, for the CPU backend), ``"h264"`` (``.mkv``, for NVDEC),
            ``"both"`` (trees ``dst/vp9`` and ``dst/h264``) or ``"copy"`` (the packets remuxed
            into ``.mkv``, nothing re-encoded; ``short_side`` and ``gop`` do not apply).
        short_side: output short side in pixels (even).
        gop: frames between keyframes (at most; encoders may add keyframes at scene cuts).
        workers: processes, default ``os.cpu_count()``.
        progress: show a tqdm progress bar.

    Raises:
        PathOverlapError: ``dst`` is, holds or lies inside the source (a ``ValueError``).
        ValueError: bad arguments, an unreadable index, or files in ``dst`` that prepare did
            not write where its output goes (files that fail are listed in
            ``PrepareResult.failures`` and ``dst/prepare-failures.jsonl`` instead).
        PrepareInterrupted: SIGINT (a ``KeyboardInterrupt``); rerun to finish.
        OSError: the manifest, an index or the failures list cannot be written (a full disk).
    """
    _check_args(codec, short_side, gop, workers)
    src_path = Path(os.path.abspath(src))
    fmt = fmt or detect_format(src_path)
    index = read_index(src_path, fmt=fmt, root=root, split=split)
    src_root = _source_root(fmt, src_path, root, split)
    dst = Path(os.path.abspath(dst))
    _check_apart(dst, _source_places(src_path, src_root, index))
    codecs = ["vp9", "h264"] if codec == "both" else [codec]
    trees = {c: dst / c if codec == "both" else dst for c in codecs}
    hmdb = _hmdb_tags(src_path, root, split) if fmt == "hmdb51" else None
    source = _Source(fmt, index, src_path, split, hmdb)

    jobs, failures = _plan(index, src_root, trees, short_side, gop)
    failures += [(p, c, "file not found") for p in index.missing for c in codecs]
    manifest = _read_manifest(dst)
    outputs = [job.out for job in jobs] + list(_all_index_texts(source, trees, jobs))
    strays = [] if fmt != "folder" else _strays_of(trees, index.classes, dst, manifest)
    _check_free(dst, manifest, outputs, strays)
    for tree in trees.values():
        tree.mkdir(parents=True, exist_ok=True)

    kept = {job: manifest[_rel(job.out, dst)] for job in jobs if _is_done(job, dst, manifest)}
    for job in kept:  # a temporary file left by an earlier, interrupted run
        _temp(job.out).unlink(missing_ok=True)
    todo = [job for job in jobs if job not in kept]
    done, failed = _encode_all(todo, dst, workers or os.cpu_count() or 1, progress)
    result = PrepareResult(fmt, {}, len(done), len(kept), failures + failed)
    result.indexes, result.removed = _finish(
        source, dst, trees, manifest, kept | done, result.failures
    )
    return result
