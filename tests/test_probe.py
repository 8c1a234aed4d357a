"""Probing counts frames without decoding, and its cache follows changes to the file.

The probe also records codec, size and pixel format, from which ``nvdec_unusable_reason`` tells
what DALI's GPU decoder (NVDEC) cannot take.
"""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import threading
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from videos import ramp_video, write_video

from videomix_dali.loading.videos import VideoLoader
from videomix_dali.source import probe_cache
from videomix_dali.source.cuts import CutIndex
from videomix_dali.source.probe import (
    ProbeError,
    VideoInfo,
    _chroma,
    nvdec_unusable_reason,
    probe_video,
)
from videomix_dali.source.probe_cache import (
    _decode,
    _encode,
    _read_table,
    _write_table,
    cache_file,
    probe_videos,
)
from videomix_dali.source.table_store import TableRef

YUV420 = {"pix_fmt": "yuv420p", "bit_depth": 8, "chroma": "4:2:0"}
ADVICE = "transcode with ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4"


def test_probe_counts_frames_and_refreshes_when_the_file_changes(tmp_path):
    path = write_video(tmp_path / "a.webm", ramp_video(12, 32, 48, 0))
    missing = tmp_path / "gone.webm"
    info, error = probe_videos([path, missing], progress=False)
    assert replace(info, cuts=None) == VideoInfo(
        num_frames=12, height=32, width=48, codec="vp9", **YUV420
    )
    assert info.cuts.frames == (0,) and info.cuts.end == path.stat().st_size  # one GOP
    assert isinstance(error, ProbeError) and error.path == missing
    assert "No such file" in error.reason or "cannot stat" in error.reason
    write_video(path, ramp_video(7, 16, 32, 0))
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the clock resolution
    (info,) = probe_videos([path], progress=False)
    assert replace(info, cuts=None) == VideoInfo(
        num_frames=7, height=16, width=32, codec="vp9", **YUV420
    )
    assert probe_videos([path], progress=False) == [info]  # read back from the cache


@pytest.mark.parametrize(
    ("pix_fmt", "chroma"),
    [
        ("yuv420p", "4:2:0"),
        ("yuvj420p", "4:2:0"),
        ("nv12", "4:2:0"),
        ("yuv420p10le", "4:2:0"),
        ("yuv422p", "4:2:2"),
        ("yuv444p", "4:4:4"),
        ("yuv411p", "4:1:1"),
        ("yuv440p", "4:4:0"),
        ("yuv410p", "4:1:0"),
        ("gray", "4:0:0"),
        ("gbrp", "RGB"),
    ],
)
def test_chroma_subsampling_of_a_pixel_format(pix_fmt, chroma):
    assert _chroma(pix_fmt) == chroma


def _probe(path):
    (info,) = probe_videos([path], progress=False)
    assert isinstance(info, VideoInfo), info
    return info


def test_nvdec_takes_128x128_vp9_and_64x48_h264(tmp_path):
    vp9 = _probe(write_video(tmp_path / "a.webm", ramp_video(3, 128, 128, 0)))
    h264 = _probe(write_video(tmp_path / "b.mp4", ramp_video(3, 48, 64, 0), codec="libx264"))
    assert replace(vp9, cuts=None) == VideoInfo(
        num_frames=3, height=128, width=128, codec="vp9", **YUV420
    )
    assert isinstance(h264.cuts, TableRef)  # an MP4's clips are its packets rewrapped
    assert replace(h264, cuts=None) == VideoInfo(
        num_frames=3, height=48, width=64, codec="h264", **YUV420
    )
    assert nvdec_unusable_reason(vp9) is None
    assert nvdec_unusable_reason(h264) is None


