"""Frame indices mean what a full decode shows in Matroska too: cut points are display indices of
safe keyframes (open-GOP leading pictures and hidden VP8 frames never shift a clip)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from test_remux import CASES, GOP, HEIGHT, NUM_FRAMES, encode

from videomix_dali.source.cuts import clip_bytes
from videomix_dali.source.probe import presentation_order, probe_video


class Packet(bytes):
    """A demuxed packet as the probe sees it: bytes, ``pts`` and ``is_keyframe``."""

    def __new__(cls, data: bytes, pts: int | None, key: bool = False) -> Packet:
        packet = super().__new__(cls, data)
        packet.pts, packet.is_keyframe = pts, key
        return packet


def test_hidden_vp8_frames_are_not_counted_and_never_start_a_clip():
    shown, hidden = b"\x10", b"\x00"  # VP8 frame tag: bit 4 is show_frame
    packets = [
        Packet(b"\x10", 0, key=True),
        Packet(hidden, 3),  # an alt-ref frame, shown later through the golden frame
        Packet(shown, 1),
        Packet(shown, 2),
        Packet(shown, 4, key=True),
    ]
    display, safe = presentation_order(packets, "vp8")
    assert display.tolist() == [0, -1, 1, 2, 3] and safe.tolist() == [1, 0, 0, 0, 1]
    # the same bytes in another codec are all shown
    assert presentation_order(packets, "vp9")[0].tolist() == [0, 3, 1, 2, 4]


def test_a_keyframe_with_leading_pictures_is_not_safe():
    # decode order I0 P3 B1 B2 | I6(open) B4 B5 P9 B7 B8: B4 and B5 are shown before I6
    pts = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8]
    packets = [Packet(b"\x10", t, key=t in (0, 6)) for t in pts]
    display, safe = presentation_order(packets, "h264")
    assert display.tolist() == pts and safe.tolist() == [True] + [False] * 9
    assert presentation_order([Packet(b"", None)], "h264") == "packets without timestamps"


def decoded(source: Path | np.ndarray) -> np.ndarray:
    """Every frame PyAV shows, as (F, H, W) luma."""
    f = io.BytesIO(source.tobytes()) if isinstance(source, np.ndarray) else str(source)
    with av.open(f) as container:
        return np.stack(
            [fr.to_ndarray(format="yuv420p")[:HEIGHT] for fr in container.decode(video=0)]
        )


@pytest.mark.parametrize("name", ["h264 b-frames", "h264 open gop", "hevc x265 (CRA)"])
def test_matroska_clips_show_the_frames_a_full_decode_shows(tmp_path, name):
    path = encode(tmp_path / "v.mkv", CASES[name], {"dash": "1"})  # a cluster at each keyframe
    info = probe_video(path)
    whole = decoded(path)
    assert info.num_frames == len(whole) == NUM_FRAMES
    want = (0,) if CASES[name].open_gop else tuple(range(0, NUM_FRAMES, GOP))
    assert info.cuts.frames == want  # open-GOP keyframes are not cut points
    for first in (1, GOP - 1, GOP, GOP + 1, 2 * GOP + 3, NUM_FRAMES - 5):
        last = min(first + 7, NUM_FRAMES - 1)
        data, shift = clip_bytes(path, info.cuts, first, last)
        got = decoded(data)
        np.testing.assert_array_equal(
            got[first - shift : last - shift + 1], whole[first : last + 1]
        )
