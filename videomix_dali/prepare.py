"""``videomix-dali prepare``: re-encode a dataset into the layout the loader decodes fastest.

Every video of a dataset (folder-per-class or any index :func:`~videomix_dali.index.read_index`
reads) is decoded and re-encoded, video only (audio is dropped):

- scaled so that its short side is ``short_side`` pixels (aspect kept, even sizes);
- as VP9 in ``.webm`` (DALI's CPU backend) or 8-bit 4:2:0 H.264 in ``.mkv`` (NVDEC), or both
  (two trees, ``DST/vp9`` and ``DST/h264``);
- with a keyframe at least every ``gop`` frames, in a Matroska container whose clusters begin
  at keyframes, so the loader decodes a clip from the keyframe at or before it
  (:mod:`videomix_dali.cuts`); every output is probed and refused unless it can be cut;
- keeping every frame (same frame count, so index sub-ranges keep their frame numbers).

Files are encoded in a process pool, each to a temporary name beside its output and then
renamed, and recorded in ``DST/prepare-manifest.jsonl``: a rerun skips what is done. Inputs
that fail (unreadable, empty, truncated, no video, a frame count that changed) are listed in
``DST/prepare-failures.txt`` and skipped. Each tree gets an index of the source's format that
names the prepared files with the source's labels.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePosixPath

import av
from tqdm import tqdm

from .index import (
    HMDB_SPLIT_ARG_RE,
    HMDB_SPLIT_RE,
    HMDB_TAGS,
    VideoEntry,
    VideoIndex,
    detect_format,
    read_index,
)
from .probe import ProbeError, probe_video

__all__ = ["CODECS", "DEFAULT_GOP", "DEFAULT_SHORT_SIDE", "PrepareResult", "prepare"]

#: ``codec=`` choices: one tree, or ``both`` (``DST/vp9`` and ``DST/h264``)
CODECS: tuple[str, ...] = ("vp9", "h264", "both")
#: short side of the output in pixels
DEFAULT_SHORT_SIDE = 256
#: frames between keyframes; chosen by measurement (README, "Preparing a dataset")
DEFAULT_GOP = 64
MANIFEST = "prepare-manifest.jsonl"
FAILURES = "prepare-failures.txt"
_PART = ".part"  # temporary output: ".<name>.part" beside the output
# Matroska's DASH mode starts a cluster at every video keyframe and only there; by default the
# muxer does so only past 4 KiB of cluster, so small GOPs would lose their cut points.
_MUXER = {"dash": "1"}


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
    ``failures``: (source path, codec, reason).
    """

    fmt: str
    indexes: dict[str, Path]
    encoded: int = 0
    reused: int = 0
    failures: list[tuple[Path, str, str]] = field(default_factory=list)

    @property
    def prepared(self) -> int:
        """Output files that are ready (this run's and earlier runs')."""
        return self.encoded + self.reused


def output_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) in pixels with the short side ``short_side``, aspect kept, both even."""
    scale = short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def _encode(job: _Job) -> None:
    """Re-encode ``job`` to its output: to a temporary file, checked, then renamed.

    Raises ``ProbeError`` (the input or the output is unusable), ``av.error.FFmpegError`` or
    ``OSError``.
    """
    info = probe_video(job.source)
    enc = _ENCODINGS[job.codec]
    height, width = output_size(info.height, info.width, job.short_side)
    tmp = job.out.with_name(f".{job.out.name}{_PART}")
    job.out.parent.mkdir(parents=True, exist_ok=True)
    try:
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
        made = probe_video(tmp)
        if made.num_frames != info.num_frames or count != info.num_frames:
            raise ProbeError(
                job.source,
                f"frame count changed: the input has {info.num_frames} frames, "
                f"{count} decoded, the output has {made.num_frames}",
            )
        if made.cuts is None:
            raise ProbeError(job.source, f"output cannot be cut at keyframes: {made.uncut_reason}")
        os.replace(tmp, job.out)
    finally:
        tmp.unlink(missing_ok=True)


def _run(job: _Job) -> tuple[_Job, str | None]:
    """(job, None) when done, else (job, why it failed); never raises."""
    try:
        _encode(job)
    except ProbeError as exc:
        return job, exc.reason
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return job, f"{type(exc).__name__}: {exc}"
    return job, None


# --------------------------------------------------------------------------------------------
# resuming: the manifest


def _manifest_record(job: _Job, dst: Path) -> dict:
    """What the manifest keeps of a finished ``job`` (sizes in bytes); OSError if a file is gone."""
    src = job.source.stat()
    return {
        "out": job.out.relative_to(dst).as_posix(),
        "source": str(job.source),
        "source_size": src.st_size,
        "source_mtime_ns": src.st_mtime_ns,
        "size": job.out.stat().st_size,
        "settings": [job.short_side, job.gop],
    }


def _read_manifest(dst: Path) -> dict[str, dict]:
    """Output path (relative to ``dst``) -> its record; a line cut off by a crash is ignored."""
    records: dict[str, dict] = {}
    try:
        with open(dst / MANIFEST, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                records[record["out"]] = record
    except FileNotFoundError:
        pass
    return records


def _is_done(job: _Job, dst: Path, manifest: dict[str, dict]) -> bool:
    """The manifest records ``job`` as it is now: same source, settings and output size."""
    try:
        return manifest.get(job.out.relative_to(dst).as_posix()) == _manifest_record(job, dst)
    except OSError:  # the source or the output is gone
        return False


# --------------------------------------------------------------------------------------------
# index writers: one per format of videomix_dali.index, each the inverse of its reader


def _source_root(fmt: str, path: Path, root: str | os.PathLike | None, split: str | None) -> Path:
    """The folder the source index's video paths are relative to (as ``read_index`` uses it)."""
    if fmt == "folder":
        return path / split if split else path
    if root is not None:
        return Path(os.path.abspath(root))
    return path if path.is_dir() else path.parent


