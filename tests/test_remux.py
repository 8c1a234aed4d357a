"""MP4 clips re-wrapped in memory as Matroska decode exactly the frames of the whole file."""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def

from videomix_dali.source.cuts import block_counts, cut_index, declared_size
from videomix_dali.source.probe import presentation_order
from videomix_dali.source.remux import SampleTable, _av1_shown_key, clip_bytes, sample_table

NUM_FRAMES, GOP, FPS, HEIGHT, WIDTH = 96, 24, 25, 64, 96
X264 = f"keyint={GOP}:min-keyint={GOP}:scenecut=0"


class Case(NamedTuple):
    codec: str
    options: dict[str, str]
    open_gop: bool = False  # keyframes after the first have leading pictures: not cut points
    pts_shift: int = 0  # frames: remuxed with every timestamp moved by this many frames
    jitter: bool = False  # remuxed in microseconds, every other pts 1 us late


CASES = {
    "h264": Case("libx264", {"x264-params": f"{X264}:bframes=0"}),
    "h264 b-frames": Case("libx264", {"x264-params": X264}),
    "h264 open gop": Case("libx264", {"x264-params": f"{X264}:open-gop=1"}, open_gop=True),
    "hevc x265 (CRA)": Case("libx265", {"x265-params": f"{X264}:log-level=error"}, open_gop=True),
    "vp9": Case("libvpx-vp9", {"g": str(GOP), "deadline": "realtime", "cpu-used": "8"}),
    "av1": Case("libsvtav1", {"g": str(GOP), "preset": "12"}),
    # mov's muxer keeps packets with negative timestamps and writes an edit list that starts
    # at pts 0: the demuxer flags the 15 packets before it as discarded (the decoder needs
    # them from their keyframe on) and a full decode does not show them; this is what
    # `ffmpeg -ss 0.6 -i in.mp4 -c copy` writes. A positive shift writes an empty edit: the
    # first frame is shown at pts > 0.
    "h264 edit list": Case("libx264", {"x264-params": X264}, pts_shift=-15),
    # the jitter makes the Matroska tick 1 us, so frames are 40,000 ticks apart: every block
    # needs a cluster of its own to keep its int16 relative timestamp
    "h264 start offset, us jitter": Case(
        "libx264", {"x264-params": X264}, pts_shift=5, jitter=True
    ),
}


