"""Only the bytes a clip needs: Matroska / WebM files cut at keyframe clusters.

DALI 2.4's ``fn.decoders.video`` decodes an in-memory file from its first frame on every
sample, so a clip's cost grows with its position in the file. A Matroska file is a header
(EBML header, Segment, Info, Tracks, ...) followed by Clusters of blocks; muxers start a new
cluster at each video keyframe. The header plus the clusters from the keyframe at or before
a clip's first frame through the end of the group of pictures holding its last frame is a
valid file whose frame 0 is that keyframe: the decoder then does only the clip's work, and
the loader reads only that byte range (one ``pread``), whatever the file's length.

:func:`cut_index` finds the cut points once (at probe time, cached with the probe);
:func:`clip_bytes` is the cheap per-clip step.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_INFO = 0x1549A966
_TRACKS = 0x1654AE6B
_CLUSTER = 0x1F43B675
_SIMPLE_BLOCK, _BLOCK_GROUP, _BLOCK = 0xA3, 0xA0, 0xA1
_TRACK_ENTRY, _TRACK_NUMBER, _TRACK_TYPE, _VIDEO_TYPE = 0xAE, 0xD7, 0x83, 1
# What a Cluster may hold besides blocks: Timecode, Position, PrevSize, SilentTracks,
# EncryptedBlock, Void, CRC-32.
_CLUSTER_OTHER = {0xE7, 0xA7, 0xAB, 0x5854, 0xAF, 0xEC, 0xBF}
# A Segment of unknown size: the cut file ends where its last cluster ends.
_SEGMENT_UNKNOWN_SIZE = bytes.fromhex("18538067 01ffffffffffffff")
_HEAD_READ = 1 << 16  # bytes read to find the header elements before the first cluster


@dataclass(frozen=True)
class CutIndex:
    """Where one Matroska / WebM file can be cut, in bytes and frame indices.

    ``header``: byte ranges ``(start, end)`` of the EBML header, Info and Tracks elements,
    which make the cut file's header. ``starts`` / ``frames``: byte offset and first video
    frame index of every cut point (a cluster that begins with a video keyframe), ascending;
    ``end``: where the last cluster ends.
    """

    header: tuple[tuple[int, int], ...]
    starts: tuple[int, ...]
    frames: tuple[int, ...]
    end: int


def _vint(buf: bytes, i: int, keep_marker: bool = False) -> tuple[int, int]:
    """An EBML variable-length integer at ``buf[i]``: (value, index after it)."""
    first = buf[i]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError(f"invalid EBML length byte {first:#x} at {i}")
    value = first if keep_marker else first & ((0x80 >> (length - 1)) - 1)
    for byte in buf[i + 1 : i + length]:
        value = value << 8 | byte
    return value, i + length


def _element(buf: bytes, i: int) -> tuple[int, int, int | None]:
    """(id, data start, data size or None for 'unknown') of the element at ``buf[i]``."""
    eid, j = _vint(buf, i, keep_marker=True)
    size, k = _vint(buf, j)
    return eid, k, None if size == (1 << (7 * (k - j))) - 1 else size


def declared_size(path: str | Path) -> int | None:
    """The bytes a Matroska / WebM file says it has (EBML header plus Segment); None where it is
    not one or its Segment's size is unknown (a live-streamed file)."""
    with open(path, "rb") as f:
        head = f.read(1024)
    try:
        _, data, length = _element(head, 0)
        if length is None:  # an EBML header of unknown size: where it ends is not declared
            return None
        eid, segment, size = _element(head, data + length)
    except (ValueError, IndexError):
        return None
    return None if eid != _SEGMENT or size is None else segment + size


def _children(f: BinaryIO, start: int, end: int) -> Iterator[tuple[int, int, int, int | None]]:
    """(id, element start, data start, data size or None) of the elements of ``f`` between byte
    ``start`` and ``end``; ValueError where one does not end inside that range."""
    i = start
    while i < end:
        f.seek(i)
        eid, data, size = _element(f.read(12), 0)
        yield eid, i, i + data, size
        if size is None or i + data + size > end:
            raise ValueError(f"element {eid:#x} at byte {i} runs past byte {end}")
        i += data + size


def video_track(path: str | Path, cuts: CutIndex) -> tuple[int, set[int]]:
    """(number of the first video track, numbers of every track) that the Tracks element of a
    Matroska / WebM file declares; ValueError if they cannot be read."""
    numbers: list[tuple[int, int]] = []  # (number, type) of each TrackEntry, in order
    with open(path, "rb") as f:
        for start, end in cuts.header[1:]:
            f.seek(start)
            eid, data, _ = _element(f.read(12), 0)
            if eid != _TRACKS:
                continue
            for child, _, entry, size in _children(f, start + data, end):
                if child != _TRACK_ENTRY:
                    continue
                fields = {}
                for field, _, at, length in _children(f, entry, entry + size):
                    if field in (_TRACK_NUMBER, _TRACK_TYPE):
                        f.seek(at)
                        fields[field] = int.from_bytes(f.read(length), "big")
                numbers.append((fields.get(_TRACK_NUMBER, 0), fields.get(_TRACK_TYPE, 0)))
    video = [n for n, kind in numbers if kind == _VIDEO_TYPE]
    if not video:
        raise ValueError("no video track in the Tracks element")
    return video[0], {n for n, _ in numbers}