@pytest.mark.parametrize(("height", "width"), [(128, 96), (96, 128)])
def test_nvdec_refuses_vp9_under_128_pixels_on_either_side(tmp_path, height, width):
    info = _probe(write_video(tmp_path / "a.webm", ramp_video(3, height, width, 0)))
    assert nvdec_unusable_reason(info) == (
        f"{width}x{height} is below NVDEC's vp9 minimum of 128x128 (width x height); "
        f"{ADVICE} (H.264 takes 48x16 and up)"
    )


def test_nvdec_refuses_h264_wider_than_4096(tmp_path):
    info = _probe(write_video(tmp_path / "a.mp4", ramp_video(2, 16, 4098, 0), codec="libx264"))
    assert nvdec_unusable_reason(info) == (
        "4098x16 is above NVDEC's h264 maximum of 4096x4096 (width x height); "
        "scale it down (ffmpeg -vf scale=-2:720)"
    )


def test_nvdec_refuses_10_bit_video(tmp_path):
    frames = ramp_video(3, 128, 128, 0)
    path = write_video(tmp_path / "a.mp4", frames, codec="libx264", pix_fmt="yuv420p10le")
    info = _probe(path)
    assert (info.pix_fmt, info.bit_depth, info.chroma) == ("yuv420p10le", 10, "4:2:0")
    assert nvdec_unusable_reason(info) == (
        f"10-bit video (yuv420p10le) cannot be decoded by DALI's GPU backend (8-bit only); {ADVICE}"
    )


def test_nvdec_refuses_4_4_4_chroma(tmp_path):
    info = _probe(write_video(tmp_path / "a.webm", ramp_video(3, 128, 128, 0), pix_fmt="yuv444p"))
    assert (info.pix_fmt, info.bit_depth, info.chroma) == ("yuv444p", 8, "4:4:4")
    assert nvdec_unusable_reason(info) == (
        f"chroma 4:4:4 (yuv444p) cannot be decoded by DALI's GPU backend (4:2:0 only); {ADVICE}"
    )


def test_nvdec_refuses_mjpeg_which_dali_decodes_on_the_cpu_only(tmp_path):
    frames = ramp_video(3, 128, 128, 0)
    info = _probe(write_video(tmp_path / "a.avi", frames, codec="mjpeg", pix_fmt="yuvj420p"))
    assert info.codec == "mjpeg"
    assert nvdec_unusable_reason(info) == (
        "codec mjpeg cannot be decoded by DALI's GPU backend (H.264, HEVC, VP8, VP9, AV1, "
        f"MPEG-4 only); {ADVICE}"
    )