def frames(num: int) -> np.ndarray:
    """(num, H, W, 3) uint8 RGB: a moving sine pattern with soft tints (little chroma detail,
    so colour conversions agree closely) and the frame number in binary along the top."""
    t = np.arange(num)[:, None, None]
    y, x = np.arange(HEIGHT)[None, :, None], np.arange(WIDTH)[None, None, :]
    luma = 128 + 80 * np.sin(2 * np.pi * (x + 2 * y + 3 * t) / 64)
    bits = (t >> (x // 12)) & 1  # bit k of the frame number in columns 12k .. 12k + 11
    luma = np.where((y < 12) & (x < 84), 40 + 180 * bits, luma)
    tint_r, tint_b = 15 * np.sin(2 * np.pi * (y + t) / 48), 15 * np.sin(2 * np.pi * (x - t) / 48)
    rgb = np.stack(np.broadcast_arrays(luma + tint_r, luma, luma - tint_b), axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def encode(path: Path, case: Case, muxer_options: dict[str, str] | None = None) -> Path:
    """Encode :func:`frames` into ``path`` (the container its suffix names) as ``case`` says."""
    try:
        av.codec.Codec(case.codec, "w")
    except av.codec.codec.UnknownCodecError:
        pytest.skip(f"PyAV's FFmpeg has no {case.codec} encoder")
    with av.open(str(path), "w", options=muxer_options or {}) as container:
        stream = container.add_stream(case.codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = case.options
        for frame in frames(NUM_FRAMES):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return remux(path, case) if case.pts_shift else path


def remux(path: Path, case: Case) -> Path:
    """Copy ``path``'s packets into a new MP4 with every timestamp moved by ``case.pts_shift``
    frames; with ``case.jitter`` in a 1/1,000,000 time base, every other pts 1 us late."""
    out = path.with_name(f"remuxed-{path.name}")
    with av.open(str(path)) as source, av.open(str(out), "w") as target:
        stream = source.streams.video[0]
        copy = target.add_stream_from_template(stream)
        base = copy.time_base = Fraction(1, 1_000_000) if case.jitter else stream.time_base
        step = int(Fraction(case.pts_shift, FPS) / base)
        for i, packet in enumerate(p for p in source.demux(stream) if p.size):
            pts, dts = (int(t * stream.time_base / base) + step for t in (packet.pts, packet.dts))
            packet.pts, packet.dts = pts + (i % 2 if case.jitter else 0), dts
            packet.time_base, packet.stream = base, copy
            target.mux(packet)
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """``video(name)``: the MP4 of ``CASES[name]``, encoded once per module."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = encode(tmp_path_factory.mktemp("remux") / "v.mp4", CASES[name])
        return made[name]

    return get


def decode(source: Path | bytes) -> tuple[list[np.ndarray], np.ndarray]:
    """Every frame PyAV shows of a file (path or Matroska bytes): its yuv420p planes, and
    (F,) its presentation times in seconds."""
    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
        shown = list(container.decode(video=0))
    return [f.to_ndarray(format="yuv420p") for f in shown], np.array([f.time for f in shown])


def matroska_blocks(path: Path) -> dict[int, int]:
    """Blocks per track of a Matroska file, counted by the repo's own parser (which refuses
    elements that run past their parent)."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    positions = np.array([p.pos for p in packets], np.int64)
    cuts = cut_index(path, positions, *presentation_order(packets, "h264"))
    return block_counts(path, cuts)


def windows(table: SampleTable) -> dict[str, tuple[int, int]]:
    """Clip windows (first, last) around the first two keyframes shown after frame 0."""
    k1, k2 = sorted(d for d in table.display[table.key] if d > 0)[:2]
    n = table.num_frames
    return {
        "at frame 0": (0, 7),
        "just before a keyframe": (k1 - 4, k1 - 1),
        "on a keyframe": (k1, k1 + 5),
        "just after a keyframe": (k1 + 1, k1 + 6),
        "across two GOPs": (k1 - 3, k2 + 3),
        "at the very end": (n - 8, n - 1),
    }


def stored(table: SampleTable, path: Path) -> SampleTable:
    """``table`` after a trip through ``np.savez`` / ``np.load`` without pickle (the cache)."""
    np.savez(path, **table.to_arrays())
    with np.load(path, allow_pickle=False) as arrays:
        return SampleTable.from_arrays(dict(arrays))


@pytest.mark.parametrize("name", list(CASES))
def test_clips_decode_exactly_the_frames_of_the_whole_file(video, name, tmp_path):
    path = video(name)
    table = stored(sample_table(path), tmp_path / "table.npz")
    whole, times = decode(path)
    assert table.num_frames == len(whole) == NUM_FRAMES + min(CASES[name].pts_shift, 0)
    keys, safe = np.flatnonzero(table.key), np.flatnonzero(table.safe)
    np.testing.assert_array_equal(safe, keys[:1] if CASES[name].open_gop else keys)
    for where, (first, last) in windows(table).items():
        data, shift = clip_bytes(path, table, first, last)
        assert shift == max(table.display[table.safe & (table.display <= first)]), where
        got, clip_times = decode(data.tobytes())
        for i in range(first, last + 1):
            np.testing.assert_array_equal(got[i - shift], whole[i], err_msg=f"{where}: {i}")
        shown = clip_times[first - shift : last + 1 - shift]  # presentation times, up to an offset
        np.testing.assert_allclose(shown - shown[0], times[first : last + 1] - times[first])
    clip = tmp_path / "clip.mkv"
    clip.write_bytes(data.tobytes())
    assert declared_size(clip) == len(data) and matroska_blocks(clip) == {1: len(got)}


@pytest.mark.parametrize("name", ["h264 open gop", "hevc x265 (CRA)"])
def test_clips_after_an_open_gop_keyframe_start_at_the_previous_safe_one(video, name):
    path = video(name)
    table = sample_table(path)
    later = table.display[table.key][1:]
    assert len(later) >= 2 and not table.safe[table.key][1:].any()  # leading pictures
    first = int(later[0]) + 1
    data, shift = clip_bytes(path, table, first, first + 5)
    assert shift == 0
    np.testing.assert_array_equal(decode(data.tobytes())[0][first], decode(path)[0][first])


def test_late_clips_read_about_one_gop_not_the_file(video, monkeypatch):
    path = video("h264 b-frames")
    table = sample_table(path)
    read = []
    pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: read.append(n) or pread(fd, n, at))
    data, shift = clip_bytes(path, table, NUM_FRAMES - 8, NUM_FRAMES - 1)
    start = int(np.flatnonzero(table.display == shift)[0])
    assert shift == 72 and sum(read) == table.size[start:].sum()  # the last GOP's packets
    assert len(data) < table.size.sum() / 3 < path.stat().st_size / 3
    read.clear()
    clip_bytes(path, table, 30, 40)  # from the keyframe at 24 to the last packet 40 needs
    assert sum(read) == table.size[24 : np.flatnonzero(table.display <= 40).max() + 1].sum()


def test_files_that_cannot_be_rewrapped_say_why(tmp_path):
    ts = encode(tmp_path / "a.ts", Case("libx264", {}))  # Annex B H.264 in 188-byte packets
    assert sample_table(ts) == "h264 extradata is not an avcC record"
    mov = encode(tmp_path / "b.mov", Case("mpeg2video", {}))
    assert sample_table(mov).startswith("mpeg2video: not one of the codecs wrapped as Matroska")


@pytest.mark.parametrize(
    "obus, clean",
    [
        ("12 00 32 02 10 00", True),  # temporal delimiter, OBU_FRAME: shown KEY_FRAME
        ("1a 01 98", False),  # OBU_FRAME_HEADER: show_existing_frame (a forward keyframe)
        ("32 02 00 00", False),  # OBU_FRAME: hidden KEY_FRAME (shown later)
        ("32 02 30 00", False),  # OBU_FRAME: shown INTER_FRAME
    ],
)
def test_av1_keyframes_are_clean_only_when_shown(obus, clean):
    assert _av1_shown_key(bytes.fromhex(obus)) is clean


def dali_cpu_decode(data: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """DALI's CPU decode of ``frames`` of the in-memory file ``data``: (T, H, W, 3) uint8."""

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        encoded = fn.external_source(source=lambda: [data], batch=True)
        index = fn.external_source(source=lambda: [np.asarray(frames, np.int32)], batch=True)
        return fn.decoders.video(encoded, device="cpu", frames=index)

    p = pipe()
    p.build()
    return np.array(p.run()[0][0])


def test_dali_cpu_decodes_vp9_clips_as_it_decodes_the_whole_file(video):
    path = video("vp9")
    table = sample_table(path)
    with av.open(str(path)) as container:
        reference = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    whole = np.fromfile(path, np.uint8)
    for first, last in [(20, 40), (NUM_FRAMES - 8, NUM_FRAMES - 1)]:
        data, shift = clip_bytes(path, table, first, last)
        wanted = np.arange(first, last + 1)
        got = dali_cpu_decode(data, wanted - shift)
        np.testing.assert_array_equal(got, dali_cpu_decode(whole, wanted))
        error = np.abs(got.astype(np.int16) - reference[first : last + 1])
        assert error.max() <= 12 and error.mean() < 2  # colour conversion (measured: 7, 1.2)
