"""MP4 / MOV clips as minimal in-memory Matroska files, without re-encoding.

DALI 2.4's ``fn.decoders.video`` decodes an in-memory file from its first frame on every
sample, so a clip must arrive as only the packets it needs. An MP4 keeps where its packets are
in a sample table (``moov``), apart from the packet bytes (``mdat``), so it cannot be cut by
byte range as a Matroska file can (:mod:`videomix_dali.source.cuts`). Instead :func:`sample_table`
demuxes the file once (PyAV, no decode) into per-packet arrays, and :func:`clip_bytes` writes
per clip a small Matroska file: EBML header, Segment, Info, one video track, Clusters of
SimpleBlocks holding the packets from a safe keyframe at or before the clip's first frame
through the last packet the clip needs, their bytes read as they are with ``os.pread``.

Timestamps: a block's timestamp is ``(pts - pts of the clip's first packet) // tick``, where
``tick`` is the gcd of the file's pts offsets (one frame for constant frame rate), and
``TimestampScale`` is one tick in nanoseconds rounded to a whole nanosecond (at least 1). This
is a strictly increasing linear map of pts, so presentation order is kept exactly; durations
are off by at most half a nanosecond per tick.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import numpy as np

# FFmpeg codec name -> (Matroska CodecID, the record its CodecPrivate holds, that record's first
# byte: avcC / hvcC configurationVersion 1, av1C marker + version 1; None: any or no extradata).
_CODECS: dict[str, tuple[str, str, int | None]] = {
    "h264": ("V_MPEG4/ISO/AVC", "avcC", 0x01),
    "hevc": ("V_MPEGH/ISO/HEVC", "hvcC", 0x01),
    "av1": ("V_AV1", "av1C", 0x81),
    "mpeg4": ("V_MPEG4/ISO/ASP", "", None),
    "vp8": ("V_VP8", "", None),
    "vp9": ("V_VP9", "", None),
}
# VP8 / VP9 frames describe themselves; Matroska's optional VP9 CodecPrivate is a WebM list of
# (ID, length, value) features, not MP4's vpcC box (which FFmpeg does not hand out anyway).
_NO_PRIVATE = {"vp8", "vp9"}
_APP = b"videomix_dali"
_BLOCK_HEAD = 13  # SimpleBlock ID, 8-byte size, track number 1, int16 timestamp, flags
_CLUSTER_HEAD = struct.Struct(">IQBBQ")  # Cluster ID, 8-byte size, Timestamp (0xE7, 8 bytes)
_TIMESTAMP = 10  # bytes of a Cluster's Timestamp element: ID, size 0x88, 8-byte value
_MERGE_GAP = 1 << 14  # packets fewer bytes apart than this are read with one pread
_AV1_FRAME_OBUS = {3, 6}  # OBU_FRAME_HEADER, OBU_FRAME


@dataclass(frozen=True, eq=False)
class SampleTable:
    """The video packets of one file in decode order, and how to wrap them as Matroska.

    Per packet, shape (N,): ``pos`` byte offset in the file (int64), ``size`` bytes (int32),
    ``pts`` in ``time_base`` units (int64), ``key`` keyframe flag (bool), ``display`` the index
    at which a full-file PyAV decode shows the packet's frame (int32; frames an edit list
    discards get indices below 0 or from ``num_frames`` on), ``safe`` whether decoding from
    this keyframe yields every frame shown at or after it exactly (bool).
    ``codec``: FFmpeg codec name; ``codec_id`` / ``codec_private``: Matroska CodecID and
    CodecPrivate; ``width`` / ``height`` in pixels; ``num_frames``: frames a full decode shows.
    """

    pos: np.ndarray
    size: np.ndarray
    pts: np.ndarray
    key: np.ndarray
    display: np.ndarray
    safe: np.ndarray
    codec: str
    codec_id: str
    codec_private: bytes
    width: int
    height: int
    time_base: Fraction
    num_frames: int

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The table as plain numpy arrays (no object dtype: ``np.savez`` stores them)."""
        meta = [self.width, self.height, self.time_base.numerator, self.time_base.denominator]
        return {
            "pos": self.pos,
            "size": self.size,
            "pts": self.pts,
            "key": self.key,
            "display": self.display,
            "safe": self.safe,
            "codec": np.array(self.codec),
            "codec_private": np.frombuffer(self.codec_private, np.uint8),
            "meta": np.array([*meta, self.num_frames], np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> SampleTable:
        """Rebuild a table from :meth:`to_arrays`'s output."""
        width, height, num, den, num_frames = (int(v) for v in arrays["meta"])
        codec = str(arrays["codec"])
        return cls(
            pos=np.asarray(arrays["pos"], np.int64),
            size=np.asarray(arrays["size"], np.int32),
            pts=np.asarray(arrays["pts"], np.int64),
            key=np.asarray(arrays["key"], bool),
            display=np.asarray(arrays["display"], np.int32),
            safe=np.asarray(arrays["safe"], bool),
            codec=codec,
            codec_id=_CODECS[codec][0],
            codec_private=np.asarray(arrays["codec_private"], np.uint8).tobytes(),
            width=width,
            height=height,
            time_base=Fraction(num, den),
            num_frames=num_frames,
        )

    @cached_property
    def tick(self) -> int:
        """pts units per Matroska timestamp unit: the gcd of all pts offsets (>= 1)."""
        return max(1, int(np.gcd.reduce(self.pts - self.pts.min())))

    @cached_property
    def timestamp_scale(self) -> int:
        """Matroska TimestampScale: nanoseconds per tick, rounded (>= 1)."""
        return max(1, round(self.time_base * self.tick * 1_000_000_000))

    @cached_property
    def _safe_packets(self) -> tuple[np.ndarray, np.ndarray]:
        """(decode positions, display indices) of the safe keyframes, both ascending."""
        where = np.flatnonzero(self.safe)
        return where, self.display[where]

    @cached_property
    def _through(self) -> np.ndarray:
        """(D,) int: for display index ``display.min() + d``, the last decode position any
        frame shown at or before it has."""
        position = np.empty(len(self.display), np.int64)
        position[self.display - self.display.min()] = np.arange(len(self.display))
        return np.maximum.accumulate(position)

    @cached_property
    def _head(self) -> bytes:
        """Info and Tracks elements: the Segment's content before the clusters."""
        info = _uint(0x2AD7B1, self.timestamp_scale)  # TimestampScale
        info += _el(0x4D80, _APP) + _el(0x5741, _APP)  # MuxingApp, WritingApp
        video = _uint(0xB0, self.width) + _uint(0xBA, self.height)  # PixelWidth, PixelHeight
        entry = _uint(0xD7, 1) + _uint(0x73C5, 1) + _uint(0x83, 1)  # number, UID, type video
        entry += _uint(0x9C, 0) + _el(0x86, self.codec_id.encode())  # no lacing, CodecID
        if self.codec_private:
            entry += _el(0x63A2, self.codec_private)
        entry += _el(0xE0, video)
        return _el(0x1549A966, info) + _el(0x1654AE6B, _el(0xAE, entry))


def _vint(value: int) -> bytes:
    """``value`` as an EBML variable-length size, in the fewest bytes."""
    width = 1
    while value >= (1 << (7 * width)) - 1:
        width += 1
    return (value | 1 << (7 * width)).to_bytes(width, "big")


def _el(eid: int, payload: bytes) -> bytes:
    """The EBML element ``eid`` holding ``payload``."""
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big") + _vint(len(payload)) + payload


def _uint(eid: int, value: int) -> bytes:
    """The EBML unsigned-integer element ``eid`` of ``value``, in the fewest bytes."""
    return _el(eid, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


_EBML_HEADER = _el(
    0x1A45DFA3,
    b"".join(
        [
            _uint(0x4286, 1) + _uint(0x42F7, 1),  # EBMLVersion, EBMLReadVersion
            _uint(0x42F2, 4) + _uint(0x42F3, 8),  # EBMLMaxIDLength, EBMLMaxSizeLength
            _el(0x4282, b"matroska"),  # DocType
            _uint(0x4287, 4) + _uint(0x4285, 2),  # DocTypeVersion, DocTypeReadVersion
        ]
    ),
)


def sample_table(path: str | Path) -> SampleTable | str:
    """The packets of the first video stream of ``path`` (demuxed with PyAV, not decoded), or
    the reason clips of it cannot be wrapped as Matroska."""
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.video:
                return "no video stream"
            stream = container.streams.video[0]
            ctx = stream.codec_context
            codec = ctx.codec.canonical_name
            if codec not in _CODECS:
                return f"{codec}: not one of the codecs wrapped as Matroska ({', '.join(_CODECS)})"
            private = b"" if codec in _NO_PRIVATE else bytes(ctx.extradata or b"")
            codec_id, record, first_byte = _CODECS[codec]
            if first_byte is not None and private[:1] != bytes([first_byte]):
                return f"{codec} extradata is not an {record} record"
            if not ctx.width or not ctx.height:
                return "the video stream has no frame size"
            rows = _demux(path, container, stream, codec == "av1")
            width, height, time_base = ctx.width, ctx.height, stream.time_base
    except av.error.FFmpegError as exc:
        return f"cannot demux ({exc})"
    if isinstance(rows, str):
        return rows
    pos, size, pts, key, discard, clean = rows.T
    display = _display(pts, discard.astype(bool))
    if isinstance(display, str):
        return display
    safe = _safe(display, clean.astype(bool))
    if not safe[0]:
        return "the first packet is not a keyframe that starts the stream cleanly"
    return SampleTable(
        pos=pos.copy(),
        size=size.astype(np.int32),
        pts=pts.copy(),
        key=key.astype(bool),
        display=display.astype(np.int32),
        safe=safe,
        codec=codec,
        codec_id=codec_id,
        codec_private=private,
        width=width,
        height=height,
        time_base=Fraction(time_base),
        num_frames=int(np.count_nonzero(discard == 0)),
    )


def _demux(
    path: str | Path, container: av.container.InputContainer, stream: av.VideoStream, av1: bool
) -> np.ndarray | str:
    """(N, 6) int64 rows ``pos, size, pts, keyframe, discarded, clean`` of the video packets in
    decode order, or why they cannot be copied: no byte position or pts, or bytes at ``pos``
    that are not the packet's (a container that stores packets in pieces). ``clean``: a
    keyframe that resets the decoder (for AV1 a shown KEY_FRAME, see :func:`_av1_shown_key`)."""
    rows = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for packet in container.demux(stream):
            if not packet.size:
                continue  # the flush packet at the end
            if packet.pos is None or packet.pos < 0 or packet.pts is None:
                return "packets without a byte position or pts"
            data = bytes(packet)
            if os.pread(fd, len(data), packet.pos) != data:
                return f"packet at byte {packet.pos} is not stored as it is demuxed"
            key = packet.is_keyframe
            clean = key and (not av1 or _av1_shown_key(data))
            rows.append((packet.pos, len(data), packet.pts, key, packet.is_discard, clean))
    finally:
        os.close(fd)
    return np.array(rows, np.int64).reshape(-1, 6) if rows else "no video packets"


def _display(pts: np.ndarray, discard: np.ndarray) -> np.ndarray | str:
    """(N,) int64 display index of each packet: its rank in pts order, counted from the first
    frame a decode shows (an edit list's discarded frames: below 0 or past the last), or why
    the ranks do not match what PyAV's decode shows."""
    order = np.argsort(pts, kind="stable")
    if np.any(np.diff(pts[order]) == 0):
        return "two packets share a pts"
    rank = np.empty(len(pts), np.int64)
    rank[order] = np.arange(len(pts))
    shown = rank[~discard]
    if not len(shown):
        return "an edit list discards every frame"
    if shown.max() - shown.min() + 1 != len(shown):
        return "an edit list discards frames between shown ones"
    return rank - shown.min()


def _safe(display: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """(N,) bool: clean keyframes that every packet before them in decode order is shown
    before, and every packet after them after (no open-GOP leading pictures, which reference
    the previous group of pictures)."""
    before = np.maximum.accumulate(np.concatenate([[display.min() - 1], display[:-1]]))
    after = np.minimum.accumulate(display[::-1])[::-1]
    return clean & (before < display) & (after == display)


def _leb128(data: bytes, i: int) -> tuple[int, int]:
    """The AV1 leb128 number at ``data[i]``: (value, index after it)."""
    value = 0
    for k in range(8):
        byte = data[i + k]
        value |= (byte & 0x7F) << (7 * k)
        if not byte & 0x80:
            return value, i + k + 1
    raise ValueError("leb128 longer than 8 bytes")


def _av1_shown_key(data: bytes) -> bool:
    """Whether the first frame header of an AV1 temporal unit is a shown KEY_FRAME.

    A forward keyframe (hidden, shown later by ``show_existing_frame``) is flagged as a
    keyframe too, but the frames decoded with it may reference the previous keyframe's group.
    Reads the first bits of ``uncompressed_header``: show_existing_frame (1), frame_type (2,
    KEY_FRAME = 0), show_frame (1), which open every header of a stream whose sequence header
    has ``reduced_still_picture_header`` = 0 (any stream of more than one picture).
    """
    i = 0
    try:
        while i < len(data):
            header = data[i]
            i += 2 if header & 0x04 else 1  # obu_extension_flag: one more header byte
            size, i = _leb128(data, i) if header & 0x02 else (len(data) - i, i)
            if (header >> 3) & 0x0F in _AV1_FRAME_OBUS:
                return data[i] >> 4 == 0b0001  # show_existing 0, frame_type 00, show_frame 1
            i += size
    except (IndexError, ValueError):
        return False
    return False


def clip_bytes(
    path: str | Path, table: SampleTable, first: int, last: int
) -> tuple[np.ndarray, int]:
    """(Matroska file (B,) uint8, shift) holding display frames ``first .. last`` (inclusive)
    of ``path``: frame ``i`` of a full-file decode is frame ``i - shift`` of the bytes.

    The file holds the packets from the last safe keyframe shown at or before ``first``
    through the last packet in decode order shown at or before ``last`` (so B-frames decode),
    read with one ``pread`` per run of neighbouring packets. ``shift`` is that keyframe's
    display index (below 0 where it is a frame an edit list discards).
    """
    if not 0 <= first <= last < table.num_frames:
        raise ValueError(f"frames {first}..{last} are not within 0..{table.num_frames - 1}")
    where, shown = table._safe_packets
    start = int(where[np.searchsorted(shown, first, "right") - 1])
    end = int(table._through[last - table.display.min()]) + 1
    sizes = table.size[start:end]
    ticks = (table.pts[start:end] - table.pts[start]) // table.tick
    payloads = _read(path, table.pos[start:end], sizes)
    starts = _cluster_starts(ticks.tolist())
    heads = _block_heads(ticks, sizes, table.key[start:end], starts)
    pieces: list[bytes | memoryview] = []
    bounds = [*starts, len(sizes)]
    for a, b in zip(bounds, bounds[1:]):
        content = _TIMESTAMP + _BLOCK_HEAD * (b - a) + int(sizes[a:b].sum())
        pieces.append(_CLUSTER_HEAD.pack(0x1F43B675, content | 1 << 56, 0xE7, 0x88, int(ticks[a])))
        for i in range(a, b):
            pieces += (heads[_BLOCK_HEAD * i : _BLOCK_HEAD * (i + 1)], payloads[i])
    body = len(table._head) + sum(len(p) for p in pieces)
    segment = struct.pack(">IQ", 0x18538067, body | 1 << 56)
    out = bytearray().join([_EBML_HEADER, segment, table._head, *pieces])
    return np.frombuffer(out, np.uint8), int(table.display[start])


def _read(path: str | Path, pos: np.ndarray, size: np.ndarray) -> list[memoryview]:
    """The bytes of each packet (``pos`` / ``size``: (n,) byte offsets and lengths), read with
    one ``os.pread`` per run of packets at most ``_MERGE_GAP`` bytes apart in file order."""
    ends = pos + size
    gaps = pos[1:] - ends[:-1]
    bounds = [0, *(np.flatnonzero((gaps < 0) | (gaps > _MERGE_GAP)) + 1).tolist(), len(pos)]
    pos_list, size_list = pos.tolist(), size.tolist()
    out = []
    with open(path, "rb", buffering=0) as f:
        for a, b in zip(bounds, bounds[1:]):
            offset, length = pos_list[a], int(ends[b - 1]) - pos_list[a]
            buf = memoryview(os.pread(f.fileno(), length, offset))
            if len(buf) != length:
                raise OSError(f"{path} is shorter than its sample table (changed on disk?)")
            out += (buf[p - offset : p - offset + n] for p, n in zip(pos_list[a:b], size_list[a:b]))
    return out


def _cluster_starts(ticks: list[int]) -> list[int]:
    """Indices of the blocks that open a cluster: a new one wherever a block's timestamp is
    not within int16 of its cluster's first block's."""
    starts, base = [0], ticks[0]
    for i, t in enumerate(ticks):
        if not -32768 <= t - base <= 32767:
            starts.append(i)
            base = t
    return starts


def _block_heads(
    ticks: np.ndarray, sizes: np.ndarray, keys: np.ndarray, starts: list[int]
) -> bytes:
    """The 13-byte head of every SimpleBlock, concatenated: ID 0xA3, size as an 8-byte EBML
    number, track number 1, timestamp relative to the cluster's (int16), flags (keyframe)."""
    n = len(ticks)
    bounds = [*starts, n]
    relative = ticks - np.repeat(ticks[starts], np.diff(bounds))
    heads = np.empty((n, _BLOCK_HEAD), np.uint8)
    heads[:, 0] = 0xA3
    lengths = (sizes.astype(np.uint64) + np.uint64(4)) | np.uint64(1 << 56)
    heads[:, 1:9] = lengths.astype(">u8").view(np.uint8).reshape(n, 8)
    heads[:, 9] = 0x81
    heads[:, 10:12] = relative.astype(">i2").view(np.uint8).reshape(n, 2)
    heads[:, 12] = np.where(keys, 0x80, 0)
    return heads.tobytes()