def _write_file_list(out: Path, rows: list[tuple[VideoEntry, PurePosixPath]]) -> None:
    with open(out, "w", encoding="utf-8") as f:
        for entry, rel in rows:
            frames = "" if entry.start is None else f" {entry.start} {entry.end}"
            f.write(f"{rel} {entry.label}{frames}\n")


def _write_kinetics(
    out: Path, rows: list[tuple[VideoEntry, PurePosixPath]], classes: list[str], split: str | None
) -> None:
    """Kinetics CSV; youtube_id and times come from the file name ``<id>_<start>_<end>``."""
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        header = ["label", "youtube_id", "time_start", "time_end"]
        writer.writerow(header + (["split"] if split else []))
        for entry, rel in rows:
            yid, t0, t1 = rel.stem.rsplit("_", 2)
            row = [classes[entry.label], yid, int(t0), int(t1)]
            writer.writerow(row + ([split] if split else []))


def _write_ssv2(
    out: Path, rows: list[tuple[VideoEntry, PurePosixPath]], classes: list[str]
) -> None:
    """SSv2 JSON (``id``, ``template`` = class name) and ``labels.json`` beside it."""
    items = [{"id": rel.stem, "template": classes[entry.label]} for entry, rel in rows]
    out.write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
    labels = {name: str(i) for i, name in enumerate(classes)}
    (out.parent / "labels.json").write_text(json.dumps(labels, indent=1) + "\n", encoding="utf-8")


def _write_ucf101(
    out: Path, rows: list[tuple[VideoEntry, PurePosixPath]], classes: list[str]
) -> None:
    """UCF-101 list (``Class/video label``, 1-based labels) and ``classInd.txt`` beside it."""
    out.write_text("".join(f"{rel} {entry.label + 1}\n" for entry, rel in rows), encoding="utf-8")
    ind = "".join(f"{i} {name}\n" for i, name in enumerate(classes, start=1))
    (out.parent / "classInd.txt").write_text(ind, encoding="utf-8")


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


def _write_hmdb51(
    tree: Path,
    rows: list[tuple[VideoEntry, PurePosixPath]],
    classes: list[str],
    number: str,
    tags: dict[Path, str],
) -> None:
    """One ``<class>_test_split<N>.txt`` per class (``video tag``) in ``tree``."""
    lines: dict[str, list[str]] = {name: [] for name in classes}
    for entry, rel in rows:
        lines[classes[entry.label]].append(f"{rel.name} {tags[entry.path]}\n")
    for name, text in lines.items():
        if text:
            (tree / f"{name}_test_split{number}.txt").write_text("".join(text), encoding="utf-8")


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
) -> tuple[list[_Job], list[tuple[Path, str, str]]]:
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


def _encode_all(
    jobs: list[_Job], dst: Path, workers: int, progress: bool
) -> tuple[list[_Job], list[tuple[Path, str, str]]]:
    """Run ``jobs`` in a process pool, appending each success to the manifest."""
    done: list[_Job] = []
    failures: list[tuple[Path, str, str]] = []
    if not jobs:
        return done, failures
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])  # workers fork from a process that imported us
    with (
        ProcessPoolExecutor(workers, mp_context=ctx) as pool,
        open(dst / MANIFEST, "a", encoding="utf-8") as manifest,
        tqdm(total=len(jobs), desc="preparing videos", unit="file", disable=not progress) as bar,
    ):
        futures = [pool.submit(_run, job) for job in jobs]
        for future in as_completed(futures):
            job, reason = future.result()
            if reason is None:
                manifest.write(json.dumps(_manifest_record(job, dst)) + "\n")
                manifest.flush()
                done.append(job)
            else:
                failures.append((job.source, job.codec, reason))
            bar.update()
    return done, failures