def test_gpu_loader_skips_what_nvdec_cannot_take_with_the_probes_reason(tmp_path, monkeypatch):
    path = write_video(tmp_path / "a.webm", ramp_video(8, 96, 128, 0))
    reason = nvdec_unusable_reason(_probe(path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # past the device check only
    with pytest.raises(ValueError, match=re.escape(f"  {path}: {reason}")):
        VideoLoader([(path, 0)], recipe="demo", device="gpu", progress=False)


# --- what is not a regular file is skipped, never opened -------------------------------


def _unblock_after(fifo, seconds: float) -> threading.Timer:
    """Open ``fifo`` for writing (and close it) after ``seconds``: a probe stuck reading it then
    sees end-of-file and the test fails instead of hanging."""

    def unblock() -> None:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # nobody is reading it: nothing hangs

    timer = threading.Timer(seconds, unblock)
    timer.start()
    return timer


def test_what_is_not_a_regular_file_is_skipped_with_its_kind(tmp_path):
    fifo, sock, folder = tmp_path / "x.webm", tmp_path / "s.webm", tmp_path / "d.webm"
    os.mkfifo(fifo)
    folder.mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    timer = _unblock_after(fifo, 10)
    try:
        results = probe_videos([fifo, sock, folder, Path("/dev/null")], progress=False)
    finally:
        timer.cancel()
        server.close()
    assert [r.reason for r in results] == [
        f"not a regular file ({kind})"
        for kind in ("FIFO", "socket", "directory", "character device")
    ]


def test_a_fifo_in_a_class_folder_or_an_index_is_skipped_as_such(tmp_path):
    good = write_video(tmp_path / "walk" / "good.webm", ramp_video(8, 32, 48, 0))
    fifo = tmp_path / "walk" / "x.webm"
    os.mkfifo(fifo)
    (tmp_path / "walk" / "d.webm").mkdir()  # a folder: walked into, not a video
    timer = _unblock_after(fifo, 10)
    try:
        options = {"recipe": "demo", "device": "cpu", "batch_size": 1, "progress": False}
        by_folder = VideoLoader(tmp_path, **options)
        by_list = VideoLoader([(good, 0), (fifo, 0)], **options)
    finally:
        timer.cancel()
    for loader in (by_folder, by_list):
        assert loader.skipped == [(fifo, "not a regular file (FIFO)")]
        assert [e.path for e in loader.entries] == [good]


# --- truncation, start times and damage -----------------------------------------------------


def write_webm(path, num_frames: int, *, start: float = 0.0, audio: bool = True):
    """Lossless 25 fps VP9 (a keyframe every 10 frames) plus, with ``audio``, Opus silence of
    the same length; every timestamp shifted by ``start`` seconds."""
    fps, rate, chunk = 25, 48000, 960
    with av.open(str(path), "w") as container:
        video = container.add_stream("libvpx-vp9", rate=fps)
        video.height, video.width, video.pix_fmt = 32, 48, "yuv420p"
        video.options = {"lossless": "1", "deadline": "realtime", "cpu-used": "8"}
        video.codec_context.gop_size = 10
        streams = [video]
        if audio:
            streams.append(container.add_stream("libopus", rate=rate))
            streams[1].layout = "mono"
        for i, rgb in enumerate(ramp_video(num_frames, 32, 48, 0)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = round(start * fps) + i, Fraction(1, fps)
            container.mux(video.encode(frame))
        for k in range(0, num_frames * rate // fps, chunk) if audio else ():
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, chunk), np.float32), format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, round(start * rate) + k
            frame.time_base = Fraction(1, rate)
            container.mux(streams[1].encode(frame))
        for stream in streams:
            container.mux(stream.encode())
    return path


def _reason(path):
    (result,) = probe_videos([path], progress=False)
    return result.reason if isinstance(result, ProbeError) else result.num_frames


@pytest.mark.parametrize("audio", [False, True])
def test_a_complete_file_starting_at_5_s_is_not_truncated(tmp_path, audio):
    assert _reason(write_webm(tmp_path / "late.webm", 50, start=5.0, audio=audio)) == 50


@pytest.mark.parametrize("start", [0.0, 5.0])
def test_an_audio_and_video_file_cut_in_half_is_truncated(tmp_path, start):
    whole = write_webm(tmp_path / "whole.webm", 250, start=start).read_bytes()
    half = tmp_path / "half.webm"
    half.write_bytes(whole[: len(whole) // 2])
    assert _reason(half) == (
        "truncated: the container declares 10.00 s but its frames stop after 4.92 s"
    )


def test_damage_in_a_file_of_full_length_is_not_called_truncation(tmp_path):
    good = write_webm(tmp_path / "good.webm", 250, audio=False).read_bytes()
    last_cluster = good.rfind(bytes.fromhex("1F43B675"))
    at = last_cluster + (len(good) - last_cluster) // 3
    noise = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.webm"
    damaged.write_bytes(good[:at] + noise + good[at + len(noise) :])
    assert re.fullmatch(
        r"damaged: the container declares 10\.00 s but its frames stop after \d+\.\d\d s in a "
        rf"file of full length \({len(good)} bytes, demuxed to byte \d+\)",
        _reason(damaged),
    )


# --- a cache of the wrong shape is ignored, rebuilt and reported once ------------------------


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _good_arrays(path) -> dict:
    key = f"{path}|{path.stat().st_size}|{path.stat().st_mtime_ns}"
    return _encode({key: probe_video(path)})


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (lambda _: b"[]", "not an .npz archive"),
        (lambda _: b"null", "not an .npz archive"),
        (lambda _: b'{"a.webm|1|2": {"num_frames": 3}}', "not an .npz archive"),  # v4's JSON
        (lambda _: b"", "not an .npz archive"),
        (lambda _: _npz(x=np.zeros(3))[:100], "not an .npz archive"),  # cut short
        (lambda p: _npz(**{**_good_arrays(p), "version": np.array([4])}), "layout version [4]"),
        (lambda p: _npz(rows=_good_arrays(p)["rows"]), "no 1-d int64 array 'version'"),
        (
            lambda p: _npz(**{**_good_arrays(p), "rows": np.zeros((1, 3), np.int64)}),
            "1 keys but rows (1, 3) and codes (1, 5)",
        ),
        (
            lambda p: _npz(**{**_good_arrays(p), "starts": np.zeros(0, np.int64)}),
            "cut point counts do not match the cut point arrays",
        ),
        (
            lambda p: _npz(**{**_good_arrays(p), "keys": np.array([None], object)}),
            "Object arrays cannot be loaded when allow_pickle=False",
        ),
    ],
)
def test_a_cache_of_the_wrong_shape_is_ignored_rebuilt_and_reported_once(
    tmp_path, monkeypatch, caplog, content, why
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = write_video(tmp_path / "a.webm", ramp_video(6, 32, 48, 0))
    cache = cache_file()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content(path))
    with caplog.at_level(logging.WARNING, logger="videomix_dali.source.probe_cache"):
        assert _reason(path) == 6
        assert _reason(path) == 6  # from the rebuilt cache: no second message
    (record,) = caplog.records
    assert record.getMessage().startswith(
        f"ignoring the probe cache {cache}, which it cannot use ("
    )
    assert why in record.getMessage() and record.getMessage().endswith("); it is rebuilt")
    assert list(_read_table(cache)) == [f"{path}|{path.stat().st_size}|{path.stat().st_mtime_ns}"]


# --- start-up at dataset scale ------------------------------------------------------------


def _synthetic_entries(n: int) -> dict[str, VideoInfo | str]:
    """``n`` cache entries of every kind: cut at keyframes, not cut, an error; odd paths."""
    rng = np.random.default_rng(0)
    entries: dict[str, VideoInfo | str] = {}
    for i in range(n):
        folder = "caf\u00e9 |x" if i % 7 == 0 else "abc"
        key = f"/data/k400/{folder}/{i:06d}.webm|{i}|{i * 3}"
        if i % 11 == 0:
            key = os.fsdecode(b"/data/bad-\xff-name.webm") + f"{i}|1|2"  # not UTF-8
        if i % 13 == 0:
            entries[key] = f"not a readable video (error {i})"
            continue
        k = int(rng.integers(1, 30))
        cuts = CutIndex(
            ((0, 40), (52, 300 + i), (310 + i, 650 + i)),
            tuple(int(x) for x in np.cumsum(rng.integers(1, 1 << 40, k))),
            tuple(range(0, 150 * k, 150)),
            int(rng.integers(1 << 41, 1 << 42)),
        )
        entries[key] = VideoInfo(
            num_frames=300 + i, height=256, width=340, codec="vp9" if i % 2 else "h264",
            pix_fmt="yuv420p", bit_depth=8, chroma="4:2:0",
            cuts=None if i % 5 == 0 else cuts,
            uncut_reason="mov container (only Matroska / WebM is cut at keyframes)"
            if i % 5 == 0 else None,
        )  # fmt: skip
    return entries


def test_the_cache_round_trips_thousands_of_entries(tmp_path):
    entries = _synthetic_entries(3000)
    assert _write_table(tmp_path / "cache.npz", entries)
    assert _read_table(tmp_path / "cache.npz") == entries
    assert _decode(_encode({})) == {}


def _copies(tmp_path, n: int) -> list[Path]:
    """``n`` distinct files (copies of one small video under other names), one of them broken."""
    data = write_video(tmp_path / "src.webm", ramp_video(6, 32, 48, 0)).read_bytes()
    paths = [tmp_path / "videos" / f"{i:03d}.webm" for i in range(n)]
    paths[0].parent.mkdir()
    for i, path in enumerate(paths):
        path.write_bytes(data if i != 3 else b"not a video")
    return paths


def _comparable(results: list) -> list:
    return [r.reason if isinstance(r, ProbeError) else r for r in results]


def test_two_ranks_each_probe_half_and_both_get_every_result(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    paths = _copies(tmp_path, 9)
    probed: list[tuple[str, Path]] = []
    real = probe_cache.probe_video

    def recorded(path):
        probed.append((threading.current_thread().name, path))
        return real(path)

    monkeypatch.setattr(probe_cache, "probe_video", recorded)
    results: dict[int, list] = {}

    def rank(r: int) -> None:
        results[r] = probe_videos(paths, progress=False, rank=r, world_size=2, timeout=60)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_rank = {r: sorted(p for name, p in probed if f"rank {r}" in name) for r in (0, 1)}
    assert by_rank == {0: paths[0::2], 1: paths[1::2]} and len(probed) == len(paths)
    assert _comparable(results[0]) == _comparable(results[1])
    assert [isinstance(r, VideoInfo) for r in results[0]] == [i != 3 for i in range(9)]
    assert results[0][3].reason.startswith("not a readable video (")
    assert sorted(os.listdir(cache_file().parent)) == [cache_file().name]  # shards removed
    probed.clear()
    again = probe_videos(paths, progress=False)  # from the cache, but for the error
    assert [p for _, p in probed] == [paths[3]]
    assert _comparable(again) == _comparable(results[0])


def test_a_rank_that_never_comes_is_named_and_its_files_probed_here(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    paths = _copies(tmp_path, 4)
    with caplog.at_level(logging.WARNING, logger="videomix_dali.source.probe_cache"):
        results = probe_videos(paths, progress=False, rank=0, world_size=2, timeout=0.3)
    assert [isinstance(r, VideoInfo) for r in results] == [True, True, True, False]
    waited, probed_here = (r.getMessage() for r in caplog.records)
    assert re.fullmatch(
        r"waited 0 s for the probe results of other ranks, which did not come: "
        + re.escape(str(cache_file().parent))
        + r"/probe-v7\.[0-9a-f]{16}\.rank1of2\.npz",
        waited,
    )
    assert probed_here == "2 files were not probed by another rank: probing them here"


def _never_wait(*_) -> None:
    raise AssertionError("a rank of a process group waited for files")


def _group_rank(rank: int, port: int, paths: list[Path], cache_home: str, out: str) -> None:
    """One rank of a two-process gloo group: probe ``paths`` together, save what it got."""
    probe_cache._wait_for = _never_wait  # the ranks meet at barriers, not by waiting for files
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), XDG_CACHE_HOME=cache_home)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        results = probe_videos(paths, progress=False, rank=rank, world_size=2, timeout=5)
    finally:
        torch.distributed.destroy_process_group()
    Path(out, f"{rank}.txt").write_text("\n".join(map(str, _comparable(results))))


def test_ranks_of_a_process_group_meet_at_barriers(tmp_path):
    paths = _copies(tmp_path, 5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache_home = str(tmp_path / "cache")
    torch.multiprocessing.spawn(
        _group_rank, args=(port, paths, cache_home, str(tmp_path)), nprocs=2
    )
    assert (tmp_path / "0.txt").read_text() == (tmp_path / "1.txt").read_text()
    assert (tmp_path / "0.txt").read_text().count("VideoInfo(") == 4
    assert os.listdir(tmp_path / "cache" / "videomix_dali") == [cache_file().name]