def block_counts(path: str | Path, cuts: CutIndex) -> dict[int, int] | str:
    """Frames per track number in the blocks of a Matroska / WebM file's clusters (from its
    first cut point to ``cuts.end``; a laced block counts each frame it holds), or why they
    cannot be read: an element that does not belong in a cluster, or one running past it.

    This counts the container's own structure, independently of a demuxer: a damaged block
    header makes FFmpeg drop the rest of its cluster, so the demuxer then delivers other
    frames at the same indices, which a count lower than this one exposes.
    """
    counts: dict[int, int] = {}
    with open(path, "rb") as f:
        try:
            for eid, _, cluster, size in _children(f, cuts.starts[0], cuts.end):
                if eid != _CLUSTER:
                    continue
                for child, at, data, length in _children(f, cluster, cluster + size):
                    if child == _BLOCK_GROUP:
                        inner = _children(f, data, data + length)
                        data = next((d for c, _, d, _ in inner if c == _BLOCK), -1)
                    elif child != _SIMPLE_BLOCK:
                        if child not in _CLUSTER_OTHER:
                            return f"element {child:#x} at byte {at} does not belong in a cluster"
                        continue
                    if data < 0:
                        return f"block group at byte {at} holds no block"
                    f.seek(data)
                    head = f.read(12)
                    if not head or not head[0]:
                        return f"block at byte {at} has no valid track number"
                    track, j = _vint(head, 0)
                    counts[track] = counts.get(track, 0) + _frames_in_block(head, j)
        except (ValueError, IndexError) as exc:
            return f"malformed Matroska elements ({exc})"
    return counts


def _frames_in_block(head: bytes, j: int) -> int:
    """Frames a (Simple)Block holds, from its head: after the track number (ending at ``j``),
    a 16-bit timestamp and the flags, whose lacing bits (Xiph, EBML or fixed-size lacing)
    announce a byte holding the number of frames minus one."""
    return head[j + 3] + 1 if head[j + 2] & 0x06 else 1


def cut_index(
    path: str | Path, positions: np.ndarray, display: np.ndarray, safe: np.ndarray
) -> CutIndex | str:
    """The cut points of ``path``, or the reason it cannot be cut.

    Per video packet in decode order, as the probe demuxes them: ``positions`` byte position
    (PyAV's ``packet.pos``), ``display`` the index a full decode shows its frame at (-1:
    hidden), ``safe`` whether a clip may start decoding at it
    (:func:`videomix_dali.source.probe.presentation_order`). A cut point is a cluster whose first
    packet is safe; its frame is that packet's display index.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(_HEAD_READ)
        if len(head) < 4 or int.from_bytes(head[:4], "big") != _EBML:
            return "not a Matroska / WebM file"
        try:
            _, data, length = _element(head, 0)
            if length is None:
                return "an EBML header of unknown size"
            header = [(0, data + length)]
            eid, seg_data, seg_size = _element(head, data + length)
            if eid != _SEGMENT:
                return "no Segment after the EBML header"
            seg_end = size if seg_size is None else min(size, seg_data + seg_size)
            i, clusters, base = seg_data, [], 0
            while i < seg_end:
                if i + 12 > base + len(head):  # past what was read: read this element's head
                    f.seek(i)
                    head, base = f.read(12), i
                eid, data, length = _element(head, i - base)
                if length is None:
                    return "an element of unknown size (a live-streamed file)"
                data += base
                if eid in (_INFO, _TRACKS):
                    header.append((i, data + length))
                elif eid == _CLUSTER:
                    clusters.append(i)
                i = data + length
        except (ValueError, IndexError):
            return "malformed Matroska element headers"
    if len(header) != 3 or not clusters:
        return "no Info, Tracks or Cluster element"
    cluster_of = np.searchsorted(np.asarray(clusters), positions, side="right") - 1
    starts, frames = [], []
    for c, start in enumerate(clusters):
        mine = np.flatnonzero(cluster_of == c)
        if len(mine) and safe[mine[0]] and (not frames or display[mine[0]] > frames[-1]):
            starts.append(start)
            frames.append(int(display[mine[0]]))
    if not frames or frames[0] != 0:
        return "the first cluster does not begin with a keyframe shown first"
    return CutIndex(tuple(header), tuple(starts), tuple(frames), seg_end)


def clip_bytes(path: str | Path, cuts: CutIndex, first: int, last: int) -> tuple[np.ndarray, int]:
    """(file bytes uint8, frame shift) holding frames ``first .. last`` (inclusive) of ``path``.

    The bytes are the header plus the clusters from the last cut point at or before ``first``
    up to the next cut point after ``last``; frame ``i`` of the file is frame ``i - shift`` of
    the bytes. Reads only those ranges.
    """
    k = bisect.bisect_right(cuts.frames, first) - 1
    n = bisect.bisect_right(cuts.frames, last)
    start, end = cuts.starts[k], cuts.starts[n] if n < len(cuts.starts) else cuts.end
    ranges = [*cuts.header[:1], (0, 0), *cuts.header[1:], (start, end)]
    total = sum(b - a for a, b in ranges) + len(_SEGMENT_UNKNOWN_SIZE)
    out = np.empty(total, np.uint8)
    fd = os.open(path, os.O_RDONLY)
    try:
        o = 0
        for a, b in ranges:
            if (a, b) == (0, 0):
                chunk = _SEGMENT_UNKNOWN_SIZE
            else:
                chunk = os.pread(fd, b - a, a)
                if len(chunk) != b - a:
                    raise OSError(f"{path} is shorter than its probed layout (changed on disk?)")
            out[o : o + len(chunk)] = np.frombuffer(chunk, np.uint8)
            o += len(chunk)
    finally:
        os.close(fd)
    return out, cuts.frames[k]