def _write_indexes(
    fmt: str,
    index: VideoIndex,
    src: Path,
    root: str | os.PathLike | None,
    split: str | None,
    ready: dict[str, dict[Path, PurePosixPath]],
    trees: dict[str, Path],
) -> dict[str, Path]:
    """Write each tree's index; return what to pass to ``read_index`` per codec."""
    hmdb = _hmdb_tags(src, root, split) if fmt == "hmdb51" else None
    indexes = {}
    for codec, tree in trees.items():
        rows = [(e, ready[codec][e.path]) for e in index.entries if e.path in ready[codec]]
        target = tree / src.name
        if fmt == "folder":  # the layout is the index: keep classes that lost every video
            for name in index.classes:
                (tree / name).mkdir(parents=True, exist_ok=True)
            target = tree
        elif fmt == "file_list":
            _write_file_list(target, rows)
        elif fmt == "kinetics_csv":
            _write_kinetics(target, rows, index.classes, split)
        elif fmt == "ssv2_json":
            _write_ssv2(target, rows, index.classes)
        elif fmt == "ucf101":
            _write_ucf101(target, rows, index.classes)
        else:  # hmdb51
            _write_hmdb51(tree, rows, index.classes, *hmdb)  # type: ignore[misc]
            target = tree if src.is_dir() else target
        indexes[codec] = target
    return indexes


def _write_failures(dst: Path, failures: Iterable[tuple[Path, str, str]]) -> None:
    """``DST/prepare-failures.txt``: ``source<TAB>codec<TAB>reason`` lines; removed if none."""
    text = "".join(f"{p}\t{c}\t{' '.join(r.split())}\n" for p, c, r in failures)
    path = dst / FAILURES
    if text:
        path.write_text(text, encoding="utf-8")
    else:
        path.unlink(missing_ok=True)


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
        dst: output root. Videos keep their paths relative to the source's root with a new
            extension; the index is written beside them under the source index's name.
        codec: ``"vp9"`` (``.webm``, for the CPU backend), ``"h264"`` (``.mkv``, for NVDEC) or
            ``"both"`` (trees ``dst/vp9`` and ``dst/h264``).
        short_side: output short side in pixels (even).
        gop: frames between keyframes (at most; encoders may add keyframes at scene cuts).
        workers: processes, default ``os.cpu_count()``.
        progress: show a tqdm progress bar.

    Raises:
        ValueError: bad arguments or an unreadable index (files that fail are listed in
            ``PrepareResult.failures`` and ``dst/prepare-failures.txt`` instead).
    """
    _check_args(codec, short_side, gop, workers)
    src_path = Path(os.path.abspath(src))
    fmt = fmt or detect_format(src_path)
    index = read_index(src_path, fmt=fmt, root=root, split=split)
    src_root = _source_root(fmt, src_path, root, split)
    dst = Path(os.path.abspath(dst))
    codecs = ["vp9", "h264"] if codec == "both" else [codec]
    trees = {c: dst / c if codec == "both" else dst for c in codecs}
    for tree in trees.values():
        tree.mkdir(parents=True, exist_ok=True)

    jobs, failures = _plan(index, src_root, trees, short_side, gop)
    failures += [(p, c, "file not found") for p in index.missing for c in codecs]
    manifest = _read_manifest(dst)
    reused, todo = [], []
    for job in jobs:
        (reused if _is_done(job, dst, manifest) else todo).append(job)
    for job in reused:  # a temporary file left by an earlier, interrupted run
        job.out.with_name(f".{job.out.name}{_PART}").unlink(missing_ok=True)
    done, failed = _encode_all(todo, dst, workers or os.cpu_count() or 1, progress)
    result = PrepareResult(fmt, {}, len(done), len(reused), failures + failed)
    ready: dict[str, dict[Path, PurePosixPath]] = {c: {} for c in codecs}
    for job in reused + done:
        ready[job.codec][job.source] = PurePosixPath(job.out.relative_to(trees[job.codec]))
    _write_failures(dst, result.failures)
    result.indexes = _write_indexes(fmt, index, src_path, root, split, ready, trees)
    return result
